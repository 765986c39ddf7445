/**
 * What a V8 flag does to the kernels: every GEMM of Qwen2.5-0.5B training at T = 256, rank 8 (the shapes of
 * `bench:gemm --quick`, relaxed build, one thread) and a training step (`train`, one thread), with and
 * without the flag, alternating child processes round by round so that drift hits both sides alike; printed
 * side by side with the ratio. Time is CPU time of the thread that computes (`/proc/thread-self/schedstat`),
 * so other programs on a shared machine do not count (their cache and memory-bandwidth use still does).
 *
 *   deno run --lock=deno.dev.lock -A bench/v8_flags.ts --flag=--experimental-wasm-revectorize --model /tmp/m05
 *   deno run --lock=deno.dev.lock -A bench/v8_flags.ts --flag=--no-liftoff --rounds 5 --no-step
 *
 * Flags: `--help` (the shared bench parser, `bench/args.ts`); `--flag` takes V8 flags with `=` since they start
 * with `--`; a step is measured only with `--model` (3 steps per child, the first not counted).
 *
 * @module
 */
import { cpuModel, median } from "./measure.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/v8_flags.ts",
  program: "deno run -A",
  description: "GEMMs and a training step with and without a V8 flag, alternating child processes",
  flags: {
    flag: {
      type: "string",
      value: "V8FLAG",
      description: "the V8 flag(s), comma-separated; one that starts with -- is given as --flag=--no-liftoff",
    },
    rounds: { type: "integer", default: 3, min: 1, description: "GEMM children per side" },
    stepRounds: {
      type: "integer",
      default: 2,
      min: 1,
      description: "train children per side (3 steps each)",
    },
    model: {
      type: "string",
      value: "DIR",
      description: "an MLX q4 checkpoint for the step (else GEMMs only)",
    },
    cache: { type: "string", value: "DIR", description: "mesp's cache for the model's pack" },
    noStep: { type: "boolean", description: "GEMMs only" },
    childGemm: { type: "boolean", description: "(internal) the GEMM child" },
  },
} as const satisfies CommandSpec;
const args = benchArgs(SPEC);
const v8 = args.flag ?? "";
if (!v8 && !args.childGemm) {
  console.error("bench/v8_flags.ts: --flag V8FLAG is required (see --help)");
  Deno.exit(2);
}
const { rounds, stepRounds } = args;
const model = args.model ?? "";
const here = (p: string) => new URL(p, import.meta.url).pathname;
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

async function deno(
  withFlag: boolean,
  script: string,
  rest: string[],
): Promise<{ out: string; err: string }> {
  const a = [
    "run",
    "-A",
    `--v8-flags=--max-semi-space-size=1${withFlag ? "," + v8 : ""}`,
    here(script),
    ...rest,
  ];
  const o = await new Deno.Command(Deno.execPath(), { args: a, stdout: "piped", stderr: "piped" }).output();
  if (!o.success) throw new Error(`${script} ${withFlag ? v8 : ""} failed:\n${decode(o.stderr)}`);
  return { out: decode(o.stdout), err: decode(o.stderr) };
}

/** Seconds this thread has run on a CPU (`/proc/thread-self/schedstat`): other programs do not count. */
function threadCpu(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]) / 1e9;
}

/** The child: GFLOP/s per CPU-second of every T = 256, rank 8 product of Qwen2.5-0.5B (relaxed, one thread). */
async function gemmChild(): Promise<void> {
  const { startKernels } = await import("../src/runtime/pool.ts");
  const { Gemm } = await import("../src/runtime/gemm.ts");
  const { OP } = await import("../src/runtime/kernels.ts");
  const T = 256, maxW = 4864 * 896;
  const { kernels, arena: ar } = await startKernels((scratch) => [
    { name: "a", bytes: 4 * T * 4864 },
    { name: "b", bytes: 4 * maxW },
    { name: "scales", bytes: 2 * maxW / 64 },
    { name: "c", bytes: 4 * T * 4864 },
    { name: "scratch", bytes: scratch },
  ], { variant: "relaxed", threads: 1 });
  ar.f32("a").forEach((_, i, a) => (a[i] = ((i * 7) % 13) * 0.1 - 0.6));
  ar.f32("b").forEach((_, i, a) => (a[i] = ((i * 5) % 11) * 0.1 - 0.5));
  ar.f32("c").fill(0);
  new Uint16Array(ar.u8("scales").buffer, ar.ptr("scales"), maxW / 64).fill(0x2e66); // f16 0.1
  const gemm = new Gemm(kernels.exports, ar.ptr("scratch"), {});
  const W: [string, number, number][] = [["q/o", 896, 896], ["gate/up", 4864, 896], ["down", 896, 4864], [
    "k/v",
    128,
    896,
  ]];
  const shapes: {
    what: string;
    op: "nt" | "nn" | "tn";
    m: number;
    n: number;
    k: number;
    dtype: "f32" | "q4";
  }[] = [];
  for (const [name, o, i] of W) {
    for (const dtype of ["f32", "q4"] as const) {
      shapes.push({ what: `x·Wᵀ ${name} ${dtype}`, op: "nt", m: T, n: o, k: i, dtype });
      shapes.push({ what: `G·W ${name} ${dtype}`, op: "nn", m: T, n: i, k: o, dtype });
    }
    shapes.push({ what: `x·Aᵀ ${name} r8`, op: "nt", m: T, n: 8, k: i, dtype: "f32" });
    shapes.push({ what: `h·Bᵀ ${name} r8`, op: "nt", m: T, n: o, k: 8, dtype: "f32" });
    shapes.push({ what: `ghᵀ·x ${name} r8`, op: "tn", m: 8, n: i, k: T, dtype: "f32" });
    shapes.push({ what: `Gᵀ·h ${name} r8`, op: "tn", m: o, n: 8, k: T, dtype: "f32" });
  }
  for (const s of shapes) {
    const w = { dtype: s.dtype, ptr: ar.ptr("b"), ld: s.op === "nt" ? s.k : s.n, scales: ar.ptr("scales") };
    const ref = { ...w, biases: ar.ptr("scales") };
    const lda = s.op === "tn" ? s.m : s.k;
    const run = () =>
      gemm.run(OP[s.op], 0, s.m, 0, s.n, s.n, s.k, ar.ptr("a"), lda, ref, ar.ptr("c"), s.n, 1, false);
    for (let i = 0; i < 3; i++) run();
    const t0 = threadCpu();
    let n = 0, t = 0;
    do {
      run();
      n++;
      t = threadCpu() - t0;
    } while (t < 0.1 || n < 3);
    console.log(
      JSON.stringify({
        what: s.what,
        shape: `${s.m}×${s.n}×${s.k}`,
        gflops: 2 * s.m * s.n * s.k * n / t / 1e9,
      }),
    );
  }
}

if (args.childGemm) {
  await gemmChild();
  Deno.exit(0);
}

// GEMMs: alternating children, with and without the flag
const gemm = new Map<string, { off: number[]; on: number[]; shape: string }>();
for (let r = 0; r < rounds; r++) {
  for (const on of r % 2 ? [true, false] : [false, true]) {
    const { out } = await deno(on, "v8_flags.ts", ["--child-gemm"]);
    for (const line of out.split("\n").filter((l) => l.startsWith("{"))) {
      const x = JSON.parse(line);
      const e = gemm.get(x.what) ?? { off: [], on: [], shape: x.shape };
      (on ? e.on : e.off).push(x.gflops);
      gemm.set(x.what, e);
    }
  }
  console.error(`GEMM round ${r + 1}/${rounds} done`);
}
console.log(`| product | M×N×K | GF/s | GF/s ${v8} | ratio |`);
console.log("| --- | --- | --: | --: | --: |");
const ratios: number[] = [];
for (const [k, e] of gemm) {
  const off = median(e.off), on = median(e.on);
  ratios.push(on / off);
  console.log(`| ${k} | ${e.shape} | ${off.toFixed(1)} | ${on.toFixed(1)} | ${(on / off).toFixed(2)} |`);
}
console.log(
  `\nGEMM ratio (with / without): median ${median(ratios).toFixed(3)}, range ` +
    `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} over ${ratios.length} products; ` +
    `GFLOP per CPU-second of the calling thread, ≥ 0.1 s each, median of ${rounds} children per side`,
);

if (model && !args.noStep) {
  const steps = { off: [] as number[], on: [] as number[] };
  const losses = { off: new Set<string>(), on: new Set<string>() };
  const data = await Deno.makeTempFile({ suffix: ".jsonl" });
  let x = 99;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % 151000;
  };
  await Deno.writeTextFile(
    data,
    Array.from({ length: 4 }, () => JSON.stringify({ input_ids: Array.from({ length: 256 }, next) })).join(
      "\n",
    ),
  );
  for (let r = 0; r < stepRounds; r++) {
    for (const on of r % 2 ? [true, false] : [false, true]) {
      const dir = await Deno.makeTempDir();
      const a = [
        "run",
        "-A",
        `--v8-flags=--max-semi-space-size=1${on ? "," + v8 : ""}`,
        here("memory_probe.ts"),
      ];
      a.push(
        "train",
        "--model",
        model,
        "--data",
        data,
        "--threads",
        "1",
        "--steps",
        "3",
        "--optimizer",
        "sgd",
      );
      a.push("--lr", "1e-4", "--schedule", "constant", "--out", `${dir}/run`, "--json");
      if (args.cache) a.push("--cache-dir", args.cache);
      const o = await new Deno.Command(Deno.execPath(), {
        args: a,
        env: { MESP_MEMORY_PROBE: `${dir}/probe.jsonl` },
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!o.success) throw new Error(`train ${on ? v8 : ""} failed:\n${decode(o.stderr)}`);
      const cpu = (await Deno.readTextFile(`${dir}/probe.jsonl`)).trim().split("\n").map((l) => JSON.parse(l))
        .filter((r) => r.label?.startsWith("stdout")).map((r) => r.cpu as number);
      // the main thread runs every kernel with one thread: its CPU time between step lines is the step
      for (let i = 1; i < cpu.length; i++) (on ? steps.on : steps.off).push(cpu[i] - cpu[i - 1]);
      for (const l of decode(o.stdout).split("\n").filter((l) => l.startsWith('{"step"'))) {
        (on ? losses.on : losses.off).add(String(JSON.parse(l).loss));
      }
      await Deno.remove(dir, { recursive: true });
    }
    console.error(`step round ${r + 1}/${stepRounds} done`);
  }
  const off = median(steps.off), on = median(steps.on);
  const same = [...losses.off].join() === [...losses.on].join();
  console.log(
    `\nMeSP step (${model}, q4, T 256, rank 8, all targets, SGD, one thread): ${
      off.toFixed(2)
    } CPU-s, with ` +
      `${v8} ${on.toFixed(2)} CPU-s: ${(off / on).toFixed(2)}× the speed (median of ${steps.off.length} / ` +
      `${steps.on.length} steps after the first of each process); losses ${same ? "identical" : "DIFFER"}`,
  );
}
console.log(`CPU: ${cpuModel()}`);
