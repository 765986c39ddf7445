/**
 * Half-precision conversions: bfloat16 and IEEE binary16 ("f16") to and from float32, as bit patterns in
 * `number`s / `Uint16Array`s. Rounding is round-to-nearest-even, like PyTorch's `.to(torch.bfloat16)` and
 * `.to(torch.float16)`; NaN becomes the canonical quiet NaN (0x7FC0 for bf16, sign|0x7E00 for f16).
 *
 * Safetensors data is little-endian and these helpers reinterpret typed arrays in place, so mesp needs a
 * little-endian platform (every WebAssembly host is one).
 *
 * @module
 */

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error(
    "mesp needs a little-endian platform (safetensors and WebAssembly memory are little-endian)",
  );
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bits of `x` rounded to float32. */
function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

function bitsToF32(bits: number): number {
  scratchU32[0] = bits;
  return scratchF32[0];
}

/** float32 bits → bfloat16 bits, round-to-nearest-even; NaN → 0x7FC0 (as torch). */
function bf16FromBits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** float32 bits → binary16 bits, round-to-nearest-even including subnormals; overflow → ±inf. */
function f16FromBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = f & 0x7f800000;
  if (exp >= 0x47800000) {
    // |x| >= 2^16, inf or NaN: all round to inf (values in [65520, 2^16) overflow via the carry below).
    if (exp === 0x7f800000 && (f & 0x007fffff) !== 0) return sign | 0x7e00;
    return sign | 0x7c00;
  }
  if (exp <= 0x38000000) {
    // |x| < 2^-14: a half subnormal, or zero when below half the smallest subnormal.
    if (exp < 0x33000000) return sign;
    const e = exp >>> 23;
    let sig = 0x00800000 | (f & 0x007fffff);
    const lost = f & ((1 << (113 - e)) - 1); // bits shifted out below
    sig >>>= 113 - e;
    // Round half to even: add half an ulp unless this is an exact tie with an even result.
    if ((sig & 0x3fff) !== 0x1000 || lost !== 0) sig += 0x1000;
    return sign | (sig >>> 13); // a carry into the exponent gives the smallest normal: correct
  }
  let sig = f & 0x007fffff;
  if ((sig & 0x3fff) !== 0x1000) sig += 0x1000;
  // A mantissa carry bumps the exponent; from exponent 30 that is inf: correct.
  return sign | (((exp - 0x38000000) >>> 13) + (sig >>> 13));
}

/** binary16 bits → float32 bits (exact). */
function f16ToBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal: normalize the mantissa.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** Rounds `x` to float32, then to bfloat16; returns the 16-bit pattern. `f32ToBf16Bits(1) === 0x3f80`. */
export function f32ToBf16Bits(x: number): number {
  return bf16FromBits(f32Bits(x));
}

/** The float32 value of a bfloat16 bit pattern (exact). */
export function bf16BitsToF32(bits: number): number {
  return bitsToF32((bits & 0xffff) << 16);
}

/** Rounds `x` to float32, then to IEEE binary16; returns the 16-bit pattern. `f32ToF16Bits(1) === 0x3c00`. */
export function f32ToF16Bits(x: number): number {
  return f16FromBits(f32Bits(x));
}

/** The value of an IEEE binary16 bit pattern (exact). */
export function f16BitsToF32(bits: number): number {
  return bitsToF32(f16ToBits(bits & 0xffff));
}

function output<T extends { length: number }>(
  what: string,
  length: number,
  dst: T | undefined,
  make: () => T,
): T {
  if (dst === undefined) return make();
  if (dst.length !== length) {
    throw new RangeError(`${what}: destination has ${dst.length} elements, need ${length}`);
  }
  return dst;
}

/** Converts float32 values to bfloat16 bit patterns (into `dst` when given; it must have the same length). */
export function f32ToBf16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const out = output("f32ToBf16", src.length, dst, () => new Uint16Array(src.length));
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = bf16FromBits(bits[i]);
  return out;
}

/** Converts bfloat16 bit patterns to float32 (into `dst` when given; it must have the same length). */
export function bf16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = output("bf16ToF32", src.length, dst, () => new Float32Array(src.length));
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** Converts float32 values to IEEE binary16 bit patterns (into `dst` when given; same length). */
export function f32ToF16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const out = output("f32ToF16", src.length, dst, () => new Uint16Array(src.length));
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16FromBits(bits[i]);
  return out;
}

/** Converts IEEE binary16 bit patterns to float32 (into `dst` when given; same length). */
export function f16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = output("f16ToF32", src.length, dst, () => new Float32Array(src.length));
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = f16ToBits(src[i]);
  return out;
}
