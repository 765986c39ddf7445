/**
 * JSONL fine-tuning datasets: parsing (docs/formats.md) and tokenization with loss masks.
 *
 * Line shapes, detected per line (unknown keys are ignored; if several shapes fit, the first in
 * this list wins, following MLX-LM's order, with pre-tokenized data first):
 * - `{"input_ids": [int, ...], "labels"?: [int, ...]}` — pre-tokenized. Every position 1…T−1 is a
 *   target, unless `labels` is given (HF convention: same length as `input_ids`, `-100` = not a
 *   target, any other value must equal the input id at that position).
 * - `{"prompt": "...", "completion": "..."}` — rendered as a chat (MLX-LM behaviour, not TRL's
 *   raw concatenation): `[user: prompt, assistant: completion]` with the model's default system
 *   prompt, so training matches how the model is prompted at inference.
 * - `{"prompt": [messages], "completion": [messages]}` — TRL conversational prompt/completion:
 *   the concatenated conversation is rendered; only assistant turns of `completion` are trained.
 * - `{"messages": [...]}` — a chat; every assistant turn is trained.
 * - `{"text": "..."}` — plain text; every token is trained, and `<|endoftext|>` is appended
 *   (and trained) unless the text already ends with it or `appendEosToText` is false.
 *
 * Whitespace-only lines are skipped (a trailing newline or blank separator lines are common);
 * CRLF line endings and a leading UTF-8 BOM are accepted. A file without any record is an error.
 *
 * @module
 */
import {
  type ChatDefaults,
  type ChatMessage,
  QWEN2_5_DEFAULT_SYSTEM,
  renderChat,
  validateChatMessage,
} from "../text/chat.ts";
import type { Tokenizer } from "../text/tokenizer.ts";
import type { Sequence } from "./sequence.ts";

/** Where a record came from, for error messages. */
export interface RecordSource {
  /** File name as given to {@link parseJsonl}. */
  file: string;
  /** 1-based line number. */
  line: number;
}

/** Plain text: every token trained. */
export interface TextRecord extends RecordSource {
  /** Discriminant. */
  kind: "text";
  /** The text (non-empty). */
  text: string;
}

/** A chat (from `messages`, string prompt/completion, or conversational prompt/completion). */
export interface ChatRecord extends RecordSource {
  /** Discriminant. */
  kind: "chat";
  /** The whole conversation. */
  messages: ChatMessage[];
  /** Only assistant messages at index ≥ `trainFrom` are trained (0 for `messages`). */
  trainFrom: number;
}

/** Pre-tokenized ids. */
export interface TokensRecord extends RecordSource {
  /** Discriminant. */
  kind: "tokens";
  /** Token ids (at least 2). */
  inputIds: number[];
  /** Optional HF-style labels: `-100` marks a position that is not a target. */
  labels?: number[];
}

/** One parsed dataset line. */
export type DatasetRecord = TextRecord | ChatRecord | TokensRecord;

/** Options for {@link parseJsonl}. */
export interface ParseJsonlOptions {
  /** File name used in error messages. */
  file: string;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function parseMessages(value: unknown, field: string, where: string): ChatMessage[] {
  if (!Array.isArray(value)) {
    throw new Error(`${where}: "${field}" must be an array of messages, got ${describe(value)}`);
  }
  if (value.length === 0) throw new Error(`${where}: "${field}" is empty`);
  return value.map((m, i) => {
    validateChatMessage(m, `${where}: ${field}[${i}]`);
    return { role: m.role, content: m.content };
  });
}

function parseIds(value: unknown, field: string, where: string, allowIgnore: boolean): number[] {
  if (!Array.isArray(value)) {
    throw new Error(`${where}: "${field}" must be an array of integers, got ${describe(value)}`);
  }
  value.forEach((v, i) => {
    const ok = Number.isInteger(v) && (v >= 0 || (allowIgnore && v === -100));
    if (!ok) {
      const wanted = allowIgnore ? "a non-negative integer or -100" : "a non-negative integer";
      throw new Error(`${where}: ${field}[${i}] must be ${wanted}, got ${JSON.stringify(v)}`);
    }
  });
  return value as number[];
}

function parseRecord(obj: Record<string, unknown>, file: string, line: number): DatasetRecord {
  const where = `${file}:${line}`;
  if (obj.input_ids !== undefined) {
    const inputIds = parseIds(obj.input_ids, "input_ids", where, false);
    if (inputIds.length < 2) throw new Error(`${where}: "input_ids" needs at least 2 tokens to train on`);
    if (obj.labels === undefined) return { kind: "tokens", inputIds, file, line };
    const labels = parseIds(obj.labels, "labels", where, true);
    if (labels.length !== inputIds.length) {
      throw new Error(
        `${where}: "labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}`,
      );
    }
    labels.forEach((l, i) => {
      if (l !== -100 && l !== inputIds[i]) {
        throw new Error(
          `${where}: labels[${i}] is ${l} but input_ids[${i}] is ${inputIds[i]} (use -100 or the same id)`,
        );
      }
    });
    if (!labels.some((l, i) => i > 0 && l !== -100)) {
      throw new Error(`${where}: "labels" has no target (all -100)`);
    }
    return { kind: "tokens", inputIds, labels, file, line };
  }
  if (obj.prompt !== undefined && obj.completion !== undefined) {
    if (typeof obj.prompt === "string" && typeof obj.completion === "string") {
      const messages: ChatMessage[] = [
        { role: "user", content: obj.prompt },
        { role: "assistant", content: obj.completion },
      ];
      return { kind: "chat", messages, trainFrom: 0, file, line };
    }
    if (Array.isArray(obj.prompt) && Array.isArray(obj.completion)) {
      const prompt = parseMessages(obj.prompt, "prompt", where);
      const completion = parseMessages(obj.completion, "completion", where);
      if (!completion.some((m) => m.role === "assistant")) {
        throw new Error(`${where}: "completion" has no assistant message to train on`);
      }
      return { kind: "chat", messages: [...prompt, ...completion], trainFrom: prompt.length, file, line };
    }
    throw new Error(
      `${where}: "prompt" and "completion" must both be strings or both be message arrays; ` +
        `got ${describe(obj.prompt)} and ${describe(obj.completion)}`,
    );
  }
  if (obj.messages !== undefined) {
    if (Array.isArray(obj.tools) ? obj.tools.length > 0 : obj.tools !== undefined && obj.tools !== null) {
      throw new Error(`${where}: "tools" are not supported (plain chat only)`);
    }
    const messages = parseMessages(obj.messages, "messages", where);
    if (!messages.some((m) => m.role === "assistant")) {
      throw new Error(`${where}: "messages" has no assistant message to train on`);
    }
    return { kind: "chat", messages, trainFrom: 0, file, line };
  }
  if (obj.text !== undefined) {
    if (typeof obj.text !== "string") {
      throw new Error(`${where}: "text" must be a string, got ${describe(obj.text)}`);
    }
    if (obj.text.length === 0) throw new Error(`${where}: "text" is empty`);
    return { kind: "text", text: obj.text, file, line };
  }
  if ((obj.prompt === undefined) !== (obj.completion === undefined)) {
    const [has, lacks] = obj.prompt === undefined ? ["completion", "prompt"] : ["prompt", "completion"];
    throw new Error(`${where}: "${has}" without "${lacks}" (a prompt+completion record needs both)`);
  }
  const keys = Object.keys(obj).slice(0, 8).map((k) => JSON.stringify(k)).join(", ");
  throw new Error(
    `${where}: unknown record shape (keys: ${keys || "none"}); expected "text", "prompt"+"completion", ` +
      `"messages" or "input_ids"`,
  );
}

/**
 * Parse a JSONL dataset into records. Errors name the file and 1-based line.
 *
 * @example
 * ```ts
 * const recs = parseJsonl('{"text": "hi"}\n', { file: "train.jsonl" });
 * // [{ kind: "text", text: "hi", file: "train.jsonl", line: 1 }]
 * ```
 */
export function parseJsonl(text: string, options: ParseJsonlOptions): DatasetRecord[] {
  const { file } = options;
  const lines = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split("\n");
  const records: DatasetRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      // V8 counts within the one line it was given: its "line 1" is this line, its column is ours
      const why = (e as Error).message.replace(/ \(line 1 column (\d+)\)$/, "").replace(
        / at position (\d+)$/,
        (_, at) => ` at column ${Number(at) + 1}`,
      );
      // a whole JSON array (or a pretty-printed object) is JSON, not JSON Lines
      const hint = /^\s*[\[{]\s*$/.test(raw)
        ? " (this reads JSON Lines: one whole JSON object per line; a JSON array or an object over several lines is not)"
        : "";
      throw new Error(`${file}:${i + 1}: invalid JSON: ${why}${hint}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`${file}:${i + 1}: each line must be a JSON object, got ${describe(value)}`);
    }
    records.push(parseRecord(value as Record<string, unknown>, file, i + 1));
  }
  if (records.length === 0) throw new Error(`${file}: no records (the dataset is empty)`);
  return records;
}

/** Options for {@link tokenizeExample} and {@link tokenizeDataset}. */
export interface TokenizeOptions {
  /** Maximum tokens per example; longer examples keep their first `seqLen` tokens. */
  seqLen: number;
  /** Chat rendering defaults (see `chatDefaultsFromTemplate`). Default: Qwen2.5-Instruct's. */
  chatDefaults?: ChatDefaults;
  /** Append `<|endoftext|>` to text records. Default true. */
  appendEosToText?: boolean;
  /**
   * Keep examples that have no trained target within `seqLen` (for scoring every position); default false:
   * dropped and counted, as training could not use them.
   */
  keepUntrained?: boolean;
  /** Told `(records done, records)` every {@linkcode PROGRESS_EVERY} records and at the end (a long file). */
  onProgress?: (done: number, total: number) => void;
}

/** How many records {@linkcode tokenizeDataset} tokenizes between two progress reports. */
export const PROGRESS_EVERY = 1000;

/** A tokenized example: a {@linkcode Sequence} of at most `seqLen` ids, with its targets. */
export interface TokenizedExample extends Sequence {
  targets: Uint8Array;
  /** Tokens cut off by truncation (0 if the example fit). */
  truncated: number;
}

function tokenizeChat(
  record: ChatRecord,
  tokenizer: Tokenizer,
  defaultSystem: string | null,
  seqLen: number,
) {
  const opts = { defaultSystem };
  const ids = tokenizer.encode(renderChat(record.messages, opts));
  const targets = new Uint8Array(ids.length);
  // Token count of a rendered prefix, checked to be a prefix of the full ids: masks are only
  // right if tokenization never merges across the turn boundary (true for ChatML, §6.6).
  const prefixLength = (text: string, what: string): number => {
    const prefix = tokenizer.encode(text);
    const ok = prefix.length <= ids.length && prefix.every((id, k) => id === ids[k]);
    if (!ok) {
      throw new Error(
        `${record.file}:${record.line}: the tokens of ${what} are not a prefix of the conversation's tokens; ` +
          `cannot place the loss mask`,
      );
    }
    return prefix.length;
  };
  for (let i = Math.max(record.trainFrom, 0); i < record.messages.length; i++) {
    if (record.messages[i].role !== "assistant") continue;
    const before = record.messages.slice(0, i);
    const start = prefixLength(
      renderChat(before, { ...opts, addGenerationPrompt: true }),
      `the prompt before message ${i}`,
    );
    if (start >= seqLen) break; // later turns are truncated away anyway
    const end = prefixLength(renderChat(record.messages.slice(0, i + 1), opts), `messages 0..${i}`);
    targets.fill(1, start, end);
  }
  return { ids, targets };
}

/**
 * Tokenize one record and build its target mask: chats train each trained
 * assistant turn's content plus its `<|im_end|>` and `\n`, and mask system/user turns and the
 * `<|im_start|>assistant\n` header; text trains every token; pre-tokenized data trains positions
 * 1…T−1 (or its `labels`). The result is truncated to `seqLen` tokens, keeping the start.
 */
export function tokenizeExample(
  record: DatasetRecord,
  tokenizer: Tokenizer,
  options: TokenizeOptions,
): TokenizedExample {
  const { seqLen } = options;
  if (!Number.isInteger(seqLen) || seqLen < 2) {
    throw new Error(`seqLen must be an integer ≥ 2, got ${seqLen}`);
  }
  let ids: ArrayLike<number>;
  let targets: Uint8Array;
  if (record.kind === "text") {
    const list = tokenizer.encode(record.text);
    const eos = tokenizer.tokenToId("<|endoftext|>");
    if (options.appendEosToText !== false && eos !== undefined && list[list.length - 1] !== eos) {
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
        throw new Error(
          `${record.file}:${record.line}: input_ids[${i}] = ${id} is outside the tokenizer's vocabulary (${tokenizer.vocabSize} tokens; a model's embedding may have more rows, padding)`,
        );
      }
    });
    ids = record.inputIds;
    targets = record.labels
      ? Uint8Array.from(record.labels, (l) => (l === -100 ? 0 : 1))
      : new Uint8Array(ids.length).fill(1);
  }
  targets[0] = 0; // nothing predicts the first token
  const n = Math.min(ids.length, seqLen);
  return {
    ids: Int32Array.from({ length: n }, (_, k) => ids[k]),
    targets: targets.slice(0, n),
    truncated: ids.length - n,
  };
}

/** Counts from {@link tokenizeDataset}. */
export interface TokenizeStats {
  /** Records read. */
  records: number;
  /** Examples kept. */
  examples: number;
  /** Records cut to `seqLen` (kept or dropped). */
  truncated: number;
  /** Records dropped because truncation left no target. */
  dropped: number;
  /** Tokens over kept examples. */
  tokens: number;
  /** Target tokens over kept examples. */
  targets: number;
  /** Tokens of the longest record before cutting (absent in caches written before 2026-12-03). */
  longest?: number;
}

/**
 * Tokenize every record; examples left without any target by truncation are dropped and counted (unless
 * `keepUntrained`: then only those shorter than 2 tokens, which predict nothing).
 */
export function tokenizeDataset(
  records: readonly DatasetRecord[],
  tokenizer: Tokenizer,
  options: TokenizeOptions,
): { examples: TokenizedExample[]; stats: TokenizeStats } {
  const stats: TokenizeStats = {
    records: records.length,
    examples: 0,
    truncated: 0,
    dropped: 0,
    tokens: 0,
    targets: 0,
    longest: 0,
  };
  const examples: TokenizedExample[] = [];
  let done = 0;
  for (const record of records) {
    if (++done % PROGRESS_EVERY === 0) options.onProgress?.(done, records.length);
    const ex = tokenizeExample(record, tokenizer, options);
    if (ex.truncated > 0) stats.truncated++;
    stats.longest = Math.max(stats.longest!, ex.ids.length + ex.truncated);
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
  return { examples, stats };
}
