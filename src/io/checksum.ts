/**
 * A fast 64-bit checksum for detecting corrupted bytes (a flipped bit, a truncated or stale file), not an
 * adversary: two 32-bit lanes (a MurmurHash3-style mix and an FNV-1a-style multiply) over little-endian
 * 32-bit words, ~1 GB/s in plain TypeScript, no allocation for 4-byte aligned input.
 *
 * @module
 */

const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));

/**
 * Accumulates a checksum over byte parts. The split into parts is part of the value (each part's length
 * is mixed in), so write and verify with the same parts.
 */
export class Checksum {
  #a = 0x9747b28c | 0;
  #b = 0x811c9dc5 | 0;
  #scratch?: Uint32Array;

  /** Adds one part. */
  update(bytes: Uint8Array): this {
    const words = bytes.length >>> 2;
    if ((bytes.byteOffset & 3) === 0) {
      this.#words(new Uint32Array(bytes.buffer, bytes.byteOffset, words), words);
    } else {
      // unaligned: through a small aligned copy
      const scratch = this.#scratch ??= new Uint32Array(16384);
      const u8 = new Uint8Array(scratch.buffer);
      for (let w = 0; w < words; w += scratch.length) {
        const n = Math.min(scratch.length, words - w);
        u8.set(bytes.subarray(w * 4, (w + n) * 4));
        this.#words(scratch, n);
      }
    }
    let tail = 0;
    for (let i = words * 4; i < bytes.length; i++) tail = (tail << 8) | bytes[i];
    this.#mix(tail ^ Math.imul(bytes.length, 0x2545f491));
    return this;
  }

  #words(w: Uint32Array, n: number): void {
    let a = this.#a, b = this.#b;
    for (let i = 0; i < n; i++) {
      const x = w[i];
      let k = Math.imul(x, 0xcc9e2d51);
      k = Math.imul(rotl(k, 15), 0x1b873593);
      a = Math.imul(rotl(a ^ k, 13), 5) + 0xe6546b64 | 0;
      b = Math.imul(b ^ x, 0x01000193) ^ (b >>> 15);
    }
    this.#a = a;
    this.#b = b;
  }

  #mix(x: number): void {
    this.#a = Math.imul(rotl(this.#a ^ Math.imul(x, 0xcc9e2d51), 13), 5) + 0xe6546b64 | 0;
    this.#b = Math.imul(this.#b ^ x, 0x01000193);
  }

  /** The checksum of the parts so far, as 16 hex digits. */
  hex(): string {
    const fmix = (h: number) => {
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      return (h ^ (h >>> 16)) >>> 0;
    };
    const a = fmix(this.#a ^ this.#b), b = fmix(this.#b + Math.imul(this.#a, 0x27d4eb2f) | 0);
    return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
  }
}

/** The checksum of `parts` (see {@linkcode Checksum}). */
export function checksumHex(...parts: Uint8Array[]): string {
  const c = new Checksum();
  for (const p of parts) c.update(p);
  return c.hex();
}
