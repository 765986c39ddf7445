/**
 * Does a GEMM run in V8's optimizing tier (TurboFan) from its first call? V8 compiles a wasm function with
 * its baseline compiler (Liftoff) on first call and recompiles it with TurboFan once it has run enough
 * ("dynamic tiering"); a call that is already running keeps its Liftoff code to the end (wasm has no
 * on-stack replacement). `gemm` inlines its micro-kernel, so the first GEMM of a process could run entirely
 * at baseline speed.
 *
 *   deno run --lock=deno.dev.lock -A bench/tier_probe.ts                # each V8 setting in fresh processes, interleaved, 5 rounds
 *   deno run --lock=deno.dev.lock -A bench/tier_probe.ts --rounds 9
 *
 * Each child process times (in CPU time of its thread, so that other programs on the machine do not count)
 * its first five calls of x·Wᵀ gate/up (256×4864×896, f32, relaxed build, one
 * thread), optionally after a warm-up; printed: GFLOP/s of call 1, 2, 3 and 5 (median over rounds) per
 * setting. `--child FLAGS…` is the child's own entry.
 *
 * @module
 */
import { startKernels } from "../src/runtime/pool.ts";
import { Gemm } from "../src/runtime/gemm.ts";
import type { WeightRef } from "../src/runtime/weight_ref.ts";
import { OP } from "../src/runtime/kernels.ts";
import { cpuModel, median } from "./measure.ts";
import type { CommandSpec } from "../src/cli/args.ts";
import { benchArgs } from "./args.ts";

const [m, n, k] = [256, 4864, 896];

/**
 * Seconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`, nanoseconds): on a machine
 * other programs share, a call's CPU time is its cost whatever the wall clock did meanwhile.
 */
function threadCpuSeconds(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]) / 1e9;
}

/** Settings: V8 flags, and a warm-up the host could do at init. */
const SETTINGS: { name: string; v8: string[]; warmup?: "small" | "medium" }[] = [
  { name: "default", v8: [] },
  { name: "--no-liftoff", v8: ["--no-liftoff"] },
  { name: "warm-up 6×8×896 ×16", v8: [], warmup: "small" },
  { name: "warm-up 64×256×896 ×4", v8: [], warmup: "medium" },
  { name: "--no-liftoff, warm-up 6×8×896 ×16", v8: ["--no-liftoff"], warmup: "small" },
  { name: "--liftoff-only (baseline tier only)", v8: ["--liftoff-only"] },
];

async function child(warmup: string | undefined): Promise<void> {
  const { kernels, arena } = await startKernels((scratch) => [
    { name: "a", bytes: 4 * m * k },
    { name: "b", bytes: 4 * n * k },
    { name: "c", bytes: 4 * m * n },
    { name: "scratch", bytes: scratch },
  ], { variant: "relaxed", threads: 1 });
  arena.f32("a").forEach((_, i, a) => (a[i] = ((i * 7) % 13) * 0.1 - 0.6));
  arena.f32("b").forEach((_, i, a) => (a[i] = ((i * 5) % 11) * 0.1 - 0.5));
  // touch every page first, so that no call pays for first-touch page faults
  arena.f32("c").fill(0);
  new Uint8Array(kernels.memory.buffer, arena.ptr("scratch"), arena.region("scratch").bytes).fill(0);
  const gemm = new Gemm(kernels.exports, arena.ptr("scratch"), {});
  const w: WeightRef = { dtype: "f32", ptr: arena.ptr("b"), ld: k, scales: 0, biases: 0 };
  const run = (mm: number, nn: number) =>
    gemm.run(OP.nt, 0, mm, 0, nn, nn, k, arena.ptr("a"), k, w, arena.ptr("c"), nn, 1, false);
  let warmMs = 0;
  if (warmup) {
    const t0 = threadCpuSeconds();
    const [mm, nn, times] = warmup === "small" ? [6, 8, 16] : [64, 256, 4];
    for (let i = 0; i < times; i++) run(mm, nn);
    warmMs = (threadCpuSeconds() - t0) * 1000;
  }
  const gflops: number[] = [];
  for (let call = 0; call < 5; call++) {
    const t0 = threadCpuSeconds();
    run(m, n);
    gflops.push((2 * m * n * k) / (threadCpuSeconds() - t0) / 1e9);
  }
  console.log(JSON.stringify({ gflops, warmMs }));
}

const SPEC = {
  name: "bench/tier_probe.ts",
  program: "deno run -A",
  description: "whether a first long GEMM call runs in V8's baseline tier, per V8 setting and warm-up",
  flags: {
    rounds: { type: "integer", default: 5, min: 1, description: "rounds of fresh processes per setting" },
  },
} as const satisfies CommandSpec;

async function main(): Promise<void> {
  const { rounds } = benchArgs(SPEC);
  const results = SETTINGS.map(() => [] as { gflops: number[]; warmMs: number }[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, s] of SETTINGS.entries()) {
      const args = ["run", "-A", ...(s.v8.length ? [`--v8-flags=${s.v8.join(",")}`] : [])];
      args.push(new URL(import.meta.url).pathname, "--child", s.warmup ?? "none");
      const out = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit" }).output();
      if (!out.success) throw new Error(`${s.name}: the child failed`);
      results[i].push(JSON.parse(new TextDecoder().decode(out.stdout)));
    }
  }
  console.log("| setting | call 1 GF/s | call 2 | call 3 | call 5 | warm-up CPU ms |");
  console.log("| --- | --: | --: | --: | --: | --: |");
  for (const [i, s] of SETTINGS.entries()) {
    const col = (c: number) => median(results[i].map((x) => x.gflops[c])).toFixed(1);
    const warm = median(results[i].map((x) => x.warmMs)).toFixed(1);
    console.log(`| ${s.name} | ${col(0)} | ${col(1)} | ${col(2)} | ${col(4)} | ${s.warmup ? warm : ""} |`);
  }
  console.log(
    `(median of ${rounds} rounds; ${cpuModel()}; Deno ${Deno.version.deno}, V8 ${Deno.version.v8})`,
  );
}

if (Deno.args[0] === "--child") await child(Deno.args[1] === "none" ? undefined : Deno.args[1]);
else await main();
