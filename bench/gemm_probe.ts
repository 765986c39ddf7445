/**
 * One GEMM, timed in 200 ms windows for the life of one process: does the machine run the kernels at full
 * speed right now? (The project machine has periods, minutes long and invisible in `/proc/stat`, in which
 * wasm GEMMs run ~40 % slower; see bench/README.md.)
 *
 *   for i in 1 2 3 4 5; do deno run --lock=deno.dev.lock -A bench/gemm_probe.ts; done              # one thread
 *   deno run --lock=deno.dev.lock -A bench/gemm_probe.ts --threads 2 --split rows                   # a 2-thread pool
 *
 * Prints GFLOP/s of x·Wᵀ (256×4864×896, f32, relaxed build) in ten 200 ms windows, each with the process's
 * busy cores in parentheses.
 *
 * @module
 */
import { startKernels } from "../src/runtime/pool.ts";
import { Gemm } from "../src/runtime/gemm.ts";
import type { WeightRef } from "../src/runtime/weight_ref.ts";
import { OP } from "../src/runtime/kernels.ts";
import { cpuSeconds } from "./measure.ts";
import { benchArgs, SPLIT_FLAG } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/gemm_probe.ts",
  program: "deno run -A",
  description: "one GEMM timed in 200 ms windows: does the machine run the kernels at full speed now?",
  flags: {
    threads: { type: "integer", default: 1, min: 1, description: "threads (2 or more: a pool)" },
    split: SPLIT_FLAG,
  },
} as const satisfies CommandSpec;
const { threads, split } = benchArgs(SPEC);
const [m, n, k] = [256, 4864, 896];
const { kernels, arena } = await startKernels((scratch) => [
  { name: "a", bytes: 4 * m * k },
  { name: "b", bytes: 4 * n * k },
  { name: "c", bytes: 4 * m * n },
  { name: "scratch", bytes: scratch },
], { variant: "relaxed", threads, poolOptions: { split } });
arena.f32("a").forEach((_, i, a) => (a[i] = ((i * 7) % 13) * 0.1 - 0.6));
arena.f32("b").forEach((_, i, a) => (a[i] = ((i * 5) % 11) * 0.1 - 0.5));
const gemm = new Gemm(kernels.exports, arena.ptr("scratch"), { pool: kernels.pool });
const w: WeightRef = { dtype: "f32", ptr: arena.ptr("b"), ld: k, scales: 0, biases: 0 };
const run = () => gemm.run(OP.nt, 0, m, 0, n, n, k, arena.ptr("a"), k, w, arena.ptr("c"), n, 1, false);

const out: string[] = [];
for (let window = 0; window < 10; window++) {
  const t0 = performance.now(), c0 = cpuSeconds().own;
  let calls = 0;
  while (performance.now() - t0 < 200) {
    run();
    calls++;
  }
  const s = (performance.now() - t0) / 1000;
  out.push(`${((2 * m * n * k * calls) / s / 1e9).toFixed(1)} (${((cpuSeconds().own - c0) / s).toFixed(1)})`);
}
console.log(`threads ${kernels.pool?.threads ?? 1}, split ${split}: ${out.join("  ")}`);
kernels.pool?.close();
