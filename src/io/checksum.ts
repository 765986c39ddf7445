/**
 * A fast 64-bit checksum for detecting damaged bytes (a flipped bit, a truncated or stale file), not an
 * adversary: two 32-bit lanes (a MurmurHash3-style mix and an FNV-1a-style multiply) over little-endian
 * 32-bit words. Streaming and split-independent: the value depends only on the bytes, not on how they were
 * cut into updates, so a writer that emits a block in pieces and a reader that reads it whole agree.
 *
 * @module
 */

const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));

function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Accumulates a checksum over bytes; `reset()` makes it reusable without allocating. */
export class Checksum {
  #a = 0;
  #b = 0;
  #length = 0;
  #pending = 0;
  #pendingBytes = 0;
  #scratch?: Uint32Array;

  constructor() {
    this.reset();
  }

  /** Starts over. */
  reset(): this {
    this.#a = 0x9747b28c | 0;
    this.#b = 0x811c9dc5 | 0;
    this.#length = 0;
    this.#pending = 0;
    this.#pendingBytes = 0;
    return this;
  }

  /** Adds bytes. Aligned input is read as 32-bit words in place (no copy, no allocation but a view). */
  update(bytes: Uint8Array): this {
    const n = bytes.length;
    this.#length += n;
    let i = 0;
    while (this.#pendingBytes > 0 && i < n) this.#push(bytes[i++]);
    const words = (n - i) >>> 2;
    if (words > 0) {
      if (((bytes.byteOffset + i) & 3) === 0) {
        this.#words(new Uint32Array(bytes.buffer, bytes.byteOffset + i, words), words);
      } else {
        const scratch = this.#scratch ??= new Uint32Array(16384);
        const u8 = new Uint8Array(scratch.buffer);
        for (let w = 0; w < words; w += scratch.length) {
          const k = Math.min(scratch.length, words - w);
          u8.set(bytes.subarray(i + w * 4, i + (w + k) * 4));
          this.#words(scratch, k);
        }
      }
      i += words * 4;
    }
    while (i < n) this.#push(bytes[i++]);
    return this;
  }

  #push(byte: number): void {
    this.#pending |= byte << (8 * this.#pendingBytes);
    if (++this.#pendingBytes === 4) {
      this.#mix(this.#pending);
      this.#pending = 0;
      this.#pendingBytes = 0;
    }
  }

  #words(w: Uint32Array, n: number): void {
    let a = this.#a, b = this.#b;
    for (let i = 0; i < n; i++) {
      const x = w[i];
      const k = Math.imul(rotl(Math.imul(x, 0xcc9e2d51), 15), 0x1b873593);
      a = Math.imul(rotl(a ^ k, 13), 5) + 0xe6546b64 | 0;
      b = Math.imul(b ^ x, 0x01000193) ^ (b >>> 15);
    }
    this.#a = a;
    this.#b = b;
  }

  #mix(x: number): void {
    const k = Math.imul(rotl(Math.imul(x, 0xcc9e2d51), 15), 0x1b873593);
    this.#a = Math.imul(rotl(this.#a ^ k, 13), 5) + 0xe6546b64 | 0;
    this.#b = Math.imul(this.#b ^ x, 0x01000193) ^ (this.#b >>> 15);
  }

  #high = 0;
  #low = 0;

  /** Computes the value into #high and #low; the state is left as it was. */
  #finish(): void {
    let a = this.#a, b = this.#b;
    const tail = this.#pending ^ Math.imul(this.#length, 0x2545f491) ^ Math.floor(this.#length / 2 ** 32);
    a = Math.imul(rotl(a ^ Math.imul(tail, 0xcc9e2d51), 13), 5) + 0xe6546b64 | 0;
    b = Math.imul(b ^ tail, 0x01000193);
    this.#high = fmix(a ^ b);
    this.#low = fmix(b + Math.imul(a, 0x27d4eb2f) | 0);
  }

  /** Whether the value is `high`:`low` (two unsigned 32-bit halves), without allocating. */
  equals(high: number, low: number): boolean {
    this.#finish();
    return this.#high === high && this.#low === low;
  }

  /** The value's two unsigned 32-bit halves written at `into[at]`, `into[at + 1]`. */
  writeTo(into: Uint32Array, at: number): void {
    this.#finish();
    into[at] = this.#high;
    into[at + 1] = this.#low;
  }

  /** The value as 16 hex digits. */
  hex(): string {
    this.#finish();
    return this.#high.toString(16).padStart(8, "0") + this.#low.toString(16).padStart(8, "0");
  }
}

/** The checksum of the concatenation of `parts` (see {@linkcode Checksum}). */
export function checksumHex(...parts: Uint8Array[]): string {
  const c = new Checksum();
  for (const p of parts) c.update(p);
  return c.hex();
}
