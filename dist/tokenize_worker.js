var __defProp = Object.defineProperty;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __esm = (fn, res) => function __init() {
  return fn && (res = (0, fn[__getOwnPropNames(fn)[0]])(fn = 0)), res;
};
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};

// src/util/describe.ts
function describeValue(value) {
  if (value === null || value === void 0) return String(value);
  if (typeof value === "string") return "a string";
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return `a ${typeof value} (${String(value)})`;
  }
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  if (isThenable(value)) return "a Promise";
  const name = value.constructor?.name;
  return name && name !== "Object" ? `a${/^[AEIO]/.test(name) ? "n" : ""} ${name}` : "an object";
}
function isThenable(value) {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof value.then === "function";
}
var init_describe = __esm({
  "src/util/describe.ts"() {
  }
});

// src/io/source.ts
var FileNotFoundError, REQUEST_BYTES, RUN_SKIP_BYTES, SCRATCH_BYTES;
var init_source = __esm({
  "src/io/source.ts"() {
    init_describe();
    FileNotFoundError = class extends Error {
      /** @param name the file path or URL that does not exist */
      constructor(name, options) {
        super(`file not found: ${name}`, options);
        this.name = "FileNotFoundError";
      }
    };
    REQUEST_BYTES = 1 << 20;
    RUN_SKIP_BYTES = 4 << 20;
    SCRATCH_BYTES = 256 << 10;
  }
});

// src/text/tokenizer.ts
var tokenizer_exports = {};
__export(tokenizer_exports, {
  createStreamDecoder: () => createStreamDecoder,
  loadTokenizer: () => loadTokenizer
});
async function loadTokenizer(files, options = {}) {
  if (files && typeof files.readText === "function") {
    files = await readTokenizerFiles(files);
  }
  if (typeof files?.tokenizerJson !== "string") {
    throw new TypeError(`loadTokenizer: expected model files or { tokenizerJson, tokenizerConfigJson? } as strings, got ${describeValue(files)}`);
  }
  return await buildFromModule(files, options);
}
async function readTokenizerFiles(files) {
  const [tokenizerJson, tokenizerConfigJson, generationConfigJson] = await Promise.all([
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json"
  ].map((f) => files.readText(f)));
  if (tokenizerJson === void 0) {
    throw new FileNotFoundError(`${files.name.replace(/\/+$/, "")}/tokenizer.json (loadTokenizer needs it)`);
  }
  return {
    tokenizerJson,
    tokenizerConfigJson,
    generationConfigJson
  };
}
function buildFromModule(files, options) {
  if (options.module !== void 0) {
    if (typeof options.module?.buildTokenizer !== "function") {
      return Promise.reject(new TypeError('loadTokenizer options.module: expected the tokenizer module (import * as tokenizer from "./tokenizer.js", beside mesp.js), which exports buildTokenizer'));
    }
    return Promise.resolve().then(() => options.module.buildTokenizer(files));
  }
  let url;
  try {
    url = tokenizerModule();
  } catch {
    return Promise.reject(new Error(`loadTokenizer: this runtime gives modules no URL (workerd), so the tokenizer's module cannot be found: import it with your worker (import * as tokenizer from "./tokenizer.js", the file beside mesp.js, as an ES module) and pass loadTokenizer(files, { module: tokenizer })`));
  }
  return import(url).then((m) => m.buildTokenizer(files), (err) => {
    throw new Error(`loadTokenizer: cannot load the tokenizer's module ${url} (${err?.message ?? err}): it must sit beside mesp.js, or pass loadTokenizer(files, { module }) with it imported yourself`, {
      cause: err
    });
  });
}
function tokenizerModule() {
  return new URL("./tokenizer.js", import.meta.url).href;
}
function createStreamDecoder(tokenizer, options = {}) {
  const skip = options.skipSpecialTokens === true;
  const bytes = new TextDecoder("utf-8", {
    ignoreBOM: true
  });
  let pendingBytes = false;
  const flushBytes = () => {
    if (!pendingBytes) return "";
    pendingBytes = false;
    return bytes.decode();
  };
  return {
    push(id) {
      if (tokenizer.isAddedToken(id)) {
        const before = flushBytes();
        return skip && tokenizer.isSpecialToken(id) ? before : before + tokenizer.decode([
          id
        ]);
      }
      pendingBytes = true;
      return bytes.decode(tokenizer.tokenBytes(id), {
        stream: true
      });
    },
    flush: flushBytes
  };
}
var init_tokenizer = __esm({
  "src/text/tokenizer.ts"() {
    init_source();
    init_describe();
  }
});

// src/text/chat.ts
var QWEN2_5_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
var ROLES = [
  "system",
  "user",
  "assistant"
];
function validateChatMessage(message, where) {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new Error(`${where}: a message must be an object with "role" and "content"`);
  }
  const m = message;
  if (m.role === "tool" || m.tool_calls !== void 0) {
    throw new Error(`${where}: tool messages and "tool_calls" are not supported (plain chat only)`);
  }
  if (typeof m.role !== "string" || !ROLES.includes(m.role)) {
    throw new Error(`${where}: role must be one of ${ROLES.join(", ")}; got ${JSON.stringify(m.role)}`);
  }
  if (typeof m.content !== "string") {
    throw new Error(`${where}: "content" must be a string; got ${m.content === null ? "null" : typeof m.content}`);
  }
}
function renderChat(messages, options = {}) {
  messages.forEach((m, i) => validateChatMessage(m, `messages[${i}]`));
  const defaultSystem = options.defaultSystem === void 0 ? QWEN2_5_DEFAULT_SYSTEM : options.defaultSystem;
  let out = "";
  let start = 0;
  if (messages.length > 0 && messages[0].role === "system") {
    out += `<|im_start|>system
${messages[0].content}<|im_end|>
`;
    start = 1;
  } else if (defaultSystem !== null) {
    out += `<|im_start|>system
${defaultSystem}<|im_end|>
`;
  }
  for (let i = start; i < messages.length; i++) {
    out += `<|im_start|>${messages[i].role}
${messages[i].content}<|im_end|>
`;
  }
  if (options.addGenerationPrompt) out += "<|im_start|>assistant\n";
  return out;
}
var JINJA_ESCAPES = {
  n: "\n",
  t: "	",
  r: "\r",
  "'": "'",
  '"': '"',
  "\\": "\\"
};
function chatDefaultsFromTemplate(chatTemplate) {
  if (chatTemplate === void 0 || chatTemplate === "") return {
    defaultSystem: QWEN2_5_DEFAULT_SYSTEM
  };
  if (!chatTemplate.includes("<|im_start|>")) {
    throw new Error("chat_template is not ChatML (no <|im_start|>); mesp renders only Qwen ChatML chats");
  }
  const literal = /(['"])<\|im_start\|>system\\n((?:\\.|(?!\1)[^\\])*?)<\|im_end\|>\\n\1/.exec(chatTemplate);
  if (!literal) return {
    defaultSystem: null
  };
  const defaultSystem = literal[2].replace(/\\(.)/g, (m, c) => JINJA_ESCAPES[c] ?? m);
  return {
    defaultSystem
  };
}

// src/data/dataset.ts
function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
function parseMessages(value, field, where) {
  if (!Array.isArray(value)) {
    throw new Error(`${where}: "${field}" must be an array of messages, got ${describe(value)}`);
  }
  if (value.length === 0) throw new Error(`${where}: "${field}" is empty`);
  return value.map((m, i) => {
    validateChatMessage(m, `${where}: ${field}[${i}]`);
    return {
      role: m.role,
      content: m.content
    };
  });
}
function parseIds(value, field, where, allowIgnore) {
  if (!Array.isArray(value)) {
    throw new Error(`${where}: "${field}" must be an array of integers, got ${describe(value)}`);
  }
  value.forEach((v, i) => {
    const ok = Number.isInteger(v) && (v >= 0 || allowIgnore && v === -100);
    if (!ok) {
      const wanted = allowIgnore ? "a non-negative integer or -100" : "a non-negative integer";
      throw new Error(`${where}: ${field}[${i}] must be ${wanted}, got ${JSON.stringify(v)}`);
    }
  });
  return value;
}
function parseRecord(obj, file, line) {
  const where = `${file}:${line}`;
  if (obj.input_ids !== void 0) {
    const inputIds = parseIds(obj.input_ids, "input_ids", where, false);
    if (inputIds.length < 2) throw new Error(`${where}: "input_ids" needs at least 2 tokens to train on`);
    if (obj.labels === void 0) return {
      kind: "tokens",
      inputIds,
      file,
      line
    };
    const labels = parseIds(obj.labels, "labels", where, true);
    if (labels.length !== inputIds.length) {
      throw new Error(`${where}: "labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}`);
    }
    labels.forEach((l, i) => {
      if (l !== -100 && l !== inputIds[i]) {
        throw new Error(`${where}: labels[${i}] is ${l} but input_ids[${i}] is ${inputIds[i]} (use -100 or the same id)`);
      }
    });
    if (!labels.some((l, i) => i > 0 && l !== -100)) {
      throw new Error(`${where}: "labels" has no target (all -100)`);
    }
    return {
      kind: "tokens",
      inputIds,
      labels,
      file,
      line
    };
  }
  if (obj.prompt !== void 0 && obj.completion !== void 0) {
    if (typeof obj.prompt === "string" && typeof obj.completion === "string") {
      const messages = [
        {
          role: "user",
          content: obj.prompt
        },
        {
          role: "assistant",
          content: obj.completion
        }
      ];
      return {
        kind: "chat",
        messages,
        trainFrom: 0,
        file,
        line
      };
    }
    if (Array.isArray(obj.prompt) && Array.isArray(obj.completion)) {
      const prompt = parseMessages(obj.prompt, "prompt", where);
      const completion = parseMessages(obj.completion, "completion", where);
      if (!completion.some((m) => m.role === "assistant")) {
        throw new Error(`${where}: "completion" has no assistant message to train on`);
      }
      return {
        kind: "chat",
        messages: [
          ...prompt,
          ...completion
        ],
        trainFrom: prompt.length,
        file,
        line
      };
    }
    throw new Error(`${where}: "prompt" and "completion" must both be strings or both be message arrays; got ${describe(obj.prompt)} and ${describe(obj.completion)}`);
  }
  if (obj.messages !== void 0) {
    if (Array.isArray(obj.tools) ? obj.tools.length > 0 : obj.tools !== void 0 && obj.tools !== null) {
      throw new Error(`${where}: "tools" are not supported (plain chat only)`);
    }
    const messages = parseMessages(obj.messages, "messages", where);
    if (!messages.some((m) => m.role === "assistant")) {
      throw new Error(`${where}: "messages" has no assistant message to train on`);
    }
    return {
      kind: "chat",
      messages,
      trainFrom: 0,
      file,
      line
    };
  }
  if (obj.text !== void 0) {
    if (typeof obj.text !== "string") {
      throw new Error(`${where}: "text" must be a string, got ${describe(obj.text)}`);
    }
    if (obj.text.length === 0) throw new Error(`${where}: "text" is empty`);
    return {
      kind: "text",
      text: obj.text,
      file,
      line
    };
  }
  if (obj.prompt === void 0 !== (obj.completion === void 0)) {
    const [has, lacks] = obj.prompt === void 0 ? [
      "completion",
      "prompt"
    ] : [
      "prompt",
      "completion"
    ];
    throw new Error(`${where}: "${has}" without "${lacks}" (a prompt+completion record needs both)`);
  }
  const keys = Object.keys(obj).slice(0, 8).map((k) => JSON.stringify(k)).join(", ");
  throw new Error(`${where}: unknown record shape (keys: ${keys || "none"}); expected "text", "prompt"+"completion", "messages" or "input_ids"`);
}
function parseJsonl(text, options) {
  const { file } = options;
  const lines = (text.charCodeAt(0) === 65279 ? text.slice(1) : text).split("\n");
  const records = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === "") continue;
    let value;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      const why = e.message.replace(/ \(line 1 column (\d+)\)$/, "").replace(/ at position (\d+)$/, (_, at) => ` at column ${Number(at) + 1}`);
      const hint = /^\s*[\[{]\s*$/.test(raw) ? " (this reads JSON Lines: one whole JSON object per line; a JSON array or an object over several lines is not)" : "";
      throw new Error(`${file}:${i + 1}: invalid JSON: ${why}${hint}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`${file}:${i + 1}: each line must be a JSON object, got ${describe(value)}`);
    }
    records.push(parseRecord(value, file, i + 1));
  }
  if (records.length === 0) throw new Error(`${file}: no records (the dataset is empty)`);
  return records;
}
var PROGRESS_EVERY = 1e3;
function tokenizeChat(record, tokenizer, defaultSystem, seqLen) {
  const opts = {
    defaultSystem
  };
  const ids = tokenizer.encode(renderChat(record.messages, opts));
  const targets = new Uint8Array(ids.length);
  const prefixLength = (text, what) => {
    const prefix = tokenizer.encode(text);
    const ok = prefix.length <= ids.length && prefix.every((id, k) => id === ids[k]);
    if (!ok) {
      throw new Error(`${record.file}:${record.line}: the tokens of ${what} are not a prefix of the conversation's tokens; cannot place the loss mask`);
    }
    return prefix.length;
  };
  for (let i = Math.max(record.trainFrom, 0); i < record.messages.length; i++) {
    if (record.messages[i].role !== "assistant") continue;
    const before = record.messages.slice(0, i);
    const start = prefixLength(renderChat(before, {
      ...opts,
      addGenerationPrompt: true
    }), `the prompt before message ${i}`);
    if (start >= seqLen) break;
    const end = prefixLength(renderChat(record.messages.slice(0, i + 1), opts), `messages 0..${i}`);
    targets.fill(1, start, end);
  }
  return {
    ids,
    targets
  };
}
function tokenizeExample(record, tokenizer, options) {
  const { seqLen } = options;
  if (!Number.isInteger(seqLen) || seqLen < 2) {
    throw new Error(`seqLen must be an integer \u2265 2, got ${seqLen}`);
  }
  let ids;
  let targets;
  if (record.kind === "text") {
    const list = tokenizer.encode(record.text);
    const eos = tokenizer.tokenToId("<|endoftext|>");
    if (options.appendEosToText !== false && eos !== void 0 && list[list.length - 1] !== eos) {
      list.push(eos);
    }
    ids = list;
    targets = new Uint8Array(list.length).fill(1);
  } else if (record.kind === "chat") {
    const defaultSystem = options.chatDefaults ? options.chatDefaults.defaultSystem : QWEN2_5_DEFAULT_SYSTEM;
    ({ ids, targets } = tokenizeChat(record, tokenizer, defaultSystem, seqLen));
  } else {
    record.inputIds.forEach((id, i) => {
      if (id >= tokenizer.vocabSize) {
        throw new Error(`${record.file}:${record.line}: input_ids[${i}] = ${id} is outside the tokenizer's vocabulary (${tokenizer.vocabSize} tokens; a model's embedding may have more rows, padding)`);
      }
    });
    ids = record.inputIds;
    targets = record.labels ? Uint8Array.from(record.labels, (l) => l === -100 ? 0 : 1) : new Uint8Array(ids.length).fill(1);
  }
  targets[0] = 0;
  const n = Math.min(ids.length, seqLen);
  return {
    ids: Int32Array.from({
      length: n
    }, (_, k) => ids[k]),
    targets: targets.slice(0, n),
    truncated: ids.length - n
  };
}
function tokenizeDataset(records, tokenizer, options) {
  const stats = {
    records: records.length,
    examples: 0,
    truncated: 0,
    dropped: 0,
    tokens: 0,
    targets: 0,
    longest: 0
  };
  const examples = [];
  let done = 0;
  for (const record of records) {
    if (++done % PROGRESS_EVERY === 0) options.onProgress?.(done, records.length);
    const ex = tokenizeExample(record, tokenizer, options);
    if (ex.truncated > 0) stats.truncated++;
    stats.longest = Math.max(stats.longest, ex.ids.length + ex.truncated);
    let count = 0;
    for (const t of ex.targets) count += t;
    if (count === 0 && !(options.keepUntrained && ex.ids.length >= 2)) {
      stats.dropped++;
      continue;
    }
    examples.push(ex);
    stats.examples++;
    stats.tokens += ex.ids.length;
    stats.targets += count;
  }
  options.onProgress?.(records.length, records.length);
  return {
    examples,
    stats
  };
}

// src/data/token_cache.ts
init_describe();

// src/io/crc32.ts
var crcTable;
function crc32(bytes, crc = 0) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c2 = n;
      for (let k = 0; k < 8; k++) c2 = c2 & 1 ? 3988292384 ^ c2 >>> 1 : c2 >>> 1;
      crcTable[n] = c2 >>> 0;
    }
  }
  const table = crcTable;
  let c = (crc ^ 4294967295) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 255] ^ c >>> 8;
  return (c ^ 4294967295) >>> 0;
}

// src/data/token_cache.ts
var TOKEN_CACHE_VERSION = 1;
var MAGIC = [
  77,
  69,
  83,
  80,
  84,
  79,
  75,
  0
];
var FIXED = 24;
async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
function resolveTokenCacheOptions(options, tokenizerConfigJson) {
  if (!Number.isInteger(options.seqLen) || options.seqLen < 2) {
    throw new Error(`seqLen must be an integer \u2265 2, got ${options.seqLen}`);
  }
  let defaultSystem = options.defaultSystem;
  if (defaultSystem === void 0) {
    let template;
    if (tokenizerConfigJson !== void 0) {
      try {
        template = JSON.parse(tokenizerConfigJson).chat_template;
      } catch (e) {
        throw new Error(`tokenizer_config.json: invalid JSON: ${e.message}`);
      }
    }
    defaultSystem = chatDefaultsFromTemplate(typeof template === "string" ? template : void 0).defaultSystem;
  }
  return {
    seqLen: options.seqLen,
    defaultSystem,
    appendEosToText: options.appendEosToText !== false,
    ...options.keepUntrained ? {
      keepUntrained: true
    } : {}
  };
}
function tokenCacheKey(parts) {
  const o = parts.options;
  const canonical = JSON.stringify({
    format: "mesp-token-cache",
    version: TOKEN_CACHE_VERSION,
    dataset: parts.datasetSha256,
    tokenizer: parts.tokenizerSha256,
    tokenizerConfig: parts.tokenizerConfigSha256,
    options: {
      appendEosToText: o.appendEosToText,
      defaultSystem: o.defaultSystem,
      seqLen: o.seqLen,
      ...o.keepUntrained ? {
        keepUntrained: true
      } : {}
    }
  });
  return sha256Hex(new TextEncoder().encode(canonical));
}
function checkLittleEndian() {
  if (new Uint8Array(Uint32Array.of(1).buffer)[0] !== 1) {
    throw new Error("token cache: big-endian hosts are not supported");
  }
}
function encodeTokenCache(examples, meta) {
  checkLittleEndian();
  let total = 0;
  examples.forEach((ex, i) => {
    if (ex.ids.length !== ex.targets.length) {
      throw new Error(`example ${i}: ${ex.ids.length} ids but ${ex.targets.length} targets`);
    }
    total += ex.ids.length;
  });
  if (total > 4294967295) throw new Error(`token cache: ${total} tokens exceed the u32 offset range`);
  let json = new TextEncoder().encode(JSON.stringify(meta));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(32);
    p.set(json);
    json = p;
  }
  const offsetsAt = FIXED + json.length;
  const idsAt = offsetsAt + 4 * (examples.length + 1);
  const targetsAt = idsAt + 4 * total;
  const out = new Uint8Array(targetsAt + total);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, TOKEN_CACHE_VERSION, true);
  view.setUint32(12, json.length, true);
  out.set(json, FIXED);
  const offsets = new Uint32Array(out.buffer, offsetsAt, examples.length + 1);
  const ids = new Int32Array(out.buffer, idsAt, total);
  const targets = out.subarray(targetsAt);
  let at = 0;
  examples.forEach((ex, i) => {
    offsets[i] = at;
    ids.set(ex.ids, at);
    targets.set(ex.targets, at);
    at += ex.ids.length;
  });
  offsets[examples.length] = at;
  view.setUint32(16, crc32(out.subarray(FIXED)), true);
  return out;
}
function invalidUtf8Line(b) {
  const decoder = new TextDecoder("utf-8", {
    fatal: true
  });
  for (let start = 0, line = 1; start <= b.length; line++) {
    let end = b.indexOf(10, start);
    if (end < 0) end = b.length;
    try {
      decoder.decode(b.subarray(start, end));
    } catch {
      return line;
    }
    start = end + 1;
  }
  return 1;
}
function noTargetMessage(file, seqLen, seqLenName = "seqLen") {
  return `${file}: no example has a training target within the first ${seqLen} tokens (${seqLenName})`;
}
async function buildTokenCache(job, onProgress) {
  const { loadTokenizer: loadTokenizer2 } = await Promise.resolve().then(() => (init_tokenizer(), tokenizer_exports));
  const text = (b, what) => {
    try {
      return new TextDecoder("utf-8", {
        fatal: true
      }).decode(b);
    } catch {
      throw new Error(`${what}:${invalidUtf8Line(b)}: not valid UTF-8`);
    }
  };
  const tokenizerJson = text(job.tokenizerJsonBytes, "tokenizer.json");
  const tokenizerConfigJson = job.tokenizerConfigBytes && text(job.tokenizerConfigBytes, "tokenizer_config.json");
  const options = resolveTokenCacheOptions(job.options, tokenizerConfigJson);
  const [datasetSha256, tokenizerSha256, tokenizerConfigSha256] = await Promise.all([
    sha256Hex(job.datasetBytes),
    sha256Hex(job.tokenizerJsonBytes),
    job.tokenizerConfigBytes ? sha256Hex(job.tokenizerConfigBytes) : null
  ]);
  const key = await tokenCacheKey({
    datasetSha256,
    tokenizerSha256,
    tokenizerConfigSha256,
    options
  });
  const records = parseJsonl(text(job.datasetBytes, job.datasetFile), {
    file: job.datasetFile
  });
  const tokenizer = await loadTokenizer2({
    tokenizerJson,
    tokenizerConfigJson
  });
  const { examples, stats } = tokenizeDataset(records, tokenizer, {
    seqLen: options.seqLen,
    chatDefaults: {
      defaultSystem: options.defaultSystem
    },
    appendEosToText: options.appendEosToText,
    keepUntrained: options.keepUntrained,
    onProgress
  });
  if (examples.length === 0) {
    throw new Error(noTargetMessage(job.datasetFile, options.seqLen, job.seqLenName));
  }
  return encodeTokenCache(examples, {
    key,
    datasetSha256,
    tokenizerSha256,
    tokenizerConfigSha256,
    datasetFile: job.datasetFile,
    options,
    vocabSize: tokenizer.vocabSize,
    stats
  });
}

// src/data/tokenize_worker.ts
var scope = globalThis;
scope.onmessage = async (e) => {
  try {
    const bytes = await buildTokenCache(e.data, (progress, total) => scope.postMessage({
      progress,
      total
    }));
    scope.postMessage({
      ok: true,
      bytes
    }, [
      bytes.buffer
    ]);
  } catch (err) {
    scope.postMessage({
      ok: false,
      error: err instanceof Error ? err.message : String(err)
    });
  }
};
