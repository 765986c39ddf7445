// src/text/byte_level_bpe.ts
function byteToUnicode() {
  const chars = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = b >= 33 && b <= 126 || b >= 161 && b <= 172 || b >= 174 && b <= 255;
    chars.push(String.fromCodePoint(printable ? b : 256 + extra++));
  }
  return chars;
}
var WS = "\\t\\n\\v\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
function splitRegExp(pattern) {
  let source = pattern.replace(/\(\?i:([^()]*)\)/g, (_, body) => {
    const alternatives = body.split("|").map((alt) => [
      ...alt
    ].map((c) => {
      const lower = c.toLowerCase(), upper = c.toUpperCase();
      if (lower === upper) return c === "'" ? c : c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      return `[${lower}${upper}${lower === "s" ? "\u017F" : ""}]`;
    }).join(""));
    return `(?:${alternatives.join("|")})`;
  });
  source = source.replace(/\[([^\]]*)\]/g, (_, body) => `[${body.replaceAll("\\s", WS)}]`).replace(/\\s/g, `[${WS}]`).replace(/\\S/g, `[^${WS}]`);
  return new RegExp(source, "gu");
}
var ByteLevelBpe = class {
  /** Token → id, for the vocabulary and the added tokens. */
  ids;
  /** Id → token (byte-level characters, or an added token's content). */
  tokens;
  /** Token id pair → `rank·2^18 + id of the merged token`. */
  #merges = new PairTable();
  #split;
  #added;
  #byteIds;
  #cache = /* @__PURE__ */ new Map();
  constructor(spec) {
    this.ids = /* @__PURE__ */ new Map();
    this.tokens = [];
    for (const [token, id] of spec.vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= PAIR) {
        throw new Error(`tokenizer.json: model.vocab ${JSON.stringify(token)}: ${id} is not a token id`);
      }
      this.ids.set(token, id);
      this.tokens[id] = token;
    }
    if (this.ids.size === 0) throw new Error("tokenizer.json: model.vocab is empty");
    for (const t of spec.added) {
      this.ids.set(t.content, t.id);
      this.tokens[t.id] = t.content;
    }
    const chars = byteToUnicode();
    this.#byteIds = Int32Array.from(chars, (c, b) => {
      const id = this.ids.get(c);
      if (id === void 0) {
        throw new Error(`tokenizer.json: the vocabulary lacks the byte 0x${b.toString(16)} (${c})`);
      }
      return id;
    });
    let rank = 0;
    for (const m of spec.merges) {
      if (!Array.isArray(m) || typeof m[0] !== "string" || typeof m[1] !== "string") {
        throw new Error(`tokenizer.json: merges[${rank}] ${JSON.stringify(m)} is not two tokens "a b"`);
      }
      if (rank >= PAIR) throw new Error(`tokenizer.json: more than ${PAIR} merges are not supported`);
      const [a, b] = m;
      const ia = this.ids.get(a), ib = this.ids.get(b), merged = this.ids.get(a + b);
      if (ia === void 0 || ib === void 0 || merged === void 0) {
        throw new Error(`tokenizer.json: merges[${rank}] (${a} ${b}) names a token the vocabulary lacks`);
      }
      if (this.#merges.get(ia, ib) < 0) this.#merges.set(ia, ib, rank * PAIR + merged);
      rank++;
    }
    this.#split = splitRegExp(spec.pattern);
    const contents = spec.added.map((t) => t.content).filter((c) => c.length > 0).sort((x, y) => y.length - x.length);
    this.#added = contents.length ? new RegExp(contents.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "gu") : void 0;
  }
  /** The ids of `text`. */
  encode(text) {
    const out = [];
    if (!this.#added) {
      this.#encodeText(text, out);
      return out;
    }
    let at = 0;
    for (const m of text.matchAll(this.#added)) {
      if (m.index > at) this.#encodeText(text.slice(at, m.index), out);
      out.push(this.ids.get(m[0]));
      at = m.index + m[0].length;
    }
    if (at < text.length) this.#encodeText(text.slice(at), out);
    return out;
  }
  /** Text between added tokens: NFC, split, then each piece's bytes merged. */
  #encodeText(text, out) {
    const normal = text.normalize("NFC");
    let at = 0;
    for (const m of normal.matchAll(this.#split)) {
      if (m.index > at) this.#encodePiece(normal.slice(at, m.index), out);
      if (m[0].length) this.#encodePiece(m[0], out);
      at = m.index + m[0].length;
    }
    if (at < normal.length) this.#encodePiece(normal.slice(at), out);
  }
  #encodePiece(piece, out) {
    let ids = this.#cache.get(piece);
    if (ids === void 0) {
      ids = this.#merge(piece);
      if (this.#cache.size >= CACHE_ENTRIES) this.#cache.clear();
      this.#cache.set(piece, ids);
    }
    for (const id of ids) out.push(id);
  }
  /** The piece's UTF-8 bytes as tokens, merged lowest rank first (leftmost among equals) until none applies. */
  #merge(piece) {
    const bytes = ENCODER.encode(piece);
    const ids = Array.from(bytes, (b) => this.#byteIds[b]);
    for (; ; ) {
      let best = Infinity, at = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const m = this.#merges.get(ids[i], ids[i + 1]);
        if (m >= 0 && m < best) [best, at] = [
          m,
          i
        ];
      }
      if (at < 0) return ids;
      const merged = best % PAIR;
      const [a, b] = [
        ids[at],
        ids[at + 1]
      ];
      const next = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(ids[i]);
      }
      ids.length = 0;
      for (const id of next) ids.push(id);
    }
  }
};
var PAIR = 2 ** 18;
var CACHE_ENTRIES = 2e4;
var ENCODER = new TextEncoder();
var PairTable = class {
  #a = new Int32Array(1 << 12).fill(-1);
  #b = new Int32Array(1 << 12);
  #value = new Float64Array(1 << 12);
  #size = 0;
  /** The value of (a, b), or −1. */
  get(a, b) {
    const mask = this.#a.length - 1;
    for (let i = hash(a, b) & mask; ; i = i + 1 & mask) {
      if (this.#a[i] === -1) return -1;
      if (this.#a[i] === a && this.#b[i] === b) return this.#value[i];
    }
  }
  set(a, b, value) {
    if (2 * (this.#size + 1) > this.#a.length) this.#grow();
    const mask = this.#a.length - 1;
    for (let i = hash(a, b) & mask; ; i = i + 1 & mask) {
      if (this.#a[i] === -1) this.#size++;
      else if (this.#a[i] !== a || this.#b[i] !== b) continue;
      [this.#a[i], this.#b[i], this.#value[i]] = [
        a,
        b,
        value
      ];
      return;
    }
  }
  #grow() {
    const [a, b, value] = [
      this.#a,
      this.#b,
      this.#value
    ];
    this.#a = new Int32Array(a.length * 2).fill(-1);
    this.#b = new Int32Array(a.length * 2);
    this.#value = new Float64Array(a.length * 2);
    this.#size = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== -1) this.set(a[i], b[i], value[i]);
  }
};
function hash(a, b) {
  return Math.imul(a, 2654435761) ^ Math.imul(b + 2135587861, 2246822507);
}

// src/text/tokenizer_json.ts
function readTokenizerJson(text, name = "tokenizer.json") {
  const fast = scanSections(text);
  if (fast) return fast;
  const json = parseJsonObject(text, name);
  const model = json.model;
  const vocab = model?.vocab && typeof model.vocab === "object" && !Array.isArray(model.vocab) ? Object.entries(model.vocab) : [];
  const merges = Array.isArray(model?.merges) ? model.merges.map(mergePair) : [];
  return {
    json,
    vocab,
    merges
  };
}
function parseJsonObject(text, name) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${name}: invalid JSON: ${e.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${name}: expected a JSON object`);
  }
  return value;
}
function mergePair(m) {
  if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
    return m;
  }
  if (typeof m === "string") {
    const space = m.indexOf(" ");
    if (space > 0 && space === m.lastIndexOf(" ")) return [
      m.slice(0, space),
      m.slice(space + 1)
    ];
  }
  return m;
}
function scanSections(text) {
  try {
    const vocabAt = find(text, /"vocab"\s*:\s*\{/g, 0);
    if (vocabAt < 0) return void 0;
    const vocab = new Offsets(3);
    let at = scanVocab(text, vocabAt, vocab);
    const vocabEnd = at;
    const mergesAt = find(text, /"merges"\s*:\s*\[/g, at);
    if (mergesAt < 0) return void 0;
    const merges = new Offsets(4);
    at = scanMerges(text, mergesAt, merges);
    const rest = text.slice(0, vocabAt) + "{}" + text.slice(vocabEnd, mergesAt) + "[]" + text.slice(at);
    const json = JSON.parse(rest);
    const model = json?.model;
    if (!model || typeof model.vocab !== "object" || Object.keys(model.vocab).length !== 0 || !Array.isArray(model.merges) || model.merges.length !== 0) return void 0;
    return {
      json,
      vocab: function* () {
        const v = vocab.values;
        for (let i = 0; i < vocab.length; i += 3) yield [
          stringAt(text, v[i], v[i + 1]),
          v[i + 2]
        ];
      }(),
      merges: function* () {
        const m = merges.values;
        for (let i = 0; i < merges.length; i += 4) {
          if (m[i + 2] < 0) yield mergePair(stringAt(text, m[i], m[i + 1]));
          else yield [
            stringAt(text, m[i], m[i + 1]),
            stringAt(text, m[i + 2], m[i + 3])
          ];
        }
      }()
    };
  } catch {
    return void 0;
  }
}
var Offsets = class {
  width;
  values;
  length;
  constructor(width) {
    this.width = width;
    this.values = new Int32Array(1 << 16);
    this.length = 0;
  }
  push(...v) {
    if (this.length + v.length > this.values.length) {
      const grown = new Int32Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    for (const x of v) this.values[this.length++] = x;
  }
};
function find(text, pattern, from) {
  pattern.lastIndex = from;
  const m = pattern.exec(text);
  return m ? m.index + m[0].length - 1 : -1;
}
function skipSpace(text, at) {
  for (; ; at++) {
    const c = text.charCodeAt(at);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return at;
  }
}
function skipString(text, at) {
  if (text.charCodeAt(at) !== 34) throw new Error("expected a string");
  for (let end = at + 1; ; end++) {
    const c = text.charCodeAt(end);
    if (Number.isNaN(c)) throw new Error("unterminated string");
    if (c === 92) end++;
    else if (c === 34) return end + 1;
  }
}
function stringAt(text, start, end) {
  const inner = text.slice(start + 1, end - 1);
  return inner.includes("\\") || inner.length > 12 ? JSON.parse(text.slice(start, end)) : inner;
}
function scanVocab(text, at, out) {
  at = skipSpace(text, at + 1);
  if (text[at] === "}") return at + 1;
  for (; ; ) {
    const afterKey = skipString(text, at);
    const keyAt = at;
    at = skipSpace(text, afterKey);
    if (text[at] !== ":") throw new Error("expected ':'");
    at = skipSpace(text, at + 1);
    let end = at;
    while (text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++;
    if (end === at || end - at > 9) throw new Error("expected an id");
    out.push(keyAt, afterKey, +text.slice(at, end));
    at = skipSpace(text, end);
    if (text[at] === "}") return at + 1;
    if (text[at] !== ",") throw new Error("expected ','");
    at = skipSpace(text, at + 1);
  }
}
function scanMerges(text, at, out) {
  at = skipSpace(text, at + 1);
  if (text[at] === "]") return at + 1;
  for (; ; ) {
    if (text[at] === "[") {
      const aAt = skipSpace(text, at + 1);
      const afterA = skipString(text, aAt);
      at = skipSpace(text, afterA);
      if (text[at] !== ",") throw new Error("expected ','");
      const bAt = skipSpace(text, at + 1);
      const afterB = skipString(text, bAt);
      at = skipSpace(text, afterB);
      if (text[at] !== "]") throw new Error("expected ']'");
      out.push(aAt, afterA, bAt, afterB);
      at++;
    } else {
      const after = skipString(text, at);
      out.push(at, after, -1, -1);
      at = after;
    }
    at = skipSpace(text, at);
    if (text[at] === "]") return at + 1;
    if (text[at] !== ",") throw new Error("expected ','");
    at = skipSpace(text, at + 1);
  }
}

// src/text/build_tokenizer.ts
function unicodeToBytes() {
  return new Map(byteToUnicode().map((c, b) => [
    c.codePointAt(0),
    b
  ]));
}
function tokenContent(value) {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof value.content === "string") {
    return value.content;
  }
  return void 0;
}
function pickChatTemplate(value) {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t && typeof t === "object" && t.name === "default");
    const template = named?.template;
    return typeof template === "string" ? template : void 0;
  }
  return void 0;
}
function buildTokenizer(files) {
  const { json, vocab, merges } = readTokenizerJson(files.tokenizerJson);
  const model = json.model;
  if (!model || typeof model !== "object") throw new Error("tokenizer.json: missing field 'model'");
  if (model.type !== "BPE") {
    throw new Error(`tokenizer.json: model.type is ${JSON.stringify(model.type)}, expected "BPE"`);
  }
  if (!model.vocab || typeof model.vocab !== "object" || Array.isArray(model.vocab)) {
    throw new Error("tokenizer.json: model.vocab must be an object of token \u2192 id");
  }
  const decoder = json.decoder;
  if (!decoder || decoder.type !== "ByteLevel") {
    throw new Error(`tokenizer.json: decoder.type is ${JSON.stringify(decoder?.type)}, expected "ByteLevel"`);
  }
  if (!Array.isArray(model.merges)) throw new Error("tokenizer.json: model.merges must be an array");
  if (model.ignore_merges === true || model.dropout !== null && model.dropout !== void 0) {
    throw new Error("tokenizer.json: model.ignore_merges and model.dropout are not supported (Qwen has neither)");
  }
  const pattern = splitPattern(json.pre_tokenizer, json.normalizer);
  const addedRaw = json.added_tokens ?? [];
  if (!Array.isArray(addedRaw)) throw new Error("tokenizer.json: added_tokens must be an array");
  const added = addedRaw.map((t, i) => {
    if (!t || typeof t !== "object" || !Number.isInteger(t.id) || typeof t.content !== "string") {
      throw new Error(`tokenizer.json: added_tokens[${i}] needs an integer 'id' and a string 'content'`);
    }
    if (t.single_word || t.lstrip || t.rstrip) {
      throw new Error(`tokenizer.json: added_tokens[${i}] (${t.content}): single_word, lstrip and rstrip are not supported`);
    }
    return t;
  });
  const bpe = new ByteLevelBpe({
    vocab,
    merges,
    pattern,
    added
  });
  let vocabSize = 0;
  for (const id of bpe.ids.values()) if (id + 1 > vocabSize) vocabSize = id + 1;
  const config = files.tokenizerConfigJson === void 0 ? {} : parseJsonObject(files.tokenizerConfigJson, "tokenizer_config.json");
  const cleanUp = config.clean_up_tokenization_spaces === true;
  const tokenToId = (token) => bpe.ids.get(token);
  const addedById = new Map(added.map((t) => [
    t.id,
    t
  ]));
  const special = new Set(added.filter((t) => t.special).map((t) => t.id));
  for (const s of config.additional_special_tokens ?? []) {
    const content = tokenContent(s);
    const id = content === void 0 ? void 0 : tokenToId(content);
    if (id !== void 0) special.add(id);
  }
  const idOf = (value, field) => {
    const content = tokenContent(value);
    if (content === void 0) return void 0;
    const id = tokenToId(content);
    if (id === void 0) {
      throw new Error(`tokenizer_config.json: ${field} ${JSON.stringify(content)} is not in tokenizer.json`);
    }
    return id;
  };
  const eos = [];
  const addEos = (id) => {
    if (id !== void 0 && !eos.includes(id)) eos.push(id);
  };
  addEos(idOf(config.eos_token, "eos_token"));
  if (files.generationConfigJson !== void 0) {
    const gen = parseJsonObject(files.generationConfigJson, "generation_config.json");
    const ids = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : [
      gen.eos_token_id
    ];
    for (const id of ids) if (Number.isInteger(id) && id >= 0 && id < vocabSize) addEos(id);
  }
  addEos(tokenToId("<|im_end|>"));
  addEos(tokenToId("<|endoftext|>"));
  const padTokenId = idOf(config.pad_token, "pad_token");
  const chatTemplate = pickChatTemplate(config.chat_template);
  const byteOf = unicodeToBytes();
  const utf8 = new TextEncoder();
  const tokenBytes = (id) => {
    const a = addedById.get(id);
    if (a) return utf8.encode(a.content);
    const token = bpe.tokens[id];
    if (token === void 0) throw new Error(`token id ${id} is not in the vocabulary (size ${vocabSize})`);
    const out = [];
    for (const ch of token) {
      const b = byteOf.get(ch.codePointAt(0));
      if (b !== void 0) out.push(b);
      else out.push(...utf8.encode(ch));
    }
    return Uint8Array.from(out);
  };
  const utf8Decoder = new TextDecoder("utf-8", {
    ignoreBOM: true
  });
  return {
    encode: (text) => bpe.encode(text),
    decode: (ids, options) => {
      const skip = options?.skipSpecialTokens === true;
      const parts = [];
      let length = 0;
      for (const id of Array.from(ids)) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new Error(`decode: token id ${id} is out of range 0..${vocabSize - 1}`);
        }
        if (skip && special.has(id)) continue;
        const b = tokenBytes(id);
        parts.push(b);
        length += b.length;
      }
      const all = new Uint8Array(length);
      let at = 0;
      for (const b of parts) {
        all.set(b, at);
        at += b.length;
      }
      const text = utf8Decoder.decode(all);
      return cleanUp ? cleanUpTokenizationSpaces(text) : text;
    },
    tokenBytes,
    isSpecialToken: (id) => special.has(id),
    isAddedToken: (id) => addedById.has(id),
    idToToken: (id) => bpe.tokens[id],
    tokenToId,
    eosTokenIds: eos,
    padTokenId,
    chatTemplate,
    vocabSize
  };
}
function splitPattern(pre, normalizer) {
  const n = normalizer;
  if (n?.type !== "NFC") {
    throw new Error(`tokenizer.json: normalizer ${JSON.stringify(n?.type ?? null)} is not supported (Qwen: "NFC")`);
  }
  const p = pre;
  const [split, byteLevel] = p?.type === "Sequence" ? p.pretokenizers ?? [] : [];
  if (split?.type !== "Split" || typeof split.pattern?.Regex !== "string" || split.behavior !== "Isolated" || split.invert === true || byteLevel?.type !== "ByteLevel" || byteLevel.use_regex === true || byteLevel.add_prefix_space === true || (p?.pretokenizers?.length ?? 0) !== 2) {
    throw new Error("tokenizer.json: pre_tokenizer is not Qwen's (Sequence of Split with an Isolated Regex, then ByteLevel without its own regex): only Qwen2/2.5/3 byte-level BPE tokenizers are supported");
  }
  return split.pattern.Regex;
}
function cleanUpTokenizationSpaces(text) {
  return text.replaceAll(" .", ".").replaceAll(" ?", "?").replaceAll(" !", "!").replaceAll(" ,", ",").replaceAll(" ' ", "'").replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s").replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}
export {
  buildTokenizer
};
