/**
 * Seeded pseudo-random generators, deterministic across runtimes: uniforms for the LoRA initialisation and
 * the data order, normal deviates for random checkpoints.
 *
 * @module
 */

/** xoshiro128** seeded by splitmix32: a small deterministic generator for initialisation and data order. */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0;
  const next32 = () => {
    const z = splitmix32(x);
    x = (x + 0x9e3779b9) >>> 0;
    return z;
  };
  const s = [next32(), next32(), next32(), next32()];
  return () => {
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r / 2 ** 32;
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** FNV-1a hash of a string's UTF-16 code units. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** splitmix32: a well-mixed 32-bit value from a counter (seeds the xoshiro128** states). */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Normal deviates: xoshiro128** (Blackman & Vigna) for uniforms and the Marsaglia polar method for
 * pairs of exact N(0,1) values. Consumed sequentially, so the output does not depend on how the caller
 * chunks its `fill` calls.
 */
export class NormalRng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare = 0;
  #hasSpare = false;

  /** A generator for stream `stream` (e.g. a tensor name) of seed `seed`. */
  constructor(seed: number, stream: string) {
    let h = fnv1a(`${seed}:${stream}`);
    const next = () => (h = splitmix32(h));
    this.#a = next() | 0;
    this.#b = next() | 0;
    this.#c = next() | 0;
    this.#d = next() | 0;
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1; // the all-zero state is a fixed point
  }

  /** Fills `out` with `mean + std · N(0, 1)` values. */
  fill(out: Float32Array, mean: number, std: number): void {
    let a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    let i = 0;
    const n = out.length;
    if (this.#hasSpare && n > 0) {
      out[i++] = mean + std * this.#spare;
      this.#hasSpare = false;
    }
    while (i < n) {
      let u: number, v: number, s: number;
      do {
        // two xoshiro128** steps (`seededRandom`'s), inlined (hot loop); signed results scaled to [-1, 1)
        let r = Math.imul(b, 5);
        r = Math.imul((r << 7) | (r >>> 25), 9);
        let t = b << 9;
        c ^= a;
        d ^= b;
        b ^= c;
        a ^= d;
        c ^= t;
        d = (d << 11) | (d >>> 21);
        u = r * 4.656612873077393e-10;
        r = Math.imul(b, 5);
        r = Math.imul((r << 7) | (r >>> 25), 9);
        t = b << 9;
        c ^= a;
        d ^= b;
        b ^= c;
        a ^= d;
        c ^= t;
        d = (d << 11) | (d >>> 21);
        v = r * 4.656612873077393e-10;
        s = u * u + v * v;
      } while (s >= 1 || s === 0);
      const m = Math.sqrt((-2 * Math.log(s)) / s);
      out[i++] = mean + std * u * m;
      if (i < n) out[i++] = mean + std * v * m;
      else {
        this.#spare = v * m;
        this.#hasSpare = true;
      }
    }
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
  }
}
