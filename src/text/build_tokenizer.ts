/**
 * The tokenizer behind `loadTokenizer` (`tokenizer.ts`, which imports this module lazily): Qwen's byte-level
 * BPE (`byte_level_bpe.ts`) built from `tokenizer.json`, plus the facts mesp needs from
 * `tokenizer_config.json` (EOS/pad ids, chat template).
 *
 * @module
 */
import { ByteLevelBpe, byteToUnicode } from "./byte_level_bpe.ts";
import type { Tokenizer, TokenizerFiles } from "./tokenizer.ts";
import { parseJsonObject, readTokenizerJson } from "./tokenizer_json.ts";

/** GPT-2 `bytes_to_unicode`, reversed: code point of a byte-level char → the byte it stands for. */
function unicodeToBytes(): Map<number, number> {
  return new Map(byteToUnicode().map((c, b) => [c.codePointAt(0)!, b]));
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
}

/** `eos_token` etc. may be a string or an AddedToken-like object `{content}`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

function pickChatTemplate(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  // Newer configs may hold a list of named templates; "default" is what apply_chat_template uses.
  if (Array.isArray(value)) {
    const named = value.find((t) =>
      t && typeof t === "object" && (t as { name?: unknown }).name === "default"
    );
    const template = (named as { template?: unknown } | undefined)?.template;
    return typeof template === "string" ? template : undefined;
  }
  return undefined;
}

/** Builds a tokenizer from its files' text (see `loadTokenizer` in `tokenizer.ts`). */
export function buildTokenizer(files: TokenizerFiles): Tokenizer {
  const { json, vocab, merges } = readTokenizerJson(files.tokenizerJson);
  const model = json.model as
    | { type?: unknown; vocab?: unknown; merges?: unknown; ignore_merges?: unknown; dropout?: unknown }
    | undefined;
  if (!model || typeof model !== "object") throw new Error("tokenizer.json: missing field 'model'");
  if (model.type !== "BPE") {
    throw new Error(`tokenizer.json: model.type is ${JSON.stringify(model.type)}, expected "BPE"`);
  }
  if (!model.vocab || typeof model.vocab !== "object" || Array.isArray(model.vocab)) {
    throw new Error("tokenizer.json: model.vocab must be an object of token → id");
  }
  const decoder = json.decoder as { type?: unknown } | null | undefined;
  if (!decoder || decoder.type !== "ByteLevel") {
    throw new Error(`tokenizer.json: decoder.type is ${JSON.stringify(decoder?.type)}, expected "ByteLevel"`);
  }
  if (!Array.isArray(model.merges)) throw new Error("tokenizer.json: model.merges must be an array");
  if (model.ignore_merges === true || (model.dropout !== null && model.dropout !== undefined)) {
    throw new Error(
      "tokenizer.json: model.ignore_merges and model.dropout are not supported (Qwen has neither)",
    );
  }
  const pattern = splitPattern(json.pre_tokenizer, json.normalizer);
  const addedRaw = json.added_tokens ?? [];
  if (!Array.isArray(addedRaw)) throw new Error("tokenizer.json: added_tokens must be an array");
  const added: AddedTokenJson[] = addedRaw.map((t, i) => {
    if (!t || typeof t !== "object" || !Number.isInteger(t.id) || typeof t.content !== "string") {
      throw new Error(`tokenizer.json: added_tokens[${i}] needs an integer 'id' and a string 'content'`);
    }
    if (t.single_word || t.lstrip || t.rstrip) {
      throw new Error(
        `tokenizer.json: added_tokens[${i}] (${t.content}): single_word, lstrip and rstrip are not supported`,
      );
    }
    return t as AddedTokenJson;
  });

  const bpe = new ByteLevelBpe({ vocab, merges, pattern, added });
  let vocabSize = 0;
  for (const id of bpe.ids.values()) if (id + 1 > vocabSize) vocabSize = id + 1;

  const config = files.tokenizerConfigJson === undefined
    ? {}
    : parseJsonObject(files.tokenizerConfigJson, "tokenizer_config.json");
  // Qwen sets it false; a config that sets it true gets transformers' clean-up of decoded text
  const cleanUp = config.clean_up_tokenization_spaces === true;
  const tokenToId = (token: string) => bpe.ids.get(token);

  const addedById = new Map<number, AddedTokenJson>(added.map((t) => [t.id, t]));
  const special = new Set<number>(added.filter((t) => t.special).map((t) => t.id));
  for (const s of (config.additional_special_tokens ?? []) as unknown[]) {
    const content = tokenContent(s);
    const id = content === undefined ? undefined : tokenToId(content);
    if (id !== undefined) special.add(id);
  }
  const idOf = (value: unknown, field: string): number | undefined => {
    const content = tokenContent(value);
    if (content === undefined) return undefined;
    const id = tokenToId(content);
    if (id === undefined) {
      throw new Error(`tokenizer_config.json: ${field} ${JSON.stringify(content)} is not in tokenizer.json`);
    }
    return id;
  };

  const eos: number[] = [];
  const addEos = (id: number | undefined) => {
    if (id !== undefined && !eos.includes(id)) eos.push(id);
  };
  addEos(idOf(config.eos_token, "eos_token"));
  if (files.generationConfigJson !== undefined) {
    const gen = parseJsonObject(files.generationConfigJson, "generation_config.json");
    const ids = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : [gen.eos_token_id];
    for (const id of ids) if (Number.isInteger(id) && id >= 0 && id < vocabSize) addEos(id);
  }
  // Chat fine-tunes of base models end turns with <|im_end|>; base text ends with <|endoftext|>.
  addEos(tokenToId("<|im_end|>"));
  addEos(tokenToId("<|endoftext|>"));
  const padTokenId = idOf(config.pad_token, "pad_token");
  const chatTemplate = pickChatTemplate(config.chat_template);

  const byteOf = unicodeToBytes();
  const utf8 = new TextEncoder();
  const tokenBytes = (id: number): Uint8Array => {
    const a = addedById.get(id);
    if (a) return utf8.encode(a.content);
    const token = bpe.tokens[id];
    if (token === undefined) throw new Error(`token id ${id} is not in the vocabulary (size ${vocabSize})`);
    const out: number[] = [];
    for (const ch of token) {
      const b = byteOf.get(ch.codePointAt(0)!);
      if (b !== undefined) out.push(b);
      else out.push(...utf8.encode(ch)); // not a byte-level char (malformed vocab): keep its text
    }
    return Uint8Array.from(out);
  };

  const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // byte-level decoding keeps U+FEFF
  return {
    encode: (text) => bpe.encode(text),
    decode: (ids, options) => {
      const skip = options?.skipSpecialTokens === true;
      const parts: Uint8Array[] = [];
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
    vocabSize,
  };
}

/**
 * The Split regex of a Qwen `pre_tokenizer` (`Sequence[Split(Regex, Isolated), ByteLevel(use_regex false)]`)
 * after an NFC `normalizer`: the one shape this tokenizer runs; anything else is refused by name.
 */
function splitPattern(pre: unknown, normalizer: unknown): string {
  const n = normalizer as { type?: unknown } | null;
  if (n?.type !== "NFC") {
    throw new Error(
      `tokenizer.json: normalizer ${JSON.stringify(n?.type ?? null)} is not supported (Qwen: "NFC")`,
    );
  }
  const p = pre as { type?: unknown; pretokenizers?: unknown[] } | null;
  const [split, byteLevel] = (p?.type === "Sequence" ? p.pretokenizers ?? [] : []) as {
    type?: unknown;
    pattern?: { Regex?: unknown };
    behavior?: unknown;
    invert?: unknown;
    use_regex?: unknown;
    add_prefix_space?: unknown;
  }[];
  if (
    split?.type !== "Split" || typeof split.pattern?.Regex !== "string" || split.behavior !== "Isolated" ||
    split.invert === true || byteLevel?.type !== "ByteLevel" || byteLevel.use_regex === true ||
    byteLevel.add_prefix_space === true || (p?.pretokenizers?.length ?? 0) !== 2
  ) {
    throw new Error(
      "tokenizer.json: pre_tokenizer is not Qwen's (Sequence of Split with an Isolated Regex, then ByteLevel " +
        "without its own regex): only Qwen2/2.5/3 byte-level BPE tokenizers are supported",
    );
  }
  return split.pattern.Regex;
}

/** transformers' `clean_up_tokenization`: the spaces before punctuation and English contractions removed. */
function cleanUpTokenizationSpaces(text: string): string {
  return text.replaceAll(" .", ".").replaceAll(" ?", "?").replaceAll(" !", "!").replaceAll(" ,", ",")
    .replaceAll(" ' ", "'").replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}
