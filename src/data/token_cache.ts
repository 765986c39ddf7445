/**
 * Token cache: a dataset tokenized once, stored compactly, so the training process reads ids and
 * target masks without ever holding a tokenizer (~100 MB of RSS, docs/memory_plan.md).
 *
 * Layout (all integers little-endian):
 * ```
 * 0    8 bytes   magic "MESPTOK\0"
 * 8    u32       format version (1)
 * 12   u32       J = byte length of the header JSON (a multiple of 8, space padded)
 * 16   u32       CRC-32 (IEEE) of every byte from offset 24 to the end
 * 20   u32       0 (reserved)
 * 24   J bytes   header JSON (UTF-8): {@link TokenCacheMeta}
 *      u32[count + 1]  example offsets into ids (offsets[0] = 0, offsets[count] = total tokens)
 *      i32[total]      token ids, examples back to back
 *      u8[total]       targets: 1 = token is a training target, 0 = context only
 * ```
 * Targets are stored one byte per token (not bits) so an example's targets are a zero-copy view;
 * they cost a quarter of the ids.
 *
 * The cache key is SHA-256 over the canonical JSON of: the SHA-256 of the dataset file, of
 * `tokenizer.json`, of `tokenizer_config.json` (or null), the resolved tokenize options and the
 * format version. Any change to one of them makes a cache stale.
 *
 * No Deno APIs here: see `token_cache_files.ts` for the file-system side.
 *
 * @module
 */
import { chatDefaultsFromTemplate } from "../text/chat.ts";
import { parseJsonl, tokenizeDataset, type TokenizeStats } from "./dataset.ts";
import type { Sequence } from "./sequence.ts";
import { describeValue } from "../util/describe.ts";

/** Format version written to and required from cache files. */
const TOKEN_CACHE_VERSION = 1;
const MAGIC = [0x4d, 0x45, 0x53, 0x50, 0x54, 0x4f, 0x4b, 0x00]; // "MESPTOK\0"
const FIXED = 24;

/** Tokenization options as requested by a caller. */
export interface TokenCacheOptions {
  /** Maximum tokens per example. */
  seqLen: number;
  /** Default system prompt for chats; undefined = detect from the tokenizer config's chat template. */
  defaultSystem?: string | null;
  /** Append `<|endoftext|>` to text records (default true). */
  appendEosToText?: boolean;
  /** Keep examples with no trained target (`TokenizeOptions.keepUntrained`; default false). */
  keepUntrained?: boolean;
}

/** Tokenization options with every default resolved; part of the cache key. */
export interface ResolvedTokenCacheOptions {
  /** Maximum tokens per example. */
  seqLen: number;
  /** Default system prompt for chats (`null`: none). */
  defaultSystem: string | null;
  /** Append `<|endoftext|>` to text records. */
  appendEosToText: boolean;
  /** Present (true) only when examples without a trained target are kept: other caches keep their keys. */
  keepUntrained?: true;
}

/** What a cache file records about itself (its header JSON). */
export interface TokenCacheMeta {
  /** Cache key (hex SHA-256, see the module doc). */
  key: string;
  /** Hex SHA-256 of the dataset file. */
  datasetSha256: string;
  /** Hex SHA-256 of `tokenizer.json`. */
  tokenizerSha256: string;
  /** Hex SHA-256 of `tokenizer_config.json`, or null without one. */
  tokenizerConfigSha256: string | null;
  /** Dataset file name, for messages. */
  datasetFile: string;
  /** Options the examples were tokenized with. */
  options: ResolvedTokenCacheOptions;
  /** Tokenizer length: every id is below it. */
  vocabSize: number;
  /** Counts from tokenization. */
  stats: TokenizeStats;
}

/** A decoded token cache. Views share the decoded buffer. */
export interface TokenCache {
  /** Header. */
  meta: TokenCacheMeta;
  /** Number of examples. */
  count: number;
  /** `count + 1` offsets into `ids`/`targets`. */
  offsets: Uint32Array;
  /** All ids, examples back to back. */
  ids: Int32Array;
  /** All targets, aligned with `ids`. */
  targets: Uint8Array;
  /** Example `i` as zero-copy views. */
  example(i: number): Required<Sequence>;
}

import { crc32 } from "../io/crc32.ts";
export { crc32 };

/** Hex SHA-256 of `bytes` (Web Crypto). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Resolve option defaults; `tokenizerConfigJson` supplies the chat template's default system prompt. */
export function resolveTokenCacheOptions(
  options: TokenCacheOptions,
  tokenizerConfigJson?: string,
): ResolvedTokenCacheOptions {
  if (!Number.isInteger(options.seqLen) || options.seqLen < 2) {
    throw new Error(`seqLen must be an integer ≥ 2, got ${options.seqLen}`);
  }
  let defaultSystem = options.defaultSystem;
  if (defaultSystem === undefined) {
    let template: unknown;
    if (tokenizerConfigJson !== undefined) {
      try {
        template = JSON.parse(tokenizerConfigJson).chat_template;
      } catch (e) {
        throw new Error(`tokenizer_config.json: invalid JSON: ${(e as Error).message}`);
      }
    }
    defaultSystem =
      chatDefaultsFromTemplate(typeof template === "string" ? template : undefined).defaultSystem;
  }
  return {
    seqLen: options.seqLen,
    defaultSystem,
    appendEosToText: options.appendEosToText !== false,
    ...(options.keepUntrained ? { keepUntrained: true as const } : {}),
  };
}

/** The inputs of a cache key. */
export interface TokenCacheKeyParts {
  /** Hex SHA-256 of the dataset file. */
  datasetSha256: string;
  /** Hex SHA-256 of `tokenizer.json`. */
  tokenizerSha256: string;
  /** Hex SHA-256 of `tokenizer_config.json`, or null. */
  tokenizerConfigSha256: string | null;
  /** Resolved options. */
  options: ResolvedTokenCacheOptions;
}

/** The cache key: hex SHA-256 of the canonical JSON of the parts and the format version. */
export function tokenCacheKey(parts: TokenCacheKeyParts): Promise<string> {
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
      ...(o.keepUntrained ? { keepUntrained: true } : {}),
    },
  });
  return sha256Hex(new TextEncoder().encode(canonical));
}

function checkLittleEndian(): void {
  if (new Uint8Array(Uint32Array.of(1).buffer)[0] !== 1) {
    throw new Error("token cache: big-endian hosts are not supported");
  }
}

/** Serialize examples and their meta into token cache bytes. */
export function encodeTokenCache(examples: readonly Required<Sequence>[], meta: TokenCacheMeta): Uint8Array {
  checkLittleEndian();
  let total = 0;
  examples.forEach((ex, i) => {
    if (ex.ids.length !== ex.targets.length) {
      throw new Error(`example ${i}: ${ex.ids.length} ids but ${ex.targets.length} targets`);
    }
    total += ex.ids.length;
  });
  if (total > 0xffffffff) throw new Error(`token cache: ${total} tokens exceed the u32 offset range`);
  let json = new TextEncoder().encode(JSON.stringify(meta));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
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

/** Options for {@link decodeTokenCache}. */
export interface DecodeTokenCacheOptions {
  /** Name (e.g. file path) used in error messages. Default "token cache". */
  name?: string;
}

/**
 * Decode and fully validate token cache bytes (magic, version, sizes, CRC, header, offsets, id
 * range, target values). Throws an Error naming the cache on any inconsistency, so callers can
 * treat a throw as "corrupt, rebuild".
 */
export function decodeTokenCache(
  input: Uint8Array | ArrayBuffer,
  options: DecodeTokenCacheOptions = {},
): TokenCache {
  checkLittleEndian();
  const name = options.name ?? "token cache";
  let bytes = input instanceof ArrayBuffer ? new Uint8Array(input) : input;
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `${name}: expected the token cache's bytes (a Uint8Array or ArrayBuffer), got ${describeValue(bytes)}`,
    );
  }
  const fail = (why: string): never => {
    throw new Error(`${name}: ${why}`);
  };
  if (bytes.length < FIXED) fail(`too short (${bytes.length} bytes)`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) fail("bad magic (not a mesp token cache)");
  // Typed-array views need 4-byte alignment of the data; copy if the caller's view is unaligned.
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== TOKEN_CACHE_VERSION) fail(`format version ${version}, expected ${TOKEN_CACHE_VERSION}`);
  const jsonLength = view.getUint32(12, true);
  if (jsonLength % 8 !== 0 || FIXED + jsonLength > bytes.length) fail(`bad header length ${jsonLength}`);
  if (crc32(bytes.subarray(FIXED)) !== view.getUint32(16, true)) fail("checksum mismatch (file is corrupt)");
  let meta: TokenCacheMeta;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(FIXED, FIXED + jsonLength)));
  } catch (e) {
    return fail(`header JSON: ${(e as Error).message}`);
  }
  const count = meta?.stats?.examples;
  if (typeof meta?.key !== "string" || !Number.isInteger(count) || !Number.isInteger(meta.vocabSize)) {
    fail("header lacks key, stats.examples or vocabSize");
  }
  const offsetsAt = FIXED + jsonLength;
  if (offsetsAt + 4 * (count + 1) > bytes.length) fail(`truncated: ${count} examples announced`);
  const offsets = new Uint32Array(bytes.buffer, bytes.byteOffset + offsetsAt, count + 1);
  const total = offsets[count];
  const idsAt = offsetsAt + 4 * (count + 1);
  const expected = idsAt + 5 * total;
  if (bytes.length !== expected) fail(`size ${bytes.length} bytes, expected ${expected} for ${total} tokens`);
  const ids = new Int32Array(bytes.buffer, bytes.byteOffset + idsAt, total);
  const targets = bytes.subarray(idsAt + 4 * total);
  if (offsets[0] !== 0) fail("offsets[0] is not 0");
  for (let i = 0; i < count; i++) {
    if (offsets[i + 1] <= offsets[i]) fail(`example ${i} is empty or offsets are not increasing`);
    if (targets[offsets[i]] !== 0) fail(`example ${i}: its first token is marked as a target`);
  }
  for (let k = 0; k < total; k++) {
    if (ids[k] < 0 || ids[k] >= meta.vocabSize) {
      fail(`token ${k}: id ${ids[k]} outside vocabulary ${meta.vocabSize}`);
    }
    if (targets[k] > 1) fail(`token ${k}: target byte ${targets[k]} is not 0 or 1`);
  }
  return {
    meta,
    count,
    offsets,
    ids,
    targets,
    example(i) {
      if (!Number.isInteger(i) || i < 0 || i >= count) {
        throw new RangeError(`${name}: no example ${i} (count ${count})`);
      }
      return {
        ids: ids.subarray(offsets[i], offsets[i + 1]),
        targets: targets.subarray(offsets[i], offsets[i + 1]),
      };
    },
  };
}

/** Everything needed to build a token cache, as bytes (so it can be transferred to a Worker). */
export interface TokenCacheBuildJob {
  /** The JSONL dataset file's bytes. */
  datasetBytes: Uint8Array;
  /** Its name, for error messages and the header. */
  datasetFile: string;
  /** `tokenizer.json` bytes. */
  tokenizerJsonBytes: Uint8Array;
  /** `tokenizer_config.json` bytes, if the model has one. */
  tokenizerConfigBytes?: Uint8Array;
  /** Tokenization options. */
  options: TokenCacheOptions;
  /**
   * What the caller calls the sequence length, for messages (the CLI's `--seq-len`, the web page's "Sequence
   * length"); default `seqLen`.
   */
  seqLenName?: string;
}

/** The 1-based line of the first bytes of `b` that are not UTF-8 (an error path: each line decoded apart). */
export function invalidUtf8Line(b: Uint8Array): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let start = 0, line = 1; start <= b.length; line++) {
    let end = b.indexOf(0x0a, start);
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

/** The error of a dataset with no trained token within the sequence length, naming it as the caller does. */
export function noTargetMessage(file: string, seqLen: number, seqLenName = "seqLen"): string {
  return `${file}: no example has a training target within the first ${seqLen} tokens (${seqLenName})`;
}

/**
 * Parse, tokenize and encode a dataset into token cache bytes in the current thread. Loads the
 * tokenizer (lazily imported, so modules that only decode caches never load the library).
 */
export async function buildTokenCache(
  job: TokenCacheBuildJob,
  onProgress?: (done: number, total: number) => void,
): Promise<Uint8Array> {
  const { loadTokenizer } = await import("../text/tokenizer.ts");
  const text = (b: Uint8Array, what: string) => {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(b);
    } catch {
      throw new Error(`${what}:${invalidUtf8Line(b)}: not valid UTF-8`);
    }
  };
  const tokenizerJson = text(job.tokenizerJsonBytes, "tokenizer.json");
  const tokenizerConfigJson = job.tokenizerConfigBytes &&
    text(job.tokenizerConfigBytes, "tokenizer_config.json");
  const options = resolveTokenCacheOptions(job.options, tokenizerConfigJson);
  const [datasetSha256, tokenizerSha256, tokenizerConfigSha256] = await Promise.all([
    sha256Hex(job.datasetBytes),
    sha256Hex(job.tokenizerJsonBytes),
    job.tokenizerConfigBytes ? sha256Hex(job.tokenizerConfigBytes) : null,
  ]);
  const key = await tokenCacheKey({ datasetSha256, tokenizerSha256, tokenizerConfigSha256, options });
  const records = parseJsonl(text(job.datasetBytes, job.datasetFile), { file: job.datasetFile });
  const tokenizer = await loadTokenizer({ tokenizerJson, tokenizerConfigJson });
  const { examples, stats } = tokenizeDataset(records, tokenizer, {
    seqLen: options.seqLen,
    chatDefaults: { defaultSystem: options.defaultSystem },
    appendEosToText: options.appendEosToText,
    keepUntrained: options.keepUntrained,
    onProgress,
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
    stats,
  });
}

/** Reply of `tokenize_worker.ts`. */
export type TokenizeWorkerReply =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; error: string }
  | { progress: number; total: number };

/**
 * {@link buildTokenCache} in a module Worker that is terminated afterwards, so the tokenizer's
 * heap is torn down with it. The job's byte buffers are transferred (detached here).
 *
 * Note: a Worker shares the process, so the process's peak RSS (VmHWM) still includes the
 * tokenizer while it runs, and the allocator does not return all of it to the OS after
 * termination; a separate process (`token_cache_files.ts`, isolation "subprocess") avoids both.
 */
export async function tokenizeInWorker(
  job: TokenCacheBuildJob,
  onProgress?: (done: number, total: number) => void,
): Promise<Uint8Array> {
  const worker = new Worker(new URL("./tokenize_worker.ts", import.meta.url).href, { type: "module" });
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<TokenizeWorkerReply>) => {
        const reply = e.data;
        if ("progress" in reply) onProgress?.(reply.progress, reply.total);
        else if (reply.ok) resolve(reply.bytes);
        else reject(new Error(reply.error));
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        reject(new Error(`tokenize worker failed: ${e.message}`));
      };
      const transfer = [job.datasetBytes.buffer, job.tokenizerJsonBytes.buffer];
      if (job.tokenizerConfigBytes) transfer.push(job.tokenizerConfigBytes.buffer);
      worker.postMessage(job, [...new Set(transfer)] as ArrayBuffer[]);
    });
  } finally {
    worker.terminate();
  }
}
