import assert from "node:assert/strict";
import {
  bf16BitsToF32,
  bf16ToF32,
  f16BitsToF32,
  f16ToF32,
  f32ToBf16,
  f32ToBf16Bits,
  f32ToF16,
  f32ToF16Bits,
} from "../src/model/dtype.ts";

/** The float32 value with bit pattern `u`. */
function fromBits(u: number): number {
  return new Float32Array(new Uint32Array([u]).buffer)[0];
}

const hex = (n: number) => "0x" + n.toString(16).padStart(4, "0");

Deno.test("f32ToBf16Bits: hand-computed bit patterns", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [3.140625, 0x4049], // exactly representable: (1 + 73/128) * 2
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [NaN, 0x7fc0],
    [fromBits(0x3f808000), 0x3f80], // tie between 0x3f80 and 0x3f81 → even
    [fromBits(0x3f818000), 0x3f82], // tie between 0x3f81 and 0x3f82 → even
    [fromBits(0x3f808001), 0x3f81], // just above the tie
    [fromBits(0x3f807fff), 0x3f80], // just below the tie
    [fromBits(0x7f7fffff), 0x7f80], // largest f32 rounds to inf
    [fromBits(0x7f7f7fff), 0x7f7f],
    [fromBits(0x00000001), 0x0000], // smallest f32 subnormal → 0
    [fromBits(0x00018000), 0x0002], // subnormal tie → even
    [fromBits(0xffc00001), 0x7fc0], // negative NaN with payload → canonical
  ];
  for (const [x, bits] of cases) assert.equal(hex(f32ToBf16Bits(x)), hex(bits), `f32ToBf16Bits(${x})`);
});

Deno.test("bf16BitsToF32: exact values", () => {
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0xc000), -2);
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  assert.equal(bf16BitsToF32(0x7f80), Infinity);
  assert.equal(bf16BitsToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16BitsToF32(0x7fc0)));
  assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
  assert.ok(Object.is(bf16BitsToF32(0x8000), -0));
});

Deno.test("f32ToF16Bits: hand-computed bit patterns incl. subnormals, overflow and ties", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [65504, 0x7bff], // largest finite
    [65519, 0x7bff], // below the overflow tie
    [65520, 0x7c00], // tie between 65504 (odd) and 2^16 → inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [NaN, 0x7e00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -24, 0x0001], // smallest subnormal
    [-(2 ** -24), 0x8001],
    [2 ** -25, 0x0000], // tie between 0 and 2^-24 → even (0)
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 ulps → even (2)
    [5 * 2 ** -25, 0x0002], // tie between 2 and 3 ulps → even (2)
    [2 ** -26, 0x0000],
    [1 + 2 ** -11, 0x3c00], // tie → even
    [1 + 3 * 2 ** -11, 0x3c02], // tie → even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above the tie
    [1 / 3, 0x3555],
    [0.1, 0x2e66],
    [2 ** -14 - 2 ** -25, 0x0400], // tie at the subnormal/normal boundary rounds up to the even normal
  ];
  for (const [x, bits] of cases) assert.equal(hex(f32ToF16Bits(x)), hex(bits), `f32ToF16Bits(${x})`);
});

Deno.test("f16BitsToF32: exact values", () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x0400), 2 ** -14);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
});

// Float16Array (V8's own conversion) is an independent reference for IEEE binary16.
Deno.test("f16: all 65536 patterns decode like Float16Array and re-encode to themselves", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const ref = new Float16Array(all.buffer);
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToF32(h);
    if (Number.isNaN(ref[h])) {
      assert.ok(Number.isNaN(v), hex(h));
      continue;
    }
    assert.ok(Object.is(v, ref[h]), `${hex(h)}: ${v} vs ${ref[h]}`);
    assert.equal(f32ToF16Bits(v), h, `round trip ${hex(h)}`);
  }
  const bulk = f16ToF32(all);
  for (let h = 0; h < 65536; h++) if (!Number.isNaN(ref[h])) assert.ok(Object.is(bulk[h], ref[h]), hex(h));
});

/** Deterministic xorshift32 stream of 32-bit patterns. */
function* randomBits(count: number, seed = 0x9e3779b9): Generator<number> {
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    yield s;
  }
}

Deno.test("f32ToF16: random float32 patterns match Float16Array rounding", () => {
  const src = new Float32Array(200_000);
  let i = 0;
  for (const u of randomBits(src.length)) {
    // Bias half of the samples into the binary16 range so subnormals and ties get exercised.
    const bits = i % 2 === 0 ? u : (u & 0x8fffffff) | 0x30000000;
    src[i++] = fromBits(bits >>> 0);
  }
  const ref = new Uint16Array(new Float16Array(src).buffer);
  const got = f32ToF16(src);
  for (let k = 0; k < src.length; k++) {
    if (Number.isNaN(src[k])) {
      assert.equal(got[k] & 0x7fff, 0x7e00);
      continue;
    }
    if (got[k] !== ref[k]) {
      assert.fail(`f32ToF16(${src[k]}) = ${hex(got[k])}, Float16Array gives ${hex(ref[k])}`);
    }
    if (got[k] !== f32ToF16Bits(src[k])) assert.fail(`bulk and scalar differ at ${src[k]}`);
  }
});

/** Reference bf16 rounding by exact double arithmetic: nearest of the two neighbours, ties to even. */
function refBf16(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  const lo = bits >>> 16;
  const vLo = bf16BitsToF32(lo);
  if (vLo === x || !Number.isFinite(x)) return lo;
  const hi = lo + 1; // one bf16 ulp further from zero (may be inf)
  // Past the largest finite value the next step is 2^128 (IEEE rounds to inf from there).
  const vHi = (hi & 0x7fff) === 0x7f80 ? Math.sign(x) * 2 ** 128 : bf16BitsToF32(hi);
  const dLo = Math.abs(x - vLo);
  const dHi = Math.abs(vHi - x);
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi;
  return lo % 2 === 0 ? lo : hi;
}

Deno.test("f32ToBf16: random float32 patterns match exact round-to-nearest-even", () => {
  const src = new Float32Array(100_000);
  let i = 0;
  for (const u of randomBits(src.length, 12345)) {
    // Every other sample is an exact tie (low 16 bits = 0x8000) to test tie-breaking.
    src[i] = fromBits(i % 2 === 0 ? u : ((u & 0xffff0000) | 0x8000) >>> 0);
    i++;
  }
  const got = f32ToBf16(src);
  for (let k = 0; k < src.length; k++) {
    const want = refBf16(src[k]);
    if (got[k] !== want) assert.fail(`f32ToBf16(${src[k]}) = ${hex(got[k])}, want ${hex(want)}`);
  }
  const back = bf16ToF32(got);
  for (let k = 0; k < src.length; k++) {
    if (!Number.isNaN(src[k])) assert.ok(Object.is(back[k], bf16BitsToF32(got[k])));
  }
});

Deno.test("bulk converters: write into dst, reject a wrong-length dst, work on offset views", () => {
  const buf = new Float32Array([9, 1, -2, 0.5]);
  const src = buf.subarray(1); // non-zero byteOffset
  const dst = new Uint16Array(3);
  assert.equal(f32ToBf16(src, dst), dst);
  assert.deepEqual([...dst], [0x3f80, 0xc000, 0x3f00]);
  assert.deepEqual([...f32ToF16(src)], [0x3c00, 0xc000, 0x3800]);
  assert.deepEqual([...bf16ToF32(new Uint16Array([0x3f80, 0xc000]))], [1, -2]);
  assert.throws(() => f32ToBf16(src, new Uint16Array(2)), /destination has 2 elements, need 3/);
  assert.throws(
    () => f16ToF32(new Uint16Array(2), new Float32Array(1)),
    /destination has 1 elements, need 2/,
  );
});
