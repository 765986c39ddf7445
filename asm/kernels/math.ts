// Accurate f32 exp, log and sin/cos on f32x4 lanes (Cephes-style range reduction + polynomial).
// Shared by softmax, activation, loss and rng. They use plain multiply and add only (never `fma`), so both
// build variants give the same bits, and tests/_ref.ts can mirror log and sin/cos bit for bit (the RNG).
//
// Measured (tests/ops_test.ts, against Math.exp / Math.log in f64):
//   exp4: max relative error 8.1e-8 (under one ulp) for x ∈ [−87.33, 88.72]; x < −87.3365 (results
//         below 2^-126) → 0, x > 88.7228 → +inf, NaN → NaN.
//   log4: max relative error 8.0e-8 for positive normal x (|log x| ≥ 0.1; absolute 3.9e-8 near x = 1).
//         Zero, subnormals, negatives and infinities are outside the domain (garbage, never a trap).

// exp(x) = 2^n · e^r, r = x − n·ln2 (ln2 split in two: n·C1 is exact for |n| < 2^15), |r| ≤ ln2/2.
// Results below 2^-126 (x < −87.3365) are flushed to 0: producing subnormals costs x86 a microcode assist
// per lane (measured 13 ns instead of 2 per element).
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  const tiny = f32x4.lt(x, f32x4.splat(-87.33654));
  // pmin/pmax keep NaN (it is the first operand) and are single instructions
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.33654)), f32x4.splat(89.0));
  // n = round-to-nearest-even(x·log2e) by adding 1.5·2^23, whose bits then hold n
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(1.44269504088896341)), f32x4.splat(12582912.0));
  const fx = f32x4.sub(t, f32x4.splat(12582912.0));
  const n = i32x4.sub(t, i32x4.splat(0x4b400000));
  let r = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(r, r);
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, z), r), f32x4.splat(1.0));
  // 2^n as two normal factors (n ∈ [−126, 128]), so results up to FLT_MAX are right and beyond are +inf
  const n1 = i32x4.shr_s(n, 1);
  const n2 = i32x4.sub(n, n1);
  p = f32x4.mul(p, i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23));
  p = f32x4.mul(p, i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23));
  return v128.andnot(p, tiny);
}

// log(x) = e·ln2 + log(m), m ∈ [√½, √2), log(1 + f) = f − f²/2 + f³·P(f).
// @ts-ignore: decorator
@inline export function log4(x: v128): v128 {
  let e = i32x4.sub(i32x4.shr_u(x, 23), i32x4.splat(126));
  let m = v128.or(v128.and(x, i32x4.splat(0x007fffff)), i32x4.splat(0x3f000000)); // [0.5, 1)
  const small = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  e = i32x4.add(e, small); // -1 where m < √½
  const f = f32x4.sub(f32x4.add(m, v128.and(m, small)), f32x4.splat(1.0));
  const fe = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(f, f);
  let y = f32x4.splat(7.0376836292e-2);
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(-1.1514610310e-1));
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(1.1676998740e-1));
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(-1.2420140846e-1));
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(1.4249322787e-1));
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(-1.6668057665e-1));
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(2.0000714765e-1));
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(-2.4999993993e-1));
  y = f32x4.add(f32x4.mul(y, f), f32x4.splat(3.3333331174e-1));
  y = f32x4.mul(f32x4.mul(y, f), z);
  y = f32x4.add(y, f32x4.mul(fe, f32x4.splat(-2.12194440e-4)));
  y = f32x4.add(y, f32x4.mul(z, f32x4.splat(-0.5)));
  return f32x4.add(f32x4.add(f, y), f32x4.mul(fe, f32x4.splat(0.693359375)));
}

// sin and cos of φ ∈ [−π/4, π/4] (Cephes sinf/cosf polynomials).
// @ts-ignore: decorator
@inline export function sin4_small(x: v128): v128 {
  const z = f32x4.mul(x, x);
  let y = f32x4.splat(-1.9515295891e-4);
  y = f32x4.add(f32x4.mul(y, z), f32x4.splat(8.3321608736e-3));
  y = f32x4.add(f32x4.mul(y, z), f32x4.splat(-1.6666654611e-1));
  return f32x4.add(f32x4.mul(f32x4.mul(y, z), x), x);
}

// @ts-ignore: decorator
@inline export function cos4_small(x: v128): v128 {
  const z = f32x4.mul(x, x);
  let y = f32x4.splat(2.443315711809948e-5);
  y = f32x4.add(f32x4.mul(y, z), f32x4.splat(-1.388731625493765e-3));
  y = f32x4.add(f32x4.mul(y, z), f32x4.splat(4.166664568298827e-2));
  y = f32x4.sub(f32x4.mul(f32x4.mul(y, z), z), f32x4.mul(z, f32x4.splat(0.5)));
  return f32x4.add(y, f32x4.splat(1.0));
}

/** Scalar exp with exactly the bits of one exp4 lane. */
// @ts-ignore: decorator
@inline export function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

/** Scalar log with exactly the bits of one log4 lane. */
// @ts-ignore: decorator
@inline export function log1(x: f32): f32 {
  return f32x4.extract_lane(log4(f32x4.splat(x)), 0);
}

/** y[i] = exp(x[i]) for i < n (y may alias x). x, y: [n]. */
export function exp_array(y: usize, x: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), exp4(v128.load(x + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), exp1(load<f32>(x + (<usize>i << 2))));
}

/** y[i] = log(x[i]) for i < n (y may alias x); x positive normal. x, y: [n]. */
export function log_array(y: usize, x: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), log4(v128.load(x + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), log1(load<f32>(x + (<usize>i << 2))));
}
