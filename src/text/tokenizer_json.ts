/**
 * Reading `tokenizer.json` without building its object graph: Qwen's holds 151,643 vocabulary entries and
 * as many merges, which `JSON.parse` turns into ~450,000 strings and arrays (a transient ~100 MB of heap) only
 * to be copied into the tokenizer's tables. Here the two sections are scanned in place and the rest, a few
 * kB, is parsed as usual; anything unexpected falls back to `JSON.parse` of the whole text.
 *
 * @module
 */

/** `tokenizer.json` with its model's vocabulary and merges taken out (`vocab: {}`, `merges: []`). */
export interface TokenizerJson {
  /** Everything else, as `JSON.parse` gives it. */
  json: Record<string, unknown>;
  /** `model.vocab`'s entries, token → id, in file order. */
  vocab: Iterable<[string, number]>;
  /** `model.merges`, by rank: the pair of each `[a, b]` or `"a b"`, or the entry itself when it is neither. */
  merges: Iterable<[string, string] | unknown>;
}

/** Parses `text` (the contents of `tokenizer.json`); `name` is for errors. */
export function readTokenizerJson(text: string, name = "tokenizer.json"): TokenizerJson {
  const fast = scanSections(text);
  if (fast) return fast;
  const json = parseJsonObject(text, name);
  const model = (json as { model?: { vocab?: unknown; merges?: unknown } }).model;
  const vocab = model?.vocab && typeof model.vocab === "object" && !Array.isArray(model.vocab)
    ? Object.entries(model.vocab as Record<string, number>)
    : [];
  const merges = Array.isArray(model?.merges) ? (model.merges as unknown[]).map(mergePair) : [];
  return { json, vocab, merges };
}

/** `JSON.parse` of a file that must hold an object; errors name the file. */
export function parseJsonObject(text: string, name: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${name}: invalid JSON: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${name}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

function mergePair(m: unknown): [string, string] | unknown {
  if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
    return m as [string, string];
  }
  if (typeof m === "string") {
    const space = m.indexOf(" ");
    if (space > 0 && space === m.lastIndexOf(" ")) return [m.slice(0, space), m.slice(space + 1)];
  }
  return m;
}

/**
 * The fast path: `model.vocab` and `model.merges` located and scanned in place; undefined when the text is
 * not laid out as expected (then the caller parses it all, and names what is wrong).
 */
function scanSections(text: string): TokenizerJson | undefined {
  try {
    const vocabAt = find(text, /"vocab"\s*:\s*\{/g, 0);
    if (vocabAt < 0) return undefined;
    // where each string is (start of its opening quote, end after its closing one), not the strings: the
    // tables are built from these one entry at a time
    const vocab = new Offsets(3);
    let at = scanVocab(text, vocabAt, vocab);
    const vocabEnd = at;
    const mergesAt = find(text, /"merges"\s*:\s*\[/g, at);
    if (mergesAt < 0) return undefined;
    const merges = new Offsets(4);
    at = scanMerges(text, mergesAt, merges);
    const rest = text.slice(0, vocabAt) + "{}" + text.slice(vocabEnd, mergesAt) + "[]" + text.slice(at);
    const json = JSON.parse(rest);
    // the sections found must be the model's own: its vocab and merges are exactly what was taken out
    const model = json?.model;
    if (
      !model || typeof model.vocab !== "object" || Object.keys(model.vocab).length !== 0 ||
      !Array.isArray(model.merges) || model.merges.length !== 0
    ) return undefined;
    return {
      json,
      vocab: (function* () {
        const v = vocab.values;
        for (let i = 0; i < vocab.length; i += 3) yield [stringAt(text, v[i], v[i + 1]), v[i + 2]];
      })(),
      merges: (function* () {
        const m = merges.values;
        for (let i = 0; i < merges.length; i += 4) {
          if (m[i + 2] < 0) yield mergePair(stringAt(text, m[i], m[i + 1]));
          else yield [stringAt(text, m[i], m[i + 1]), stringAt(text, m[i + 2], m[i + 3])];
        }
      })(),
    };
  } catch {
    return undefined;
  }
}

/** A growing Int32Array of offsets, `width` to an entry. */
class Offsets {
  values = new Int32Array(1 << 16);
  length = 0;
  constructor(readonly width: number) {}
  push(...v: number[]): void {
    if (this.length + v.length > this.values.length) {
      const grown = new Int32Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    for (const x of v) this.values[this.length++] = x;
  }
}

/** Index of the `{` or `[` that ends the first match of `pattern` from `from`, or −1. */
function find(text: string, pattern: RegExp, from: number): number {
  pattern.lastIndex = from;
  const m = pattern.exec(text);
  return m ? m.index + m[0].length - 1 : -1;
}

function skipSpace(text: string, at: number): number {
  for (;; at++) {
    const c = text.charCodeAt(at);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return at;
  }
}

/** The index after the JSON string starting at `text[at] === '"'`. */
function skipString(text: string, at: number): number {
  if (text.charCodeAt(at) !== 0x22) throw new Error("expected a string");
  for (let end = at + 1;; end++) {
    const c = text.charCodeAt(end);
    if (Number.isNaN(c)) throw new Error("unterminated string");
    if (c === 0x5c) end++;
    else if (c === 0x22) return end + 1;
  }
}

/** The JSON string `text[start, end)` (quotes included), as a string of its own. */
function stringAt(text: string, start: number, end: number): string {
  const inner = text.slice(start + 1, end - 1);
  // escapes need decoding; and a long slice would keep the whole file alive through V8's sliced strings
  return inner.includes("\\") || inner.length > 12 ? JSON.parse(text.slice(start, end)) : inner;
}

/** Scans `{"tok": id, ...}` from its `{` into `out` (start, end, id); returns the index after its `}`. */
function scanVocab(text: string, at: number, out: Offsets): number {
  at = skipSpace(text, at + 1);
  if (text[at] === "}") return at + 1;
  for (;;) {
    const afterKey = skipString(text, at);
    const keyAt = at;
    at = skipSpace(text, afterKey);
    if (text[at] !== ":") throw new Error("expected ':'");
    at = skipSpace(text, at + 1);
    let end = at;
    while (text.charCodeAt(end) >= 0x30 && text.charCodeAt(end) <= 0x39) end++;
    if (end === at || end - at > 9) throw new Error("expected an id");
    out.push(keyAt, afterKey, +text.slice(at, end));
    at = skipSpace(text, end);
    if (text[at] === "}") return at + 1;
    if (text[at] !== ",") throw new Error("expected ','");
    at = skipSpace(text, at + 1);
  }
}

/**
 * Scans `[["a", "b"], ...]` or `["a b", ...]` from its `[` into `out` (a's start and end, b's; −1, −1 for a
 * `"a b"` string); returns the index after its `]`.
 */
function scanMerges(text: string, at: number, out: Offsets): number {
  at = skipSpace(text, at + 1);
  if (text[at] === "]") return at + 1;
  for (;;) {
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
