/**
 * Byte-level BPE, as Hugging Face `tokenizers` runs a Qwen2/2.5/3 `tokenizer.json`: added tokens matched
 * whole (leftmost, longest), NFC on the text between them, the Split pre-tokenizer's regex, GPT-2's byte →
 * character map, then the merges by rank. Written out here rather than taken from `@huggingface/tokenizers`,
 * whose tables of strings took a process to ~239 MB for Qwen's 151,643 merges: here a Map of the vocabulary
 * and a typed-array table of the merges, ~15 MB of heap once built (`deno task bench:tokenizer`: ~130 MB peak).
 *
 * @module
 */

/** GPT-2's `bytes_to_unicode`: byte → the printable character that stands for it in the vocabulary. */
export function byteToUnicode(): string[] {
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCodePoint(printable ? b : 256 + extra++));
  }
  return chars;
}

/**
 * Unicode White_Space, which the Rust regex `\s` of `tokenizers` means: JavaScript's `\s` differs (it has
 * U+FEFF and lacks U+0085).
 */
const WS = "\\t\\n\\v\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

/**
 * A Split pattern of `tokenizer.json` (Rust regex syntax) as a JavaScript RegExp: `\s`/`\S` spelled as
 * White_Space, and the case-insensitive group of the contractions (`(?i:'s|'t|…)`) written out.
 */
export function splitRegExp(pattern: string): RegExp {
  let source = pattern.replace(/\(\?i:([^()]*)\)/g, (_, body: string) => {
    const alternatives = body.split("|").map((alt) =>
      [...alt].map((c) => {
        const lower = c.toLowerCase(), upper = c.toUpperCase();
        if (lower === upper) return c === "'" ? c : c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        // `s` folds to the long s (U+017F) too, in Rust's regex and in JavaScript's /iu alike
        return `[${lower}${upper}${lower === "s" ? "\u017f" : ""}]`;
      }).join("")
    );
    return `(?:${alternatives.join("|")})`;
  });
  // \s and \S, inside a class or not (the pattern's classes hold \s, never \S)
  source = source.replace(/\[([^\]]*)\]/g, (_, body: string) => `[${body.replaceAll("\\s", WS)}]`)
    .replace(/\\s/g, `[${WS}]`).replace(/\\S/g, `[^${WS}]`);
  return new RegExp(source, "gu");
}

/** What a byte-level BPE tokenizer is made of, from `tokenizer.json`. */
export interface ByteLevelBpeSpec {
  /** `model.vocab`'s entries: token (byte-level characters) → id. */
  vocab: Iterable<[string, number]>;
  /** `model.merges` by rank, each as its pair of tokens (anything else is refused by its rank). */
  merges: Iterable<[string, string] | unknown>;
  /** The Split pre-tokenizer's regex (Rust syntax). */
  pattern: string;
  /** `added_tokens` (matched before anything else, never split). */
  added: { id: number; content: string }[];
}

/** Encoding with a byte-level BPE (see the module doc). */
export class ByteLevelBpe {
  /** Token → id, for the vocabulary and the added tokens. */
  readonly ids: Map<string, number>;
  /** Id → token (byte-level characters, or an added token's content). */
  readonly tokens: string[];
  /** Token id pair → `rank·2^18 + id of the merged token`. */
  readonly #merges = new PairTable();
  readonly #split: RegExp;
  readonly #added: RegExp | undefined;
  readonly #byteIds: Int32Array;
  readonly #cache = new Map<string, number[]>();

  constructor(spec: ByteLevelBpeSpec) {
    this.ids = new Map();
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
      if (id === undefined) {
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
      if (ia === undefined || ib === undefined || merged === undefined) {
        throw new Error(`tokenizer.json: merges[${rank}] (${a} ${b}) names a token the vocabulary lacks`);
      }
      if (this.#merges.get(ia, ib) < 0) this.#merges.set(ia, ib, rank * PAIR + merged);
      rank++;
    }
    this.#split = splitRegExp(spec.pattern);
    // longest first: at one position the longest added token wins, as the Rust matcher's leftmost-longest
    const contents = spec.added.map((t) => t.content).filter((c) => c.length > 0)
      .sort((x, y) => y.length - x.length);
    this.#added = contents.length
      ? new RegExp(contents.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "gu")
      : undefined;
  }

  /** The ids of `text`. */
  encode(text: string): number[] {
    const out: number[] = [];
    if (!this.#added) {
      this.#encodeText(text, out);
      return out;
    }
    let at = 0;
    for (const m of text.matchAll(this.#added)) {
      if (m.index > at) this.#encodeText(text.slice(at, m.index), out);
      out.push(this.ids.get(m[0])!);
      at = m.index + m[0].length;
    }
    if (at < text.length) this.#encodeText(text.slice(at), out);
    return out;
  }

  /** Text between added tokens: NFC, split, then each piece's bytes merged. */
  #encodeText(text: string, out: number[]): void {
    const normal = text.normalize("NFC");
    let at = 0;
    for (const m of normal.matchAll(this.#split)) {
      // Isolated: what the pattern does not match is a piece of its own too
      if (m.index > at) this.#encodePiece(normal.slice(at, m.index), out);
      if (m[0].length) this.#encodePiece(m[0], out);
      at = m.index + m[0].length;
    }
    if (at < normal.length) this.#encodePiece(normal.slice(at), out);
  }

  #encodePiece(piece: string, out: number[]): void {
    let ids = this.#cache.get(piece);
    if (ids === undefined) {
      ids = this.#merge(piece);
      if (this.#cache.size >= CACHE_ENTRIES) this.#cache.clear();
      this.#cache.set(piece, ids);
    }
    for (const id of ids) out.push(id);
  }

  /** The piece's UTF-8 bytes as tokens, merged lowest rank first (leftmost among equals) until none applies. */
  #merge(piece: string): number[] {
    const bytes = ENCODER.encode(piece);
    const ids = Array.from(bytes, (b) => this.#byteIds[b]);
    for (;;) {
      let best = Infinity, at = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const m = this.#merges.get(ids[i], ids[i + 1]);
        if (m >= 0 && m < best) [best, at] = [m, i];
      }
      if (at < 0) return ids;
      // every occurrence of the pair, left to right (the same result as one at a time by position)
      const merged = best % PAIR;
      const [a, b] = [ids[at], ids[at + 1]];
      const next: number[] = [];
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
}

/** Pair keys and merge values pack two numbers below 2^18 (ids, ranks: Qwen's are below 151,700). */
const PAIR = 2 ** 18;
/** Pieces whose merges are remembered (words recur); cleared when full so the memory stays bounded. */
const CACHE_ENTRIES = 20000;
const ENCODER = new TextEncoder();

/**
 * An open-addressing hash table from a pair of token ids to a non-negative number below 2^36, in typed
 * arrays: a Map of Qwen's 151,643 merges keyed by numbers above 2^31 boxes every key and value (~9 MB of
 * heap objects, more in garbage while it grows).
 */
class PairTable {
  #a = new Int32Array(1 << 12).fill(-1);
  #b = new Int32Array(1 << 12);
  #value = new Float64Array(1 << 12);
  #size = 0;

  /** The value of (a, b), or −1. */
  get(a: number, b: number): number {
    const mask = this.#a.length - 1;
    for (let i = hash(a, b) & mask;; i = (i + 1) & mask) {
      if (this.#a[i] === -1) return -1;
      if (this.#a[i] === a && this.#b[i] === b) return this.#value[i];
    }
  }

  set(a: number, b: number, value: number): void {
    if (2 * (this.#size + 1) > this.#a.length) this.#grow();
    const mask = this.#a.length - 1;
    for (let i = hash(a, b) & mask;; i = (i + 1) & mask) {
      if (this.#a[i] === -1) this.#size++;
      else if (this.#a[i] !== a || this.#b[i] !== b) continue;
      [this.#a[i], this.#b[i], this.#value[i]] = [a, b, value];
      return;
    }
  }

  #grow(): void {
    const [a, b, value] = [this.#a, this.#b, this.#value];
    this.#a = new Int32Array(a.length * 2).fill(-1);
    this.#b = new Int32Array(a.length * 2);
    this.#value = new Float64Array(a.length * 2);
    this.#size = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== -1) this.set(a[i], b[i], value[i]);
  }
}

function hash(a: number, b: number): number {
  return Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
}
