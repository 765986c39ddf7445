// The worker pool: its split covers every range exactly; GEMMs (every op, dtype, split policy) and row
// kernels split over 2 and 3 threads give the same bits as the single-thread build; a full MeSP step on
// PyTorch fixtures gives the same loss and LoRA gradients for 1, 2 and 3 threads; workers end on close().
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { loadCase } from "./_golden.ts";
import { Arena } from "../src/runtime/arena.ts";
import {
  kernelImports,
  type Kernels,
  loadKernels,
  OP,
  VARIANTS,
  type WeightDtype,
  withMemoryLimits,
} from "../src/runtime/kernels.ts";
import { Gemm } from "../src/runtime/gemm.ts";
import type { WeightRef } from "../src/runtime/weight_ref.ts";
import { availableThreads, Pool, share, startKernels } from "../src/runtime/pool.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { Engine } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";

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

/** Index of the first element whose bits differ, or −1. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

Deno.test("pool: shares are contiguous, grain-aligned and cover the range once", () => {
  assertEquals(share(0, 10, 3, 2, 0), [0, 6]);
  assertEquals(share(0, 10, 3, 2, 1), [6, 10]);
  assertEquals(share(5, 6, 1, 3, 0), [5, 5]); // fewer units than threads: empty shares
  assertEquals(share(5, 6, 1, 3, 2), [5, 6]);
  for (const [lo, hi, grain] of [[0, 256, 6], [3, 130, 4], [0, 7, 8], [17, 900, 8]]) {
    for (let parts = 1; parts <= 5; parts++) {
      let at = lo;
      for (let i = 0; i < parts; i++) {
        const [s0, s1] = share(lo, hi, grain, parts, i);
        assert(s0 === at && s1 >= s0, `${lo}..${hi}/${grain} × ${parts}: piece ${i} is [${s0}, ${s1})`);
        assert((s0 - lo) % grain === 0, `piece ${i} starts off grain`);
        at = s1;
      }
      assertEquals(at, hi);
    }
  }
});

Deno.test("pool: refuses single-thread kernels and fewer than 2 threads", async () => {
  const k = await loadKernels();
  await assertRejects(() => Pool.start(k, { threads: 2 }), "threads build");
  const s = await loadKernels({ shared: true });
  assert(s.shared && s.memory.buffer instanceof SharedArrayBuffer, "Deno should get the threads build");
  await assertRejects(() => Pool.start(s, { threads: 1 }), "at least 2 threads");
});

Deno.test("pool: the loader falls back to the single-thread build without cross-origin isolation", async () => {
  const g = globalThis as { crossOriginIsolated?: boolean };
  const had = Object.getOwnPropertyDescriptor(g, "crossOriginIsolated");
  Object.defineProperty(g, "crossOriginIsolated", { value: false, configurable: true });
  try {
    const k = await loadKernels({ shared: true });
    assert(!k.shared && !(k.memory.buffer instanceof SharedArrayBuffer), "got a shared build");
  } finally {
    if (had) Object.defineProperty(g, "crossOriginIsolated", had);
    else delete g.crossOriginIsolated;
  }
});

Deno.test("pool: startKernels sizes a shared memory to the plan, fixed, before workers start", async () => {
  const specs = (scratch: number) => [{ name: "big", bytes: 3_000_000 }, { name: "scratch", bytes: scratch }];
  const notices: string[] = [];
  const { kernels, arena } = await startKernels(specs, { threads: 3, onNotice: (m) => notices.push(m) });
  try {
    // more threads than cores is allowed (this test does it on purpose) but said
    const cores = availableThreads();
    assertEquals(
      notices.some((m) => m.includes(`3 threads asked for and the runtime reports ${cores} cores`)),
      cores < 3,
      notices.join("\n"),
    );
    assert(kernels.shared && kernels.pool?.threads === 3, "expected a 3-thread pool");
    assertEquals(arena.region("scratch").bytes, 3 * kernels.exports.gemm_scratch_bytes());
    const bytes = kernels.memory.buffer.byteLength;
    assert(
      bytes >= arena.plan.end && bytes - arena.plan.end < 65536,
      `memory ${bytes} for plan ${arena.plan.end}`,
    );
    let grew = true;
    try {
      kernels.memory.grow(1);
    } catch {
      grew = false;
    }
    assert(!grew, "the shared memory must not be growable");
  } finally {
    kernels.pool?.close();
  }
  await assertRejects(() => startKernels(specs, { threads: 2, budget: 1_000_000 }), "budget");
  const one = await startKernels(specs, { threads: 1 });
  assert(!one.kernels.shared && !one.kernels.pool, "one thread must use the single-thread build");
  assertEquals(one.arena.region("scratch").bytes, one.kernels.exports.gemm_scratch_bytes());
});

Deno.test("pool: withMemoryLimits rewrites the imported memory's limits", async () => {
  const bytes = await Deno.readFile(new URL("../wasm/mesp_simd_threads.wasm", import.meta.url));
  const fixed = withMemoryLimits(bytes, 20, 20);
  const module = await WebAssembly.compile(fixed);
  const imports = (pages: number, max: number) =>
    kernelImports(new WebAssembly.Memory({ initial: pages, maximum: max, shared: true }));
  await WebAssembly.instantiate(module, imports(20, 20));
  await assertRejects(() => WebAssembly.instantiate(module, imports(20, 40)), /maximum|memory/i);
  // the original declares 16 … 65536 pages: a 20-page memory with maximum 40 fits it
  await WebAssembly.instantiate(await WebAssembly.compile(bytes), imports(20, 40));
  // LEB128 limits: 16 → 1 byte, 65536 → 3, 20 → 1, 300 → 2, 40000 → 3; the section size follows
  assertEquals(fixed.length, bytes.length - 2);
  const other = withMemoryLimits(fixed, 300, 40000);
  assert(WebAssembly.validate(other) && other.length === fixed.length + 3, `length ${other.length}`);
  await WebAssembly.instantiate(await WebAssembly.compile(other), imports(300, 40000));
  await assertRejects(() => Promise.resolve(withMemoryLimits(new Uint8Array(8), 1, 1)), "imports no memory");
});

/** Regions for one GEMM problem in a kernel instance's memory. */
function gemmArena(k: Kernels, threads: number): Arena {
  const big = 4 * 140 * 320;
  return Arena.create(k, [
    { name: "a", bytes: big },
    { name: "b", bytes: big },
    { name: "s", bytes: big / 16 },
    { name: "z", bytes: big / 16 },
    { name: "c", bytes: big },
    { name: "scratch", bytes: threads * k.exports.gemm_scratch_bytes() },
  ]);
}

type Op = keyof typeof OP;

interface GemmCase {
  op: Op;
  m: number;
  n: number;
  k: number;
  dtype: WeightDtype;
  alpha: number;
  accumulate: boolean;
}

const DTYPES: WeightDtype[] = ["f32", "f16", "bf16", "q8", "q4"];

function gemmCases(): GemmCase[] {
  const out: GemmCase[] = [];
  let i = 0;
  for (const op of ["nt", "nn", "tn"] as Op[]) {
    for (const dtype of DTYPES) {
      if (op === "tn" && dtype !== "f32") continue; // TN's B is an activation
      for (const [m, n, k] of [[131, 67, 64], [9, 200, 128], [50, 5, 300], [40, 136, 3], [1, 33, 64]]) {
        const accumulate = i % 2 === 1;
        out.push({ op, m, n, k, dtype, alpha: accumulate ? -0.5 : 1.25, accumulate });
        i++;
      }
    }
  }
  return out;
}

/** Fills a case's operands (same seed → same bytes in any instance). */
function fill(ar: Arena, c: GemmCase, seed: number): WeightRef {
  const rand = rng(seed);
  ar.f32("a").forEach((_, i, a) => (a[i] = rand()));
  const b = ar.u8("b");
  if (c.dtype === "f32") ar.f32("b").forEach((_, i, a) => (a[i] = rand()));
  else if (c.dtype === "f16" || c.dtype === "bf16") {
    const h = new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
    // bf16/f16 bit patterns of modest numbers: sign, exponent near 0, random mantissa
    for (let i = 0; i < h.length; i++) {
      const m = Math.floor((rand() + 1) * 512) & 0x3ff;
      h[i] = (rand() < 0 ? 0x8000 : 0) | (c.dtype === "f16" ? 0x3800 | m : 0x3f00 | (m & 0x7f));
    }
  } else b.forEach((_, i, a) => (a[i] = Math.floor((rand() + 1) * 128)));
  for (const name of ["s", "z"]) {
    const h = new Uint16Array(ar.u8(name).buffer, ar.ptr(name), ar.region(name).bytes / 2);
    h.forEach((_, i, a) => (a[i] = 0x2c00 | (Math.floor((rand() + 1) * 256) & 0x1ff))); // f16 ≈ 0.06–0.12
  }
  ar.f32("c").forEach((_, i, a) => (a[i] = rand()));
  const ld = c.op === "nt" ? c.k : c.n;
  return {
    dtype: c.dtype,
    ptr: ar.ptr("b"),
    ld: c.dtype === "q4" || c.dtype === "q8" ? Math.ceil(ld / 64) * 64 : ld,
    scales: ar.ptr("s"),
    biases: ar.ptr("z"),
  };
}

function runGemm(g: Gemm, ar: Arena, c: GemmCase, w: WeightRef): Float32Array {
  const lda = c.op === "tn" ? c.m : c.k;
  g.run(OP[c.op], 0, c.m, 0, c.n, c.n, c.k, ar.ptr("a"), lda, w, ar.ptr("c"), c.n, c.alpha, c.accumulate);
  return ar.f32("c").slice(0, c.m * c.n);
}

for (const variant of VARIANTS) {
  Deno.test(`pool ${variant}: GEMMs split over 2 and 3 threads equal one thread bit for bit`, async () => {
    const one = await loadKernels({ variant });
    const ar1 = gemmArena(one, 1);
    const g1 = new Gemm(one.exports, ar1.ptr("scratch"));
    const cases = gemmCases();
    const want = cases.map((c, i) => runGemm(g1, ar1, c, fill(ar1, c, 100 + i)));
    // the single-thread results are right (gemm_test checks them against f64 loops); spot-check one here
    const c0 = cases[0];
    fill(ar1, c0, 100);
    const A = ar1.f32("a"), B = ar1.f32("b");
    for (const [i, j] of [[0, 0], [c0.m - 1, c0.n - 1]]) {
      let s = 0;
      for (let kk = 0; kk < c0.k; kk++) s += A[i * c0.k + kk] * B[j * c0.k + kk];
      const got = want[0][i * c0.n + j];
      assert(Math.abs(got - c0.alpha * s) < 1e-4, `C[${i},${j}] = ${got}, want ${c0.alpha * s}`);
    }
    for (const threads of [2, 3]) {
      const k = await loadKernels({ variant, shared: true });
      const ar = gemmArena(k, threads);
      for (const split of ["auto", "rows", "columns"] as const) {
        const pool = await Pool.start(k, { threads, split, minFlops: 0 });
        try {
          const g = new Gemm(k.exports, ar.ptr("scratch"), { pool });
          cases.forEach((c, i) => {
            const got = runGemm(g, ar, c, fill(ar, c, 100 + i));
            const at = firstDiff(got, want[i]);
            assert(at < 0, `${threads} threads, ${split}: ${JSON.stringify(c)} differs at ${at}`);
          });
          assert(pool.posted >= cases.length / 2, `${split}: only ${pool.posted} calls were split`);
        } finally {
          pool.close();
        }
      }
    }
  });
}

Deno.test("pool: row kernels split over 3 threads equal one thread bit for bit", async () => {
  const T = 45, d = 40, H = 2, hd = 20;
  const make = (k: Kernels) =>
    Arena.create(k, [
      { name: "x", bytes: T * d * 4 },
      { name: "w", bytes: d * 4 },
      { name: "y", bytes: T * d * 4 },
      { name: "rstd", bytes: T * 4 },
      { name: "s", bytes: T * T * 4 },
      { name: "rope", bytes: 2 * T * (hd / 2) * 4 },
      { name: "targets", bytes: T * 4 },
      // the loss's per-row max, sum, target logit, weight, loss, log-sum-exp
      { name: "rows", bytes: 6 * T * 4 },
    ]);
  const seedAll = (ar: Arena) => {
    const rand = rng(7);
    for (const name of ["x", "w", "y", "s", "rope"]) ar.f32(name).forEach((_, i, a) => (a[i] = rand()));
    // targets in both vocabulary chunks below (−1: none); every 5th row weightless
    ar.i32("targets").forEach((_, i, a) => (a[i] = i % 7 === 3 ? -1 : (i * 13) % (2 * T)));
    ar.f32("rows").subarray(3 * T, 4 * T).forEach((_, i, a) => (a[i] = i % 5 === 0 ? 0 : 1 / T));
  };
  const work = (ar: Arena, k: Kernels["exports"]) => {
    const p = (n: string) => ar.ptr(n);
    k.rmsnorm_forward(p("y"), p("rstd"), p("x"), p("w"), d, d, d, 1e-6, 3, T);
    k.rmsnorm_backward(p("x"), p("y"), p("y"), p("w"), p("rstd"), d, d, d, d, 1, 3, T);
    k.rope_forward(p("y"), p("rope"), p("rope") + T * (hd / 2) * 4, H, hd, d, 0, 0, T);
    k.softmax_causal_forward(p("s"), p("s"), T, T, 0.3, 0, 1, T);
    k.swiglu_forward(p("x"), p("y"), p("x"), d, d, d, d, 0, T);
    // the training loss over two vocabulary chunks of T rows (logits in s), its gradient accumulated in y
    const row = (i: number) => p("rows") + i * T * 4;
    for (const [v0, first] of [[0, 1], [T, 0]]) {
      k.ce_chunk_fused(
        p("s"),
        T,
        T,
        v0,
        p("targets"),
        row(0),
        row(1),
        row(2),
        row(3),
        p("y"),
        d,
        d,
        first,
        0,
        T,
      );
    }
    k.ce_fused_finish(row(4), row(5), row(0), row(1), row(2), row(3), p("y"), d, d, 0, T);
    return ["x", "y", "rstd", "s", "rows"].map((n) => ar.f32(n).slice());
  };
  const one = await loadKernels();
  const ar1 = make(one);
  seedAll(ar1);
  const want = work(ar1, one.exports);
  const k = await loadKernels({ shared: true });
  const ar = make(k);
  seedAll(ar);
  const pool = await Pool.start(k, { threads: 3, minRows: 1 });
  try {
    const got = work(ar, pool.exports);
    assertEquals(pool.posted, 8);
    got.forEach((g, i) =>
      assert(firstDiff(g, want[i]) < 0, `buffer ${i} differs at ${firstDiff(g, want[i])}`)
    );
  } finally {
    pool.close();
  }
  assert(ar.f32("s").some((v) => v !== 0), "softmax wrote nothing");
  assert(ar.f32("rows").subarray(4 * T, 5 * T).some((v) => v > 0), "the loss wrote nothing");
  assertRejects(() => pool.exports.softmax_causal_forward(0, 0, T, T, 1, 0, 0, T), "closed");
});

Deno.test("pool: a kernel that traps in any share throws, and the pool still works afterwards", async () => {
  const k = await loadKernels({ shared: true });
  const ar = Arena.create(k, [{ name: "x", bytes: 64 * 64 * 4 }, { name: "y", bytes: 64 * 64 * 4 }]);
  const pool = await Pool.start(k, { threads: 2, minRows: 1 });
  try {
    const beyond = k.memory.buffer.byteLength; // every row of x lies past the end of memory
    for (let i = 0; i < 5; i++) {
      await assertRejects(
        () => pool.exports.swiglu_forward(ar.ptr("y"), beyond, beyond, 64, 64, 64, 64, 0, 64),
        /out of bounds|failed in a worker/,
      );
    }
    ar.f32("x").fill(1);
    pool.exports.swiglu_forward(ar.ptr("y"), ar.ptr("x"), ar.ptr("x"), 64, 64, 64, 64, 0, 64);
    const silu1 = 1 / (1 + Math.exp(-1));
    assert(ar.f32("y").every((v) => Math.abs(v - silu1) < 1e-6), "swiglu after a failure");
  } finally {
    pool.close();
  }
});

/** Loss and every LoRA gradient of one MeSP step on a golden fixture. */
async function step(name: string, threads: number, split: "auto" | "rows" | "columns" = "auto") {
  const c = await loadCase(name, name === "mlx_q4" ? "q4" : "f32", 64);
  const adapter = await openAdapter(dirFiles(`${c.dir}/adapter`));
  const lora = loraLayout(c.cfg, adapter.config);
  const e = await Engine.create(c.pack, {
    mode: "train",
    seqLen: c.T,
    lora,
    gradBuffer: true,
    vocabChunk: 100,
    threads,
    poolOptions: { minRows: 1, minFlops: 0, split },
  });
  try {
    await readAdapterInto(adapter, lora, e.arena.f32("lora.params"));
    const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false });
    const { loss } = await forwardBackward(e, bw, c.ids, c.targets, c.T);
    return { loss, grads: e.arena.f32("lora.grad").slice(), posted: e.kernels.pool?.posted ?? 0 };
  } finally {
    e.close();
  }
}

for (const name of ["mlx_q4", "gqa_tied_f32"]) {
  Deno.test(`pool: a MeSP step (${name}) gives the same loss and gradients on 1, 2, 3 threads`, async () => {
    const ref = await step(name, 1);
    assertEquals(ref.posted, 0);
    assert(ref.grads.some((g) => g !== 0) && Number.isFinite(ref.loss), "reference step computed nothing");
    for (const [threads, split] of [[2, "auto"], [2, "rows"], [3, "columns"], [3, "auto"]] as const) {
      const got = await step(name, threads, split);
      assert(got.posted > 100, `${threads} threads, ${split}: only ${got.posted} split calls`);
      assert(Object.is(got.loss, ref.loss), `${threads} threads, ${split}: loss ${got.loss} vs ${ref.loss}`);
      const at = firstDiff(got.grads, ref.grads);
      assert(
        at < 0,
        `${threads} threads, ${split}: gradient ${at} is ${got.grads[at]}, want ${ref.grads[at]}`,
      );
    }
  });
}
