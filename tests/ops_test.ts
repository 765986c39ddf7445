// The non-GEMM kernels (norm, rope, softmax, activation, loss, elementwise, optim, rng, math) in every
// variant against the f64 references of tests/_ref.ts, on odd sizes, with row sub-ranges, leading
// dimensions and in-place aliasing. Each backward reference is first checked by central finite differences
// of its forward (that checks the derivation); the wasm backward is then checked against it (that checks
// the implementation).
import { assert, assertEquals } from "./_assert.ts";
import { Arena } from "../src/runtime/arena.ts";
import { KERNEL_FILES, kernelImports, type Kernels, loadKernels, VARIANTS } from "../src/runtime/kernels.ts";
import { KERNEL_PARAMS } from "../src/runtime/kernel_exports.ts";
import * as ref from "./_ref.ts";

const EPS32 = 2 ** -23;

/** Deterministic uniform(-1, 1) numbers. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 - 1;
  };
}

function randF32(n: number, rand: () => number, scale = 1, shift = 0): Float32Array {
  return Float32Array.from({ length: n }, () => shift + scale * rand());
}

/** Named f32/i32 buffers (sizes in elements) laid out by an Arena in the kernels' memory. */
class Bufs {
  readonly arena: Arena;
  constructor(k: Kernels, sizes: Record<string, number>) {
    this.arena = Arena.create(
      k,
      Object.entries(sizes).map(([name, n]) => ({ name, bytes: Math.max(4, n * 4) })),
    );
  }
  ptr(name: string): number {
    return this.arena.ptr(name);
  }
  f32(name: string): Float32Array {
    return this.arena.f32(name);
  }
  i32(name: string): Int32Array {
    return this.arena.i32(name);
  }
}

/**
 * Elementwise |got − want| ≤ tol(i) with a message naming the worst element. Returns the largest
 * error / tolerance ratio.
 */
function checkClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: (i: number) => number,
  what: string,
): number {
  assertEquals(got.length, want.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const t = tol(i);
    if (!(err <= t)) throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]} (err ${err}, tol ${t})`);
    if (t > 0 && err / t > worst) {
      worst = err / t;
      at = i;
    }
  }
  if (Deno.env.get("OPS_VERBOSE")) console.log(`${what}: worst err/tol ${worst.toFixed(3)} at ${at}`);
  return worst;
}

/** Relative tolerance `rtol·|want| + atol`. */
function rel(want: ArrayLike<number>, rtol: number, atol = 0): (i: number) => number {
  return (i) => rtol * Math.abs(want[i]) + atol;
}

function assertBitwise(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assertEquals(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) throw new Error(`${what}[${i}]: ${a[i]} vs ${b[i]} (not bit-identical)`);
  }
}

/** Dense [rows, d] from a strided [rows, ld] view. */
function unpad(x: ArrayLike<number>, rows: number, d: number, ld: number): Float64Array {
  const out = new Float64Array(rows * d);
  for (let t = 0; t < rows; t++) for (let i = 0; i < d; i++) out[t * d + i] = x[t * ld + i];
  return out;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

const SIZES = [1, 3, 17, 63, 65, 130];

// ================================================================ references vs finite differences

Deno.test("_ref backward passes equal central finite differences of their forwards", () => {
  const rand = rng(7);
  const fd = (
    name: string,
    analytic: ArrayLike<number>,
    f: (x: Float64Array) => number,
    x: ArrayLike<number>,
  ) => {
    const num = ref.centralDiff(f, x);
    const scale = maxAbs(num);
    checkClose(analytic, num, () => 1e-7 * (1 + scale), `finite differences of ${name}`);
  };
  // RMSNorm: L = Σ R ⊙ y(x)
  {
    const rows = 3, d = 7, eps = 1e-6;
    const x = Array.from({ length: rows * d }, rand), w = Array.from({ length: d }, () => 1 + 0.3 * rand());
    const R = Array.from({ length: rows * d }, rand);
    const L = (xx: Float64Array) => ref.dotF64(ref.rmsnormForward(xx, w, { rows, d, eps }).y, R);
    fd("rmsnorm", ref.rmsnormBackward(R, x, { rows, d, w, eps }), L, x);
  }
  // RoPE
  {
    const rows = 3, nHeads = 2, headDim = 6, pos0 = 2;
    const t = ref.ropeTables(8, { headDim, theta: 10 });
    const o = { rows, nHeads, headDim, pos0, cos: t.cos, sin: t.sin };
    const x = Array.from({ length: rows * nHeads * headDim }, rand), R = x.map(() => rand());
    fd("rope", ref.ropeBackward(R, o), (xx) => ref.dotF64(ref.ropeForward(xx, o), R), x);
  }
  // causal softmax (gradient with respect to the raw scores)
  {
    const o = { rows: 4, cols: 6, scale: 0.7, qPos0: 1 };
    const s = Array.from({ length: o.rows * o.cols }, () => 3 * rand()), R = s.map(() => rand());
    const p = ref.softmaxCausalForward(s, o);
    fd(
      "softmax",
      ref.softmaxCausalBackward(R, p, o),
      (ss) => ref.dotF64(ref.softmaxCausalForward(ss, o), R),
      s,
    );
  }
  // SwiGLU, both inputs
  {
    const g = Array.from({ length: 9 }, () => 4 * rand()), u = g.map(() => rand()), R = g.map(() => rand());
    const { dg, du } = ref.swigluBackward(R, { g, u });
    fd("swiglu dg", dg, (gg) => ref.dotF64(ref.swigluForward(gg, u), R), g);
    fd("swiglu du", du, (uu) => ref.dotF64(ref.swigluForward(g, uu), R), u);
  }
  // cross-entropy with row weights (one untrained row)
  {
    const rows = 3, vocab = 5, targets = [2, 0, -100], weights = [0.5, 0.5, 0];
    const logits = Array.from({ length: rows * vocab }, () => 3 * rand());
    const o = { rows, vocab, weights };
    fd(
      "cross-entropy",
      ref.crossEntropyBackward(logits, targets, o),
      (l) => ref.weightedLoss(l, targets, o),
      logits,
    );
  }
});

// ================================================================ math: exp, log accuracy

for (const variant of VARIANTS) {
  Deno.test(`math ${variant}: exp, log accuracy against Math (f64)`, async () => {
    const k = await loadKernels({ variant });
    const N = 1 << 19;
    const b = new Bufs(k, { x: N, y: N });
    const x = b.f32("x"), y = b.f32("y");
    const rand = rng(11);
    const run = (fn: "exp_array" | "log_array", fill: (i: number) => number) => {
      for (let i = 0; i < N; i++) x[i] = fill(i);
      k.exports[fn](b.ptr("y"), b.ptr("x"), N);
    };
    const maxRel = (exact: (v: number) => number, skip = (_v: number) => false) => {
      let m = 0;
      for (let i = 0; i < N; i++) {
        if (skip(x[i])) continue;
        const w = exact(x[i]);
        m = Math.max(m, Math.abs(y[i] - w) / Math.abs(w));
      }
      return m;
    };
    // exp over the whole range with normal results, and densely where softmax and the loss use it
    run("exp_array", (i) => -87.33 + 176.05 * (i / N) + 1e-3 * rand());
    const expAll = maxRel(Math.exp);
    run("exp_array", () => -20 * Math.abs(rand()));
    const expNeg = maxRel(Math.exp);
    assert(expAll <= 2e-7 && expNeg <= 2e-7, `exp max relative error ${expAll} / ${expNeg}`);
    // results below 2^-126 flush to 0; just above, full accuracy
    run("exp_array", (i) => -103.9 + 16.5 * (i / N));
    for (let i = 0; i < N; i++) {
      const w = Math.exp(x[i]);
      if (x[i] < Math.fround(-87.33654)) {
        assert(Object.is(y[i], 0), `exp(${x[i]}) = ${y[i]}, want the flush to 0`);
      } else assert(Math.abs(y[i] - w) <= 2e-7 * w, `exp(${x[i]}) = ${y[i]}`);
    }
    // special values
    const spec = [0, -0, -Infinity, Infinity, NaN, 89, 1000, -87.34, -1e30, 88.72];
    for (let i = 0; i < spec.length; i++) x[i] = spec[i];
    k.exports.exp_array(b.ptr("y"), b.ptr("x"), spec.length);
    assertEquals([...y.subarray(0, 9)], [1, 1, 0, Infinity, NaN, Infinity, Infinity, 0, 0]);
    assert(
      Number.isFinite(y[9]) && Math.abs(y[9] / Math.exp(Math.fround(88.72)) - 1) < 2e-7,
      `exp(88.72) = ${y[9]}`,
    );

    // log over all positive normal floats (random bit patterns), and around 1 (absolute there)
    const u = new Uint32Array(x.buffer, x.byteOffset, N);
    run("log_array", () => 0);
    for (let i = 0; i < N; i++) {
      u[i] = 0x00800000 + Math.floor(((rand() + 1) / 2) * (0x7f7fffff - 0x00800000));
    }
    k.exports.log_array(b.ptr("y"), b.ptr("x"), N);
    const logAll = maxRel(Math.log, (v) => Math.abs(Math.log(v)) < 0.1);
    run("log_array", (i) => 0.5 + 1.5 * (i / N));
    const logMid = maxRel(Math.log, (v) => Math.abs(Math.log(v)) < 0.1);
    let logAbs = 0;
    for (let i = 0; i < N; i++) logAbs = Math.max(logAbs, Math.abs(y[i] - Math.log(x[i])));
    run("log_array", (i) => 1 + 4096 * (i / N) + 1e-3 * Math.abs(rand()));
    const logSums = maxRel(Math.log, (v) => v === 1);
    assert(
      logAll <= 2e-7 && logMid <= 2e-7 && logSums <= 2e-7,
      `log max relative error ${logAll} ${logMid} ${logSums}`,
    );
    assert(logAbs <= 6e-8, `log max absolute error on [0.5, 2]: ${logAbs}`);
    // the TypeScript mirror used by the RNG gives the same bits
    for (let i = 0; i < 4096; i++) assert(Object.is(ref.logF32(x[i]), y[i]), `logF32(${x[i]})`);

    console.log(
      `  ${variant}: max rel err exp ${expAll.toExponential(2)} (x ≤ 0: ${expNeg.toExponential(2)}), ` +
        `log ${Math.max(logAll, logMid, logSums).toExponential(2)} (abs near 1: ${logAbs.toExponential(2)})`,
    );
  });
}

// ================================================================ per-variant kernel tests

for (const variant of VARIANTS) {
  Deno.test(`rmsnorm ${variant}: forward and backward on odd sizes, ld, row splits, accumulate, in place`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    let seed = 100;
    for (const d of [...SIZES, 896]) {
      const rand = rng(seed++);
      const rows = 7, eps = 1e-6, ldX = d + (seed % 3), ldY = d + ((seed + 1) % 4);
      const x = randF32(rows * ldX, rand, 1.5, 0.2);
      const w = randF32(d, rand, 0.3, 1);
      const dy = randF32(rows * ldX, rand);
      const dx0 = randF32(rows * ldY, rand);
      const b = new Bufs(k, {
        x: rows * ldX,
        w: d,
        y: rows * ldY,
        y2: rows * ldY,
        rstd: rows,
        rstd2: rows,
        dy: rows * ldX,
        dx: rows * ldY,
        dx2: rows * ldY,
      });
      b.f32("x").set(x);
      b.f32("w").set(w);
      b.f32("y").fill(777);
      b.f32("y2").fill(777);
      // whole range, and the same rows split in two calls (what a thread pool does)
      kx.rmsnorm_forward(b.ptr("y"), b.ptr("rstd"), b.ptr("x"), b.ptr("w"), d, ldX, ldY, eps, 0, rows);
      kx.rmsnorm_forward(b.ptr("y2"), b.ptr("rstd2"), b.ptr("x"), b.ptr("w"), d, ldX, ldY, eps, 0, 3);
      kx.rmsnorm_forward(b.ptr("y2"), b.ptr("rstd2"), b.ptr("x"), b.ptr("w"), d, ldX, ldY, eps, 3, rows);
      assertBitwise(b.f32("y"), b.f32("y2"), `rmsnorm d=${d} split`);
      const xd = unpad(x, rows, d, ldX);
      const want = ref.rmsnormForward(xd, w, { rows, d, eps });
      const y = b.f32("y");
      for (let t = 0; t < rows; t++) {
        for (let i = d; i < ldY; i++) assertEquals(y[t * ldY + i], 777, "rmsnorm wrote padding");
      }
      checkClose(unpad(y, rows, d, ldY), want.y, rel(want.y, 1e-5, 1e-30), `rmsnorm y d=${d}`);
      checkClose(b.f32("rstd"), want.rstd, rel(want.rstd, 1e-5), `rmsnorm rstd d=${d}`);

      // backward, overwrite and accumulate
      b.f32("dy").set(dy);
      const dyd = unpad(dy, rows, d, ldX);
      const gradRef = ref.rmsnormBackward(dyd, xd, { rows, d, w, eps });
      // per-element error scale: the two terms rstd·w·dy and rstd·x̂·c that are subtracted
      const mag = new Float64Array(rows * d);
      for (let t = 0; t < rows; t++) {
        let c = 0;
        for (let i = 0; i < d; i++) c += xd[t * d + i] * want.rstd[t] * w[i] * dyd[t * d + i];
        c /= d;
        for (let i = 0; i < d; i++) {
          mag[t * d + i] = want.rstd[t] *
            (Math.abs(w[i] * dyd[t * d + i]) + Math.abs(xd[t * d + i] * want.rstd[t] * c));
        }
      }
      for (const acc of [0, 1]) {
        b.f32("dx").set(dx0);
        b.f32("dx2").set(dx0);
        kx.rmsnorm_backward(
          b.ptr("dx"),
          b.ptr("dy"),
          b.ptr("x"),
          b.ptr("w"),
          b.ptr("rstd"),
          d,
          ldY,
          ldX,
          ldX,
          acc,
          0,
          rows,
        );
        kx.rmsnorm_backward(
          b.ptr("dx2"),
          b.ptr("dy"),
          b.ptr("x"),
          b.ptr("w"),
          b.ptr("rstd"),
          d,
          ldY,
          ldX,
          ldX,
          acc,
          0,
          4,
        );
        kx.rmsnorm_backward(
          b.ptr("dx2"),
          b.ptr("dy"),
          b.ptr("x"),
          b.ptr("w"),
          b.ptr("rstd"),
          d,
          ldY,
          ldX,
          ldX,
          acc,
          4,
          rows,
        );
        assertBitwise(b.f32("dx"), b.f32("dx2"), `rmsnorm backward d=${d} split`);
        const dx = b.f32("dx");
        for (let t = 0; t < rows; t++) {
          for (let i = d; i < ldY; i++) assertEquals(dx[t * ldY + i], dx0[t * ldY + i], "padding");
        }
        const base = unpad(dx0, rows, d, ldY);
        const wantDx = gradRef.map((v, i) => v + (acc ? base[i] : 0));
        checkClose(
          unpad(dx, rows, d, ldY),
          wantDx,
          (i) => 1e-5 * (Math.abs(wantDx[i]) + mag[i]) + (acc ? EPS32 * Math.abs(base[i]) : 0),
          `rmsnorm dx d=${d} acc=${acc}`,
        );
      }
      // in place: dx over dy (same ld), no accumulate
      kx.rmsnorm_backward(
        b.ptr("dy"),
        b.ptr("dy"),
        b.ptr("x"),
        b.ptr("w"),
        b.ptr("rstd"),
        d,
        ldX,
        ldX,
        ldX,
        0,
        0,
        rows,
      );
      kx.rmsnorm_backward(
        b.ptr("dx"),
        b.ptr("dx"),
        b.ptr("x"),
        b.ptr("w"),
        b.ptr("rstd"),
        d,
        ldY,
        ldY,
        ldX,
        0,
        0,
        0,
      ); // empty range: no-op
      checkClose(
        unpad(b.f32("dy"), rows, d, ldX),
        gradRef,
        (i) => 1e-5 * (Math.abs(gradRef[i]) + mag[i]),
        `rmsnorm in place d=${d}`,
      );
      // in place forward: y over x
      kx.rmsnorm_forward(b.ptr("x"), b.ptr("rstd2"), b.ptr("x"), b.ptr("w"), d, ldX, ldX, eps, 0, rows);
      assertBitwise(
        unpad(b.f32("x"), rows, d, ldX),
        unpad(b.f32("y"), rows, d, ldY),
        `rmsnorm in place forward d=${d}`,
      );
    }
  });

  Deno.test(`rope ${variant}: forward, inverse, odd head sizes, ld, positions, row splits`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    let seed = 200;
    for (const headDim of [2, 6, 10, 34, 64, 130]) {
      for (const nHeads of [1, 3]) {
        const rand = rng(seed++);
        const rows = 5, pos0 = seed % 7, maxPos = pos0 + rows + 2, half = headDim / 2;
        const width = nHeads * headDim, ld = width + (seed % 3) * 5;
        const tab = ref.ropeTables(maxPos, { headDim, theta: 10000 });
        const cos = Float32Array.from(tab.cos), sin = Float32Array.from(tab.sin);
        const x = randF32(rows * ld, rand, 2);
        const b = new Bufs(k, { x: rows * ld, x2: rows * ld, cos: maxPos * half, sin: maxPos * half });
        b.f32("cos").set(cos);
        b.f32("sin").set(sin);
        b.f32("x").set(x);
        b.f32("x2").set(x);
        kx.rope_forward(b.ptr("x"), b.ptr("cos"), b.ptr("sin"), nHeads, headDim, ld, pos0, 0, rows);
        kx.rope_forward(b.ptr("x2"), b.ptr("cos"), b.ptr("sin"), nHeads, headDim, ld, pos0, 2, rows);
        kx.rope_forward(b.ptr("x2"), b.ptr("cos"), b.ptr("sin"), nHeads, headDim, ld, pos0, 0, 2);
        assertBitwise(b.f32("x"), b.f32("x2"), `rope hd=${headDim} split`);
        const o = { rows, nHeads, headDim, pos0, cos, sin };
        const xd = unpad(x, rows, width, ld);
        const want = ref.ropeForward(xd, o);
        const got = b.f32("x");
        for (let t = 0; t < rows; t++) {
          for (let i = width; i < ld; i++) assertEquals(got[t * ld + i], x[t * ld + i], "rope padding");
        }
        // error scale per element: |a·c| + |b·s|
        const mag = (v: ArrayLike<number>) => (i: number) => {
          const t = Math.floor(i / width), r = i % width, h = Math.floor(r / headDim), j = r % headDim % half;
          const a = v[t * width + h * headDim + j], bb = v[t * width + h * headDim + half + j];
          return 2 * EPS32 * (Math.abs(a) + Math.abs(bb)) + 1e-30;
        };
        checkClose(unpad(got, rows, width, ld), want, mag(xd), `rope forward hd=${headDim} heads=${nHeads}`);
        // backward = transposed rotation of a gradient
        const dy = randF32(rows * ld, rand);
        b.f32("x").set(dy);
        kx.rope_backward(b.ptr("x"), b.ptr("cos"), b.ptr("sin"), nHeads, headDim, ld, pos0, 0, rows);
        const dyd = unpad(dy, rows, width, ld);
        checkClose(
          unpad(b.f32("x"), rows, width, ld),
          ref.ropeBackward(dyd, o),
          mag(dyd),
          `rope backward hd=${headDim}`,
        );
        // backward undoes forward (up to cos² + sin² = 1 in f32)
        b.f32("x").set(x);
        kx.rope_forward(b.ptr("x"), b.ptr("cos"), b.ptr("sin"), nHeads, headDim, ld, pos0, 0, rows);
        kx.rope_backward(b.ptr("x"), b.ptr("cos"), b.ptr("sin"), nHeads, headDim, ld, pos0, 0, rows);
        checkClose(
          unpad(b.f32("x"), rows, width, ld),
          xd,
          (i) => 4 * mag(xd)(i),
          `rope round trip hd=${headDim}`,
        );
      }
    }
  });

  Deno.test(`softmax ${variant}: causal forward/backward, masks exactly 0, in place, row splits`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    let seed = 300;
    for (const cols of SIZES) {
      for (
        const [rows, qPos0] of [[cols, 0], [Math.min(cols, 5), cols - Math.min(cols, 5)], [3, 1], [
          4,
          cols + 3,
        ]]
      ) {
        const rand = rng(seed++);
        const ld = cols + (seed % 3), scale = 0.125 * (1 + (seed % 4));
        const o = { rows, cols, scale, qPos0 };
        const s = randF32(rows * ld, rand, 12);
        const b = new Bufs(k, {
          s: rows * ld,
          p: rows * ld,
          p2: rows * ld,
          dp: rows * ld,
          ds: rows * ld,
          ds2: rows * ld,
        });
        b.f32("s").set(s);
        b.f32("p").fill(777);
        b.f32("p2").fill(777);
        kx.softmax_causal_forward(b.ptr("p"), b.ptr("s"), cols, ld, scale, qPos0, 0, rows);
        kx.softmax_causal_forward(b.ptr("p2"), b.ptr("s"), cols, ld, scale, qPos0, 0, rows >> 1);
        kx.softmax_causal_forward(b.ptr("p2"), b.ptr("s"), cols, ld, scale, qPos0, rows >> 1, rows);
        assertBitwise(b.f32("p"), b.f32("p2"), `softmax cols=${cols} split`);
        const p = b.f32("p");
        const sd = unpad(s, rows, cols, ld);
        const want = ref.softmaxCausalForward(sd, o);
        for (let i = 0; i < rows; i++) {
          const nv = ref.visibleCols(i, o);
          for (let j = nv; j < cols; j++) {
            assert(Object.is(p[i * ld + j], 0), `softmax masked (${i},${j}) = ${p[i * ld + j]}`);
          }
          for (let j = cols; j < ld; j++) assertEquals(p[i * ld + j], 777, "softmax padding");
        }
        // every probability to 1e-5 relative (|scale·s| ≤ 6: exp sees arguments ≥ −12)
        checkClose(
          unpad(p, rows, cols, ld),
          want,
          rel(want, 1e-5, 1e-35),
          `softmax p cols=${cols} rows=${rows} q0=${qPos0}`,
        );
        // in place over s
        kx.softmax_causal_forward(b.ptr("s"), b.ptr("s"), cols, ld, scale, qPos0, 0, rows);
        assertBitwise(unpad(b.f32("s"), rows, cols, ld), unpad(p, rows, cols, ld), "softmax in place");

        // backward with dp over every column (masked ones included: the kernel must ignore them)
        const dp = randF32(rows * ld, rand);
        b.f32("dp").set(dp);
        b.f32("ds").fill(777);
        b.f32("ds2").fill(777);
        kx.softmax_causal_backward(b.ptr("ds"), b.ptr("p"), b.ptr("dp"), cols, ld, scale, qPos0, 0, rows);
        kx.softmax_causal_backward(b.ptr("ds2"), b.ptr("p"), b.ptr("dp"), cols, ld, scale, qPos0, 1, rows);
        kx.softmax_causal_backward(b.ptr("ds2"), b.ptr("p"), b.ptr("dp"), cols, ld, scale, qPos0, 0, 1);
        assertBitwise(b.f32("ds"), b.f32("ds2"), "softmax backward split");
        const pd = unpad(p, rows, cols, ld), dpd = unpad(dp, rows, cols, ld);
        const wantDs = ref.softmaxCausalBackward(dpd, pd, o);
        const mag = new Float64Array(rows * cols);
        for (let i = 0; i < rows; i++) {
          let c = 0;
          const nv = ref.visibleCols(i, o);
          for (let j = 0; j < nv; j++) c += pd[i * cols + j] * dpd[i * cols + j];
          for (let j = 0; j < nv; j++) {
            mag[i * cols + j] = scale * pd[i * cols + j] * (Math.abs(dpd[i * cols + j]) + Math.abs(c));
          }
        }
        const ds = b.f32("ds");
        for (let i = 0; i < rows; i++) {
          for (let j = ref.visibleCols(i, o); j < cols; j++) {
            assert(Object.is(ds[i * ld + j], 0), "softmax backward mask");
          }
        }
        checkClose(
          unpad(ds, rows, cols, ld),
          wantDs,
          (i) => 1e-5 * (Math.abs(wantDs[i]) + mag[i]) + 1e-35,
          `softmax ds cols=${cols}`,
        );
        // in place over dp
        kx.softmax_causal_backward(b.ptr("dp"), b.ptr("p"), b.ptr("dp"), cols, ld, scale, qPos0, 0, rows);
        assertBitwise(
          unpad(b.f32("dp"), rows, cols, ld),
          unpad(ds, rows, cols, ld),
          "softmax backward in place",
        );
      }
    }
  });

  Deno.test(`swiglu ${variant}: forward/backward, extreme gates, ld, in place`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    let seed = 400;
    for (const n of SIZES) {
      const rand = rng(seed++);
      const rows = 3, ld = n + (seed % 3), ldo = n + 2;
      const g = randF32(rows * ld, rand, 7);
      // saturated gates: σ(g) over/underflows in f32
      g[0] = -100;
      if (n > 2) g[2] = 95;
      if (n > 3) g[3] = -1.2785;
      const u = randF32(rows * ld, rand), dm = randF32(rows * ld, rand);
      const b = new Bufs(k, {
        g: rows * ld,
        u: rows * ld,
        dm: rows * ld,
        m: rows * ldo,
        m2: rows * ldo,
        dg: rows * ldo,
        du: rows * ldo,
      });
      b.f32("g").set(g);
      b.f32("u").set(u);
      b.f32("dm").set(dm);
      b.f32("m").fill(777);
      b.f32("m2").fill(777);
      kx.swiglu_forward(b.ptr("m"), b.ptr("g"), b.ptr("u"), n, ldo, ld, ld, 0, rows);
      kx.swiglu_forward(b.ptr("m2"), b.ptr("g"), b.ptr("u"), n, ldo, ld, ld, 1, rows);
      kx.swiglu_forward(b.ptr("m2"), b.ptr("g"), b.ptr("u"), n, ldo, ld, ld, 0, 1);
      assertBitwise(b.f32("m"), b.f32("m2"), "swiglu split");
      const gd = unpad(g, rows, n, ld), ud = unpad(u, rows, n, ld), dmd = unpad(dm, rows, n, ld);
      const want = ref.swigluForward(gd, ud);
      checkClose(unpad(b.f32("m"), rows, n, ldo), want, rel(want, 1e-6, 1e-35), `swiglu m n=${n}`);
      kx.swiglu_backward(
        b.ptr("dg"),
        b.ptr("du"),
        b.ptr("dm"),
        b.ptr("g"),
        b.ptr("u"),
        n,
        ldo,
        ldo,
        ld,
        ld,
        ld,
        0,
        rows,
      );
      const w = ref.swigluBackward(dmd, { g: gd, u: ud });
      // dg has the cancellation 1 + g(1 − σ) (zero near g ≈ −1.278): scale by its terms
      const magG = (i: number) => {
        const s = ref.sigmoid(gd[i]);
        return Math.abs(dmd[i] * ud[i] * s) * (1 + Math.abs(gd[i] * (1 - s)));
      };
      checkClose(
        unpad(b.f32("dg"), rows, n, ldo),
        w.dg,
        (i) => 1e-6 * (Math.abs(w.dg[i]) + magG(i)) + 1e-35,
        `swiglu dg n=${n}`,
      );
      checkClose(unpad(b.f32("du"), rows, n, ldo), w.du, rel(w.du, 1e-6, 1e-35), `swiglu du n=${n}`);
      // in place: dg over g, du over u (the host reuses the gate/up buffers); m over g
      const dgOut = unpad(b.f32("dg"), rows, n, ldo), duOut = unpad(b.f32("du"), rows, n, ldo);
      kx.swiglu_backward(
        b.ptr("g"),
        b.ptr("u"),
        b.ptr("dm"),
        b.ptr("g"),
        b.ptr("u"),
        n,
        ld,
        ld,
        ld,
        ld,
        ld,
        0,
        rows,
      );
      assertBitwise(unpad(b.f32("g"), rows, n, ld), dgOut, "swiglu dg in place");
      assertBitwise(unpad(b.f32("u"), rows, n, ld), duOut, "swiglu du in place");
      b.f32("g").set(g);
      b.f32("u").set(u);
      kx.swiglu_forward(b.ptr("g"), b.ptr("g"), b.ptr("u"), n, ld, ld, ld, 0, rows);
      assertBitwise(unpad(b.f32("g"), rows, n, ld), unpad(b.f32("m"), rows, n, ldo), "swiglu m in place");
    }
  });

  Deno.test(`cross-entropy ${variant}: chunked online logsumexp = one chunk = f64 log-softmax`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    let seed = 500;
    for (const V of [1, 3, 17, 130, 1000, 4099]) {
      const rand = rng(seed++);
      const T = 7;
      const logits = new Float32Array(T * V);
      for (let i = 0; i < T * V; i++) logits[i] = 4 * rand() + (i % 5 === 0 ? 20 : 0); // spread and large values
      if (V > 5) logits[3 * V + 5] = 45; // a dominant logit
      const targets = Int32Array.from(
        { length: T },
        (_, t) => t === 2 ? -100 : Math.floor(((rand() + 1) / 2) * V) % V,
      );
      targets[3] = Math.min(5, V - 1);
      const want = ref.crossEntropy(logits, targets, { rows: T, vocab: V });
      // chunkings: one chunk, fixed sizes, irregular sizes
      const chunkings: number[][] = [[V]];
      for (const c of [1, 4, 37, 512, 4096]) {
        if (c < V && V / c <= 300) {
          chunkings.push(Array.from({ length: Math.ceil(V / c) }, (_, i) => Math.min(c, V - i * c)));
        }
      }
      const irregular: number[] = [];
      for (let left = V, i = 0; left > 0; i++) {
        const c = Math.min(left, 1 + ((i * 97 + 13) % 601));
        irregular.push(c);
        left -= c;
      }
      chunkings.push(irregular);
      const vmax = Math.max(...chunkings.flat());
      const ld = vmax + 3;
      const b = new Bufs(k, {
        chunk: T * ld,
        tgt: T,
        max: T,
        sum: T,
        tl: T,
        loss: T,
        ls: T,
      });
      b.i32("tgt").set(targets);
      const losses: Float32Array[] = [];
      for (const sizes of chunkings) {
        for (const name of ["max", "sum", "tl"]) b.f32(name).fill(777); // `first` must initialise them
        let v0 = 0;
        for (let c = 0; c < sizes.length; c++) {
          const vc = sizes[c];
          const ch = b.f32("chunk");
          for (let t = 0; t < T; t++) for (let j = 0; j < vc; j++) ch[t * ld + j] = logits[t * V + v0 + j];
          // rows split in two calls
          kx.ce_chunk_forward(
            b.ptr("chunk"),
            vc,
            ld,
            v0,
            b.ptr("tgt"),
            b.ptr("max"),
            b.ptr("sum"),
            b.ptr("tl"),
            c === 0 ? 1 : 0,
            0,
            3,
          );
          kx.ce_chunk_forward(
            b.ptr("chunk"),
            vc,
            ld,
            v0,
            b.ptr("tgt"),
            b.ptr("max"),
            b.ptr("sum"),
            b.ptr("tl"),
            c === 0 ? 1 : 0,
            3,
            T,
          );
          v0 += vc;
        }
        kx.ce_finish(b.ptr("loss"), b.ptr("ls"), b.ptr("max"), b.ptr("sum"), b.ptr("tl"), 0, T);
        const loss = b.f32("loss").slice(0, T);
        losses.push(loss);
        // against f64 log-softmax: the error is a few ulp of the logsumexp magnitude
        // an untrained row (target −100) reports logsumexp (its target logit stays 0)
        const wantLoss = Array.from(targets, (tg, t) => tg >= 0 ? want.loss[t] : want.lse[t]);
        checkClose(
          loss,
          wantLoss,
          (t) => 1e-6 * (1 + Math.abs(want.lse[t])),
          `ce loss V=${V} chunks=${sizes.length}`,
        );
        assertEquals(b.f32("tl")[2], 0, "untrained row keeps target_logit 0");
        for (let t = 0; t < T; t++) {
          if (targets[t] >= 0) assertEquals(b.f32("tl")[t], logits[t * V + targets[t]], "target logit");
        }
      }
      for (const l of losses) {
        checkClose(l, losses[0], (t) => 4 * EPS32 * (1 + Math.abs(want.lse[t])), `ce chunkings agree V=${V}`);
      }
    }
  });
}

// ================================================================ elementwise, optimizers, RNG

for (const variant of VARIANTS) {
  Deno.test(`elementwise ${variant}: axpy, scale (exact), sum_squares (f64)`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    const f = Math.fround;
    let seed = 600;
    for (const n of [0, ...SIZES, 1000]) {
      const rand = rng(seed++);
      const a = randF32(n + 4, rand, 3), c = randF32(n + 4, rand, 3);
      const b = new Bufs(k, { a: n + 4, c: n + 4, out: n + 4 });
      const A = b.f32("a"), C = b.f32("c"), O = b.f32("out");
      const reset = () => {
        A.set(a);
        C.set(c);
        O.fill(777);
      };
      const tail = (what: string) => {
        for (let i = n; i < n + 4; i++) assertEquals(O[i], 777, `${what} n=${n} wrote past n`);
      };
      reset();
      O.set(c.subarray(0, n));
      kx.axpy(b.ptr("out"), -0.37, b.ptr("a"), n);
      for (let i = 0; i < n; i++) assertEquals(O[i], f(c[i] + f(f(-0.37) * a[i])), `axpy n=${n}`);
      tail("axpy");
      reset();
      O.set(a.subarray(0, n));
      kx.scale(b.ptr("out"), 1.7, n);
      for (let i = 0; i < n; i++) assertEquals(O[i], f(a[i] * f(1.7)), `scale n=${n}`);
      tail("scale");
      reset();
      const ss = kx.sum_squares(b.ptr("a"), n);
      let ws = 0;
      for (let i = 0; i < n; i++) ws += a[i] * a[i];
      assert(Math.abs(ss - ws) <= 1e-14 * ws, `sum_squares n=${n}: ${ss} vs ${ws}`);
    }
  });

  Deno.test(`optimizers ${variant}: SGD and AdamW against torch 1.13 values and the f64 formula`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    // Hand-made example run through torch.optim 1.13 (float32), printed values.
    const p0 = [0.5, -1.25, 2.0, 0.001, -0.3, 3.5, -0.07];
    const grads = [[0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7], [1.5, 0.25, -0.125, 2.0, -3.0, 0.01, -0.001], [
      -0.3,
      0.3,
      0.0,
      1e-3,
      -2.5,
      4.0,
      0.5,
    ]];
    const torchAdamw = [
      [
        0.4895000159740448,
        -1.2387499809265137,
        1.9880000352859497,
        0.010998999699950218,
        -0.30970001220703125,
        3.506500005722046,
        -0.07993000000715256,
      ],
      [
        0.4811401069164276,
        -1.2391386032104492,
        1.982690691947937,
        0.005004458595067263,
        -0.30315113067626953,
        3.5095691680908203,
        -0.08654001355171204,
      ],
      [
        0.4759436547756195,
        -1.243186593055725,
        1.9781405925750732,
        0.00037102634087204933,
        -0.2950652837753296,
        3.500495433807373,
        -0.09437563270330429,
      ],
    ];
    const torchM = [
      0.11310000717639923,
      0.03629999980330467,
      0.013050000183284283,
      0.1476999968290329,
      -0.4794999957084656,
      0.3522999882698059,
      0.1066100001335144,
    ];
    const torchV = [
      0.0023477301001548767,
      0.0001923575473483652,
      0.00010542948439251631,
      0.0041556814685463905,
      0.015490501187741756,
      0.01635938137769699,
      0.0007390214595943689,
    ];
    const torchSgd = [
      [
        0.4894999861717224,
        -1.2287499904632568,
        1.968000054359436,
        0.040998999029397964,
        -0.349700003862381,
        3.55649995803833,
        -0.13992999494075775,
      ],
      [
        0.33901047706604004,
        -1.252521276473999,
        1.978532075881958,
        -0.15904201567173004,
        -0.0493503101170063,
        3.55194354057312,
        -0.1396900713443756,
      ],
      [
        0.3686714768409729,
        -1.2812687158584595,
        1.9765535593032837,
        -0.15898297727108002,
        0.20069904625415802,
        3.1483914852142334,
        -0.18955038487911224,
      ],
    ];
    const n = p0.length;
    const b = new Bufs(k, { p: n, g: n, m: n, v: n });
    const ulps = (got: ArrayLike<number>, want: ArrayLike<number>, u: number, what: string) =>
      checkClose(got, want, (i) => u * EPS32 * Math.abs(want[i]) + 1e-45, what);
    b.f32("p").set(p0);
    for (let s = 0; s < 3; s++) {
      b.f32("g").set(grads[s]);
      kx.adamw_update(
        b.ptr("p"),
        b.ptr("g"),
        b.ptr("m"),
        b.ptr("v"),
        n,
        0.01,
        0.9,
        0.999,
        1e-8,
        0.1,
        1 - 0.9 ** (s + 1),
        1 - 0.999 ** (s + 1),
      );
      ulps(b.f32("p"), torchAdamw[s], 2, `adamw vs torch step ${s + 1}`);
    }
    ulps(b.f32("m"), torchM, 2, "adamw m vs torch");
    ulps(b.f32("v"), torchV, 4, "adamw v vs torch");
    // SGD one step at a time from torch's state (torch may fuse the multiply-adds; the error scale is that of
    // the terms, |p| and lr·|g + wd·p|, since p − lr·d can cancel)
    for (let s = 0; s < 3; s++) {
      const prev = s === 0 ? p0 : torchSgd[s - 1];
      b.f32("p").set(prev);
      b.f32("g").set(grads[s]);
      kx.sgd_update(b.ptr("p"), b.ptr("g"), n, 0.1, 0.01);
      const pf = Float32Array.from(prev);
      checkClose(
        b.f32("p"),
        torchSgd[s],
        (i) => 1.5 * EPS32 * (Math.abs(pf[i]) + 0.1 * (Math.abs(grads[s][i]) + 0.01 * Math.abs(pf[i]))),
        `sgd vs torch step ${s + 1}`,
      );
    }

    // Random arrays, one step at a time from the kernel's own f32 state, against the f64 formula.
    let seed = 700;
    for (const len of [1, 3, 17, 65, 1001]) {
      const rand = rng(seed++);
      const bb = new Bufs(k, { p: len, g: len, m: len, v: len });
      const P = bb.f32("p"), G = bb.f32("g"), M = bb.f32("m"), Vv = bb.f32("v");
      P.set(randF32(len, rand, 2));
      const o = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-6, weightDecay: 0.05, step: 0 };
      for (let step = 1; step <= 4; step++) {
        G.set(randF32(len, rand, 0.5));
        const st: ref.AdamState = {
          p: Float64Array.from(P),
          m: Float64Array.from(M),
          v: Float64Array.from(Vv),
        };
        const g = Float64Array.from(G);
        ref.adamwStep(st, g, { ...o, step });
        const p0s = Float64Array.from(P);
        kx.adamw_update(
          bb.ptr("p"),
          bb.ptr("g"),
          bb.ptr("m"),
          bb.ptr("v"),
          len,
          o.lr,
          o.beta1,
          o.beta2,
          o.eps,
          o.weightDecay,
          1 - o.beta1 ** step,
          1 - o.beta2 ** step,
        );
        const m0 = st.m, v0 = st.v;
        checkClose(
          M,
          m0,
          (i) =>
            2 * EPS32 *
            (o.beta1 * Math.abs(M[i] - (1 - o.beta1) * g[i]) / o.beta1 + Math.abs(m0[i]) +
              (1 - o.beta1) * Math.abs(g[i])),
          "adamw m",
        );
        checkClose(Vv, v0, (i) => 3 * EPS32 * (Math.abs(v0[i]) + (1 - o.beta2) * g[i] * g[i]), "adamw v");
        // p: f32(1 − lr·wd) as torch rounds it, p·decay and p + update rounded (3 × 2^-24 relative), plus the
        // update term to ~1e-6 relative
        checkClose(
          P,
          st.p,
          (i) =>
            1.5 * EPS32 * Math.abs(p0s[i]) + 1e-6 * Math.abs(st.p[i] - p0s[i] * (1 - o.lr * o.weightDecay)),
          `adamw p n=${len} step ${step}`,
        );
      }
      // a split at an unaligned index (threads) gives the same bits: the scalar tail does the vector's operations
      if (len > 5) {
        const st = [P, G, M, Vv].map((a) => a.slice());
        kx.adamw_update(
          bb.ptr("p"),
          bb.ptr("g"),
          bb.ptr("m"),
          bb.ptr("v"),
          len,
          o.lr,
          o.beta1,
          o.beta2,
          o.eps,
          o.weightDecay,
          0.5,
          0.25,
        );
        const whole = [P, M, Vv].map((a) => a.slice());
        [P, G, M, Vv].forEach((a, i) => a.set(st[i]));
        for (const [i0, i1] of [[0, 5], [5, len]]) {
          const off = i0 * 4;
          kx.adamw_update(
            bb.ptr("p") + off,
            bb.ptr("g") + off,
            bb.ptr("m") + off,
            bb.ptr("v") + off,
            i1 - i0,
            o.lr,
            o.beta1,
            o.beta2,
            o.eps,
            o.weightDecay,
            0.5,
            0.25,
          );
        }
        [P, M, Vv].forEach((a, i) => assertBitwise(a, whole[i], `adamw split n=${len}`));
        const sg = P.slice();
        kx.sgd_update(bb.ptr("p"), bb.ptr("g"), len, 0.01, 0.1);
        const sgWhole = P.slice();
        P.set(sg);
        kx.sgd_update(bb.ptr("p"), bb.ptr("g"), 3, 0.01, 0.1);
        kx.sgd_update(bb.ptr("p") + 12, bb.ptr("g") + 12, len - 3, 0.01, 0.1);
        assertBitwise(P, sgWhole, `sgd split n=${len}`);
        P.set(sg);
      }
      const p1 = Float64Array.from(P);
      kx.sgd_update(bb.ptr("p"), bb.ptr("g"), len, 0.01, 0.1);
      const want = ref.sgdStep(p1, G, { lr: 0.01, weightDecay: 0.1 });
      checkClose(
        P,
        want,
        (i) => EPS32 * (Math.abs(want[i]) + 0.01 * (Math.abs(G[i]) + 0.1 * Math.abs(p1[i]))),
        `sgd n=${len}`,
      );
    }
  });

  Deno.test(`rng ${variant}: counter-based normals — moments, independence, TS mirror bitwise, MeZO regeneration`, async () => {
    const k = await loadKernels({ variant });
    const kx = k.exports;
    const N = 1_000_000;
    const b = new Bufs(k, { z: N, z2: N, p: 4096, q: 4096 });
    const seed = 0x5eed1234;
    kx.normal_fill(b.ptr("z"), N, seed, 0);
    const z = b.f32("z");
    let s1 = 0, s2 = 0, s4 = 0, c1 = 0, c4 = 0, c16 = 0, over1 = 0, over2 = 0, over3 = 0, maxZ = 0;
    for (let i = 0; i < N; i++) {
      const v = z[i];
      s1 += v;
      s2 += v * v;
      s4 += v ** 4;
      if (i + 1 < N) c1 += v * z[i + 1];
      if (i + 4 < N) c4 += v * z[i + 4]; // the two halves of one Box–Muller pair
      if (i + 16 < N) c16 += v * z[i + 16];
      const a = Math.abs(v);
      over1 += a > 1 ? 1 : 0;
      over2 += a > 2 ? 1 : 0;
      over3 += a > 3 ? 1 : 0;
      maxZ = Math.max(maxZ, a);
    }
    const mean = s1 / N, vr = s2 / N - mean * mean;
    // bounds are ≥ 5 standard errors of each statistic over 1e6 samples
    assert(Math.abs(mean) < 5e-3, `mean ${mean}`);
    assert(Math.abs(vr - 1) < 7e-3, `variance ${vr}`);
    assert(Math.abs(s4 / N - 3) < 0.025, `fourth moment ${s4 / N}`);
    for (const [c, lag] of [[c1, 1], [c4, 4], [c16, 16]]) {
      assert(Math.abs(c / N) < 5e-3, `correlation at lag ${lag}: ${c / N}`);
    }
    assert(Math.abs(over1 / N - 0.317311) < 2.5e-3, `P(|z| > 1) = ${over1 / N}`);
    assert(Math.abs(over2 / N - 0.0455003) < 1.1e-3, `P(|z| > 2) = ${over2 / N}`);
    assert(Math.abs(over3 / N - 0.0026998) < 2.6e-4, `P(|z| > 3) = ${over3 / N}`);
    assert(maxZ <= 5.78, `|z| max ${maxZ}`);
    // another seed gives an uncorrelated stream
    kx.normal_fill(b.ptr("z2"), N, seed + 1, 0);
    assert(Math.abs(ref.dotF64(z, b.f32("z2")) / N) < 5e-3, "seeds are independent");

    // the TypeScript mirror reproduces every bit, at any offset (unaligned heads and tails of 16-blocks)
    for (let i = 0; i < 3000; i++) {
      assert(Object.is(ref.normalAt(seed, i), z[i]), `normalAt(${i}) = ${ref.normalAt(seed, i)} vs ${z[i]}`);
    }
    for (
      const [sd, off, n] of [[0, 0, 1], [1, 5, 3], [7, 13, 40], [0xdeadbeef, 2 ** 31 + 3, 100], [
        42,
        2 ** 32 - 100,
        100,
      ], [3, 999_999, 37]]
    ) {
      kx.normal_fill(b.ptr("p"), n, sd, off);
      const p = b.f32("p");
      for (let i = 0; i < n; i++) {
        assert(Object.is(ref.normalAt(sd, off + i), p[i]), `seed ${sd} index ${off + i}`);
      }
    }
    // an offset window equals the same slice of a fill from 0
    kx.normal_fill(b.ptr("p"), 1000, seed, 12345);
    assertBitwise(b.f32("p").subarray(0, 1000), z.subarray(12345, 13345), "offset window");

    // MeZO: +ε, −2ε, +ε returns the parameters (to rounding); each call regenerates the same z, also when
    // the range is split between two calls (threads) at an unaligned point
    const n = 4000, off = 77, eps = 1e-3;
    const rand = rng(9);
    const p0 = randF32(n, rand, 0.1);
    const P = b.f32("p"), Q = b.f32("q");
    P.set(p0);
    Q.set(p0);
    const f = Math.fround;
    for (const e of [eps, -2 * eps, eps]) {
      kx.zo_perturb(b.ptr("p"), n, seed, off, e);
      kx.zo_perturb(b.ptr("q"), 1234, seed, off, e);
      kx.zo_perturb(b.ptr("q") + 1234 * 4, n - 1234, seed, off + 1234, e);
    }
    assertBitwise(P.subarray(0, n), Q.subarray(0, n), "zo_perturb split");
    const zz = Float64Array.from({ length: n }, (_, i) => z[off + i]);
    let want = Float32Array.from(p0);
    for (const e of [eps, -2 * eps, eps]) want = want.map((v, i) => f(v + f(f(e) * zz[i])));
    assertBitwise(P.subarray(0, n), want, "zo_perturb = p + ε·z with the same z");
    checkClose(
      P.subarray(0, n),
      p0,
      (i) => 4 * EPS32 * (Math.abs(p0[i]) + eps * Math.abs(zz[i])),
      "perturbations cancel",
    );
    // update p −= lr·(coeff·z + wd·p), again with the same z
    const coeff = 0.37, lr = 1e-2, wd = 0.1;
    const before = P.slice(0, n);
    kx.zo_update(b.ptr("p"), n, seed, off, coeff, lr, wd);
    const wantU = before.map((v, i) => f(v - f(f(lr) * f(f(f(coeff) * zz[i]) + f(f(wd) * v)))));
    assertBitwise(P.subarray(0, n), wantU, "zo_update");
    // the same update in f64 (checks the formula, not just the bits)
    checkClose(
      P.subarray(0, n),
      Array.from(before, (v, i) => v - lr * (coeff * zz[i] + wd * v)),
      (i) => 2 * EPS32 * Math.abs(before[i]) + 1e-9,
      "zo_update f64",
    );
  });
}

Deno.test("rng: Philox-4x32-10 known-answer vectors (Random123 tests/kat_vectors)", () => {
  const kat: [number[], number[], number[]][] = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [
      0x408f276d,
      0x41c83b0e,
      0xa20bc7c6,
      0x6d5451fd,
    ]],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [
      0xd16cfe09,
      0x94fdcceb,
      0x5001e420,
      0x24126ea1,
    ]],
  ];
  for (const [ctr, key, want] of kat) assertEquals([...ref.philox4x32(ctr, key)], want, `philox ${ctr}`);
});

Deno.test("kernels: the generated interface is exactly each wasm file's exports, arity for arity", async () => {
  const want = Object.entries(KERNEL_PARAMS).map(([name, params]) => `${name}/${params.length}`);
  for (const file of KERNEL_FILES) {
    const bytes = await Deno.readFile(new URL(`../wasm/${file}`, import.meta.url));
    const module = await WebAssembly.compile(bytes);
    const shared = WebAssembly.Module.imports(module).some((i) => i.kind === "memory");
    const memory = shared ? new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true }) : undefined;
    const exports = (await WebAssembly.instantiate(module, kernelImports(memory))).exports;
    const functions = WebAssembly.Module.exports(module).filter((e) => e.kind === "function");
    assertEquals(
      functions.map((e) => `${e.name}/${(exports[e.name] as (...a: number[]) => unknown).length}`),
      want,
      file,
    );
    const others = WebAssembly.Module.exports(module).filter((e) => e.kind !== "function");
    assertEquals(others.map((e) => `${e.kind} ${e.name}`), ["memory memory"], file);
  }
});

Deno.test("f32_to_bf16: round-to-nearest-even like torch (vs the independent TS converter), NaN, both variants", async () => {
  const { f32ToBf16 } = await import("../src/model/dtype.ts");
  const specials = [
    0,
    -0,
    1,
    -1,
    1.00390625,
    1.01171875,
    65504,
    3.4e38,
    -3.4e38,
    Infinity,
    -Infinity,
    NaN,
    1e-40,
    -2e-39,
  ];
  const rand = Array.from({ length: 1000 }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 13) - 6));
  const xs = Float32Array.from([...specials, ...rand]);
  const want = f32ToBf16(xs);
  for (const variant of VARIANTS) {
    const k = await loadKernels({ variant });
    const a = Arena.create(k, [{ name: "src", bytes: xs.byteLength }, { name: "dst", bytes: xs.length * 2 }]);
    a.f32("src").set(xs);
    k.exports.f32_to_bf16(a.ptr("dst"), a.ptr("src"), xs.length);
    const got = new Uint16Array(k.memory.buffer, a.ptr("dst"), xs.length);
    for (let i = 0; i < xs.length; i++) {
      const nan = Number.isNaN(xs[i]);
      assert(
        nan ? (got[i] & 0x7fff) > 0x7f80 : got[i] === want[i],
        `${variant}: ${xs[i]} → 0x${got[i].toString(16)}, want 0x${want[i].toString(16)}`,
      );
    }
  }
});

Deno.test("ce_chunk_fused + ce_fused_finish: loss equals ce_chunk_forward's bit for bit; acc = w·softmax·E (f64 reference)", async () => {
  for (const variant of VARIANTS) {
    const k = await loadKernels({ variant });
    const T = 5, V = 37, d = 6, chunk = 8;
    let s = 7;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 8 - 4;
    const logits = Float32Array.from({ length: T * V }, rnd), E = Float64Array.from({ length: V * d }, rnd);
    const targets = Int32Array.from([3, 36, -1, 0, 20]),
      weight = Float32Array.from([0.25, 0.25, 0, 0.25, 0.25]);
    const a = Arena.create(
      k,
      [
        "logits",
        "targets",
        "max",
        "sum",
        "tl",
        "w",
        "acc",
        "loss",
        "lse",
        "max2",
        "sum2",
        "tl2",
        "loss2",
        "lse2",
      ]
        .map((name) => ({ name, bytes: name === "logits" ? T * V * 4 : name === "acc" ? T * d * 4 : T * 4 })),
    );
    a.i32("targets").set(targets);
    a.f32("w").set(weight);
    const L = a.f32("logits"), acc = a.f32("acc");
    for (let c0 = 0; c0 < V; c0 += chunk) {
      const vc = Math.min(chunk, V - c0);
      // the chunk's logits, contiguous [T, vc], as the host's GEMM would write them
      for (let t = 0; t < T; t++) for (let j = 0; j < vc; j++) L[t * vc + j] = logits[t * V + c0 + j];
      k.exports.ce_chunk_forward(
        a.ptr("logits"),
        vc,
        vc,
        c0,
        a.ptr("targets"),
        a.ptr("max2"),
        a.ptr("sum2"),
        a.ptr("tl2"),
        c0 === 0 ? 1 : 0,
        0,
        T,
      );
      k.exports.ce_chunk_fused(
        a.ptr("logits"),
        vc,
        vc,
        c0,
        a.ptr("targets"),
        a.ptr("max"),
        a.ptr("sum"),
        a.ptr("tl"),
        a.ptr("w"),
        a.ptr("acc"),
        d,
        d,
        c0 === 0 ? 1 : 0,
        0,
        T,
      );
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < d; i++) {
          let x = c0 === 0 ? 0 : acc[t * d + i];
          for (let j = 0; j < vc; j++) x += L[t * vc + j] * E[(c0 + j) * d + i];
          acc[t * d + i] = x;
        }
      }
    }
    k.exports.ce_fused_finish(
      a.ptr("loss"),
      a.ptr("lse"),
      a.ptr("max"),
      a.ptr("sum"),
      a.ptr("tl"),
      a.ptr("w"),
      a.ptr("acc"),
      d,
      d,
      0,
      T,
    );
    k.exports.ce_finish(a.ptr("loss2"), a.ptr("lse2"), a.ptr("max2"), a.ptr("sum2"), a.ptr("tl2"), 0, T);
    assertEquals(
      [...a.f32("loss")].filter((_, t) => weight[t] > 0),
      [...a.f32("loss2")].filter((_, t) => weight[t] > 0),
    );
    for (let t = 0; t < T; t++) {
      const row = logits.subarray(t * V, t * V + V), mx = Math.max(...row);
      const z = row.reduce((q, x) => q + Math.exp(x - mx), 0);
      for (let i = 0; i < d; i++) {
        let want = 0;
        for (let j = 0; j < V; j++) want += (Math.exp(row[j] - mx) / z) * E[j * d + i];
        want *= weight[t];
        assert(
          Math.abs(acc[t * d + i] - want) <= 1e-5 * (1 + Math.abs(want)),
          `${variant} acc[${t},${i}] ${acc[t * d + i]} vs ${want}`,
        );
      }
    }
  }
});
