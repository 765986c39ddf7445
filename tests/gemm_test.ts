// Every GEMM op, weight dtype and kernel variant against plain f64 loops, on sizes that are not multiples
// of any block, with leading dimensions, sub-ranges, alpha and accumulate.
import { assert, assertEquals } from "./_assert.ts";
import { Arena } from "../src/runtime/arena.ts";
import {
  DTYPE,
  GEMM_TILE,
  type Kernels,
  loadKernels,
  OP,
  VARIANTS,
  type WeightDtype,
} from "../src/runtime/kernels.ts";
import { Gemm } from "../src/runtime/gemm.ts";
import type { WeightRef } from "../src/runtime/weight_ref.ts";

type Op = keyof typeof OP;

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

/** A weight matrix [rows, ld] in `dtype`, with its exact decoded values for the reference. */
interface TestWeight {
  dtype: WeightDtype;
  rows: number;
  ld: number;
  data: Uint8Array;
  scales: Uint16Array;
  biases: Uint16Array;
  values: Float64Array;
  bf16Scales: boolean;
}

function makeWeight(
  dtype: WeightDtype,
  rows: number,
  ld: number,
  rand: () => number,
  bf16Scales = false,
): TestWeight {
  const n = rows * ld;
  const values = new Float64Array(n);
  let data: Uint8Array;
  const groups = dtype === "q4" || dtype === "q8" ? ld / 64 : 0;
  const scales = new Uint16Array(rows * groups);
  const biases = new Uint16Array(rows * groups);
  if (dtype === "f32") {
    const f = Float32Array.from({ length: n }, rand);
    f.forEach((v, i) => (values[i] = v));
    data = new Uint8Array(f.buffer);
  } else if (dtype === "f16") {
    const h = Float16Array.from({ length: n }, rand);
    h.forEach((v, i) => (values[i] = v));
    data = new Uint8Array(h.buffer);
  } else if (dtype === "bf16") {
    const u = new Uint16Array(n);
    const f = new Float32Array(1), fb = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      f[0] = rand();
      u[i] = fb[0] >>> 16; // truncation: any bf16 value is fine for a kernel test
      fb[0] = u[i] << 16;
      values[i] = f[0];
    }
    data = new Uint8Array(u.buffer);
  } else {
    // scale and bias values as the kernel will read them: f16, or bf16 (the top half of an f32)
    const sv = new Float64Array(rows * groups), bv = new Float64Array(rows * groups);
    const f = new Float32Array(1), fb = new Uint32Array(f.buffer);
    const half = (x: number, out: Uint16Array, g: number): number => {
      if (!bf16Scales) {
        const h = new Float16Array(out.buffer, g * 2, 1);
        h[0] = x;
        return h[0];
      }
      f[0] = x;
      out[g] = fb[0] >>> 16;
      fb[0] = out[g] << 16;
      return f[0];
    };
    for (let g = 0; g < rows * groups; g++) {
      sv[g] = half(0.05 + 0.1 * Math.abs(rand()), scales, g);
      bv[g] = half(rand(), biases, g);
    }
    const q = Uint8Array.from(
      { length: n },
      () => Math.floor((rand() * 0.5 + 0.5) * (dtype === "q4" ? 16 : 256)) % (dtype === "q4" ? 16 : 256),
    );
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < ld; c++) {
        const g = r * groups + Math.floor(c / 64);
        values[r * ld + c] = Math.fround(sv[g] * q[r * ld + c]) + bv[g];
      }
    }
    if (dtype === "q8") data = q;
    else {
      data = new Uint8Array(n / 2);
      for (let i = 0; i < n; i += 2) data[i / 2] = q[i] | (q[i + 1] << 4); // element 2b in the low nibble
    }
  }
  return { dtype, rows, ld, data, scales, biases, values, bf16Scales };
}

interface Case {
  op: Op;
  m: number;
  n: number;
  k: number;
  dtype: WeightDtype;
  accumulate: boolean;
  alpha: number;
  pad: number; // extra leading-dimension elements on A and C
  bf16Scales?: boolean;
}

async function withArena<T>(k: Kernels, bytes: Record<string, number>, f: (a: Arena) => T): Promise<T> {
  const arena = Arena.create(k, Object.entries(bytes).map(([name, b]) => ({ name, bytes: b })));
  return await f(arena);
}

async function runCase(kern: Kernels, c: Case, seed: number): Promise<void> {
  const rand = rng(seed);
  const { op, m, n, k } = c;
  // A: NT/NN [m, k] (lda ≥ k); TN [k, m] (lda ≥ m)
  const aRows = op === "tn" ? k : m, aCols = op === "tn" ? m : k;
  const lda = aCols + c.pad;
  // B: NT [n, ldb] with ldb ≥ k; NN/TN [k, ldb] with ldb ≥ n (quantized: multiple of 64)
  const bRows = op === "nt" ? n : k, bCols = op === "nt" ? k : n;
  const quant = c.dtype === "q4" || c.dtype === "q8";
  const ldb = quant ? Math.ceil(bCols / 64) * 64 : bCols + c.pad;
  const ldc = n + c.pad;
  const A = Float32Array.from({ length: aRows * lda }, rand);
  const W = makeWeight(c.dtype, bRows, ldb, rand, c.bf16Scales);
  const C0 = Float32Array.from({ length: m * ldc }, rand);
  const scratch = kern.exports.gemm_scratch_bytes();
  await withArena(kern, {
    a: A.byteLength,
    b: W.data.byteLength,
    s: W.scales.byteLength,
    z: W.biases.byteLength,
    c: C0.byteLength,
    c2: C0.byteLength,
    scratch,
  }, (ar) => {
    ar.f32("a").set(A);
    ar.u8("b").set(W.data);
    ar.u8("s").set(new Uint8Array(W.scales.buffer));
    ar.u8("z").set(new Uint8Array(W.biases.buffer));
    ar.f32("c").set(C0);
    ar.f32("c2").set(C0);
    const gemm = new Gemm(kern.exports, ar.ptr("scratch"));
    const wref: WeightRef = {
      dtype: c.dtype,
      ptr: ar.ptr("b"),
      ld: ldb,
      scales: ar.ptr("s"),
      biases: ar.ptr("z"),
      bf16Scales: c.bf16Scales,
    };
    const call = (cname: string, m0: number, m1: number, n0: number, n1: number) =>
      gemm.run(
        OP[op],
        m0,
        m1,
        n0,
        n1,
        n,
        k,
        ar.ptr("a"),
        lda,
        wref,
        ar.ptr(cname),
        ldc,
        c.alpha,
        c.accumulate,
      );
    call("c", 0, m, 0, n);
    const got = ar.f32("c");
    const Av = (i: number, kk: number) => op === "tn" ? A[kk * lda + i] : A[i * lda + kk];
    const Bv = (kk: number, j: number) => op === "nt" ? W.values[j * ldb + kk] : W.values[kk * ldb + j];
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < ldc; j++) {
        const at = i * ldc + j;
        if (j >= n) {
          assertEquals(got[at], C0[at], `${JSON.stringify(c)}: wrote outside C at (${i},${j})`);
          continue;
        }
        let s = 0, sabs = 0;
        for (let kk = 0; kk < k; kk++) {
          const p = Av(i, kk) * Bv(kk, j);
          s += p;
          sabs += Math.abs(p);
        }
        const want = c.alpha * s + (c.accumulate ? C0[at] : 0);
        const tol = 2 * (k + 2) * 2 ** -24 * (Math.abs(c.alpha) * sabs + Math.abs(C0[at])) + 1e-30;
        if (!(Math.abs(got[at] - want) <= tol)) {
          throw new Error(
            `${kern.variant} ${JSON.stringify(c)}: C[${i},${j}] = ${got[at]}, want ${want} (tol ${tol})`,
          );
        }
      }
    }
    // Any split of rows and columns (what a thread pool does) must give the same bits.
    const mh = Math.floor(m / 2), nh = Math.max(1, Math.floor(n / 3));
    call("c2", 0, mh, 0, nh);
    call("c2", 0, mh, nh, n);
    call("c2", mh, m, 0, n);
    const split = ar.f32("c2");
    for (let i = 0; i < got.length; i++) {
      if (!Object.is(got[i], split[i])) {
        throw new Error(`${kern.variant} ${JSON.stringify(c)}: split differs at ${i}`);
      }
    }
  });
}

const SIZES = [1, 3, 17, 63, 65, 130];
const DTYPES: WeightDtype[] = ["f32", "f16", "bf16", "q8", "q4"];

Deno.test("gemm: the host's tile (GEMM_TILE, its split grain) is the kernels' MR × NR, in every variant", async () => {
  for (const variant of VARIANTS) {
    for (const threads of [false, true]) {
      const k = (await loadKernels({ variant, shared: threads })).exports;
      assertEquals(
        { rows: k.gemm_tile_rows(), columns: k.gemm_tile_columns() },
        { ...GEMM_TILE },
        `${variant}${threads ? " threads" : ""}`,
      );
    }
  }
});

for (const variant of VARIANTS) {
  Deno.test(`gemm ${variant}: every op and dtype on odd sizes`, async () => {
    const kern = await loadKernels({ variant });
    assertEquals(kern.variant, variant);
    let seed = 1, count = 0;
    for (const op of ["nt", "nn", "tn"] as Op[]) {
      for (const dtype of DTYPES) {
        for (const m of SIZES) {
          for (const [n, k] of [[1, 1], [3, 17], [17, 65], [65, 3], [130, 63], [8, 130], [33, 64]]) {
            if (dtype !== "f32" && (m * n * k) % 3 !== 0 && m > 3) continue; // thin the grid for the slow dtypes
            const accumulate = seed % 2 === 0;
            const bf16Scales = seed % 4 === 1;
            const alpha = accumulate ? -0.75 : 1.25;
            await runCase(kern, { op, m, n, k, dtype, accumulate, alpha, pad: seed % 3, bf16Scales }, seed++);
            count++;
          }
        }
      }
    }
    assert(count > 200, `only ${count} cases ran`);
  });

  Deno.test(`gemm ${variant}: training shapes (skinny LoRA, multi-block K and N)`, async () => {
    const kern = await loadKernels({ variant });
    const cases: Case[] = [
      { op: "nt", m: 70, n: 8, k: 896, dtype: "f32", accumulate: false, alpha: 1, pad: 0 }, // x·Aᵀ
      { op: "nt", m: 70, n: 16, k: 300, dtype: "f32", accumulate: true, alpha: 1, pad: 1 },
      { op: "nt", m: 33, n: 600, k: 8, dtype: "f32", accumulate: true, alpha: 2, pad: 0 }, // h·Bᵀ, s = 2
      { op: "tn", m: 8, n: 300, k: 70, dtype: "f32", accumulate: false, alpha: 1, pad: 0 }, // ghᵀ·x
      { op: "tn", m: 300, n: 8, k: 70, dtype: "f32", accumulate: false, alpha: 2, pad: 0 }, // Gᵀ·h
      { op: "nt", m: 20, n: 530, k: 600, dtype: "q4", accumulate: false, alpha: 1, pad: 0 }, // K, N > one block
      { op: "nn", m: 20, n: 530, k: 600, dtype: "q4", accumulate: true, alpha: 1, pad: 0 },
      { op: "nn", m: 13, n: 520, k: 270, dtype: "f32", accumulate: true, alpha: 1, pad: 2 },
      { op: "nt", m: 7, n: 40, k: 520, dtype: "bf16", accumulate: false, alpha: 1, pad: 0 },
      // several packed row blocks of A (MC = 48) × K blocks; the last column block (530 − 512) reads A in place
      { op: "nt", m: 101, n: 530, k: 300, dtype: "f32", accumulate: true, alpha: 1, pad: 1 },
      { op: "tn", m: 100, n: 530, k: 300, dtype: "f32", accumulate: false, alpha: 0.5, pad: 0 },
      { op: "nn", m: 97, n: 64, k: 270, dtype: "q4", accumulate: true, alpha: 1, pad: 2 },
      // 46 rows (1 more than 9 five-row panels), full KC, a partial last column tile: a row block of 8 × 5 + 3 + 3
      // rows needs 10 panels, more than the packed-A area holds, unless the block is capped at MC / MR panels
      { op: "nt", m: 46, n: 36, k: 256, dtype: "f32", accumulate: false, alpha: 1, pad: 0 },
      { op: "nn", m: 91, n: 36, k: 300, dtype: "f32", accumulate: false, alpha: 1, pad: 0 },
      { op: "tn", m: 46, n: 36, k: 256, dtype: "f32", accumulate: false, alpha: 1, pad: 0 },
      { op: "nt", m: 136, n: 44, k: 256, dtype: "q4", accumulate: true, alpha: 1, pad: 0 },
    ];
    let seed = 1000;
    for (const c of cases) await runCase(kern, c, seed++);
  });
}

Deno.test("gemm: K = 0 clears C (or leaves it when accumulating)", async () => {
  const kern = await loadKernels();
  await withArena(kern, { c: 64, scratch: kern.exports.gemm_scratch_bytes() }, (ar) => {
    const c = ar.f32("c");
    c.fill(7);
    kern.exports.gemm(
      OP.nt,
      0,
      2,
      0,
      2,
      0,
      0,
      1,
      DTYPE.f32,
      0,
      1,
      0,
      0,
      ar.ptr("c"),
      2,
      1,
      1,
      ar.ptr("scratch"),
    );
    assertEquals([...c.subarray(0, 4)], [7, 7, 7, 7]);
    kern.exports.gemm(
      OP.nt,
      0,
      2,
      0,
      2,
      0,
      0,
      1,
      DTYPE.f32,
      0,
      1,
      0,
      0,
      ar.ptr("c"),
      2,
      1,
      0,
      ar.ptr("scratch"),
    );
    assertEquals([...c.subarray(0, 4)], [0, 0, 0, 0]);
  });
});

Deno.test("decode_row: q4 nibble order, q8 bytes, f16 scales, group boundaries (hand-made vectors)", async () => {
  const kern = await loadKernels();
  await withArena(kern, { w: 128, s: 8, z: 8, out: 512 }, (ar) => {
    // one row of 128 elements = 2 groups. Byte b holds element 2b (low nibble) and 2b+1 (high nibble):
    // element i gets q = i mod 16.
    const w = ar.u8("w");
    for (let b = 0; b < 64; b++) w[b] = ((2 * b) % 16) | (((2 * b + 1) % 16) << 4);
    // group 0: scale 0.5, bias -1 (f16 0x3800, 0xbc00); group 1: scale 2, bias 0.25 (0x4000, 0x3400)
    new Uint16Array(ar.u8("s").buffer, ar.ptr("s"), 2).set([0x3800, 0x4000]);
    new Uint16Array(ar.u8("z").buffer, ar.ptr("z"), 2).set([0xbc00, 0x3400]);
    const out = ar.f32("out");
    const expect = (i: number) => i < 64 ? 0.5 * (i % 16) - 1 : 2 * (i % 16) + 0.25;
    // whole row, and an unaligned window crossing the group boundary
    kern.exports.decode_row(DTYPE.q4, ar.ptr("w"), 128, ar.ptr("s"), ar.ptr("z"), 0, 0, 128, ar.ptr("out"));
    for (let i = 0; i < 128; i++) assertEquals(out[i], expect(i), `q4 element ${i}`);
    kern.exports.decode_row(DTYPE.q4, ar.ptr("w"), 128, ar.ptr("s"), ar.ptr("z"), 0, 59, 11, ar.ptr("out"));
    for (let i = 0; i < 11; i++) assertEquals(out[i], expect(59 + i), `q4 window element ${59 + i}`);
    // q8: element i of a 64-wide row is byte i; row 1 uses the second scale/bias pair
    for (let b = 0; b < 128; b++) w[b] = (b * 7) % 256;
    kern.exports.decode_row(DTYPE.q8, ar.ptr("w"), 64, ar.ptr("s"), ar.ptr("z"), 1, 0, 64, ar.ptr("out"));
    for (let i = 0; i < 64; i++) assertEquals(out[i], 2 * (((64 + i) * 7) % 256) + 0.25, `q8 element ${i}`);
  });
});

Deno.test("decode_row: f16 subnormals, infinities and NaN; bf16", async () => {
  const kern = await loadKernels();
  await withArena(kern, { w: 64, out: 256 }, (ar) => {
    const bits = [
      0x0001,
      0x8001,
      0x03ff,
      0x0400,
      0x3c00,
      0x7bff,
      0x7c00,
      0xfc00,
      0x7e00,
      0x0000,
      0x8000,
      0x3555,
      0xc000,
    ];
    new Uint16Array(ar.u8("w").buffer, ar.ptr("w"), bits.length).set(bits);
    kern.exports.decode_row(DTYPE.f16, ar.ptr("w"), bits.length, 0, 0, 0, 0, bits.length, ar.ptr("out"));
    const want = new Float16Array(new Uint16Array(bits).buffer);
    const out = ar.f32("out");
    for (let i = 0; i < bits.length; i++) {
      assert(
        Object.is(out[i], want[i]) || (Number.isNaN(out[i]) && Number.isNaN(want[i])),
        `f16 0x${bits[i].toString(16)}: ${out[i]} vs ${want[i]}`,
      );
    }
    kern.exports.decode_row(DTYPE.bf16, ar.ptr("w"), bits.length, 0, 0, 0, 0, bits.length, ar.ptr("out"));
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let i = 0; i < bits.length; i++) {
      u[0] = bits[i] << 16;
      assert(Object.is(out[i], f[0]) || Number.isNaN(f[0]), `bf16 0x${bits[i].toString(16)}`);
    }
  });
});
