/**
 * GEMM throughput on the shapes of Qwen2.5-0.5B training, for every kernel variant, beside a native
 * 128-bit FMA reference of the same algorithm measured in the same run.
 *
 *   deno task bench:gemm              # table
 *   deno task bench:gemm --json       # one JSON object per line
 *   deno task bench:gemm --quick      # T = 256, rank 8 only
 *   deno task bench:gemm --runs 7     # rounds (median is reported; default 5)
 *   deno task bench:gemm --threads 2  # adds the fastest variant on a 2-thread pool, and its ratio to 1 thread
 *   deno task bench:gemm --threads 2 --split rows   # force the pool's split (rows | columns; default auto)
 *
 * Each round measures every (shape, variant) once for ~50 ms and asks the native process for one
 * measurement of the same shape, so slow drift on a noisy machine hits both sides alike. With
 * `--threads N` the N-thread pool is measured in the same rounds, right after the single-thread build.
 */
import { OP, type Variant, VARIANTS, type WeightDtype } from "../src/runtime/kernels.ts";
import { Gemm } from "../src/runtime/gemm.ts";
import type { WeightRef } from "../src/runtime/weight_ref.ts";
import { startKernels } from "../src/runtime/pool.ts";
import { cpuModel, cpuSeconds, median } from "./measure.ts";
import { benchArgs, SPLIT_FLAG } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

type Op = keyof typeof OP;

interface Shape {
  what: string;
  op: Op;
  m: number;
  n: number;
  k: number;
  dtype: WeightDtype;
}

const SPEC = {
  name: "bench:gemm",
  program: "deno task",
  description: "GEMM throughput on Qwen2.5-0.5B training shapes, every variant beside a native reference",
  flags: {
    json: { type: "boolean", description: "one JSON object per line" },
    quick: { type: "boolean", description: "T = 256, rank 8 only" },
    runs: { type: "integer", default: 5, min: 1, description: "rounds (the median is reported)" },
    threads: {
      type: "integer",
      default: 1,
      min: 1,
      description: "also the fastest variant on a pool of N threads",
    },
    split: SPLIT_FLAG,
  },
} as const satisfies CommandSpec;
const { json, quick, runs, threads, split } = benchArgs(SPEC);
const SECONDS = 0.05;

// Qwen2.5-0.5B linear weights [out, in]: q/o [896,896], gate/up [4864,896], down [896,4864], k/v [128,896].
const WEIGHTS: [string, number, number][] = [["q/o", 896, 896], ["gate/up", 4864, 896], ["down", 896, 4864], [
  "k/v",
  128,
  896,
]];

function shapes(): Shape[] {
  const out: Shape[] = [];
  for (const T of quick ? [256] : [256, 512]) {
    for (const [name, o, i] of WEIGHTS) {
      for (const dtype of ["f32", "q4"] as WeightDtype[]) {
        out.push({ what: `x·Wᵀ ${name}`, op: "nt", m: T, n: o, k: i, dtype });
        out.push({ what: `G·W ${name}`, op: "nn", m: T, n: i, k: o, dtype });
      }
    }
    for (const r of quick ? [8] : [8, 16]) {
      for (const [name, o, i] of WEIGHTS) {
        out.push({ what: `x·Aᵀ ${name} r${r}`, op: "nt", m: T, n: r, k: i, dtype: "f32" });
        out.push({ what: `h·Bᵀ ${name} r${r}`, op: "nt", m: T, n: o, k: r, dtype: "f32" });
        out.push({ what: `ghᵀ·x ${name} r${r}`, op: "tn", m: r, n: i, k: T, dtype: "f32" });
        out.push({ what: `Gᵀ·h ${name} r${r}`, op: "tn", m: o, n: r, k: T, dtype: "f32" });
      }
    }
  }
  return out;
}

/** The native reference as a long-lived process answering one measurement per request. */
class Native {
  #proc: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  private constructor(proc: Deno.ChildProcess) {
    this.#proc = proc;
    this.#writer = proc.stdin.getWriter();
    this.#lines = proc.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines()).values();
  }
  static async start(): Promise<Native | string> {
    const src = new URL("./native/gemm_ref.c", import.meta.url).pathname;
    const bin = new URL("./native/gemm_ref", import.meta.url).pathname;
    try {
      const cc = await new Deno.Command("gcc", { args: ["-O3", "-mavx", "-mfma", "-o", bin, src] }).output();
      if (!cc.success) return `native reference skipped: gcc failed: ${new TextDecoder().decode(cc.stderr)}`;
    } catch {
      return "native reference skipped: no C compiler (gcc) found";
    }
    const proc = new Deno.Command(bin, { stdin: "piped", stdout: "piped" }).spawn();
    return new Native(proc);
  }
  async measure(s: Shape): Promise<number> {
    await this.#writer.write(new TextEncoder().encode(`${s.op} ${s.m} ${s.n} ${s.k} ${SECONDS}\n`));
    const r = await this.#lines.next();
    return Number(r.value);
  }
  async close() {
    await this.#writer.close();
    await this.#proc.status;
  }
}

function splitLines(): TransformStream<string, string> {
  let buf = "";
  return new TransformStream({
    transform(chunk, ctl) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        ctl.enqueue(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    },
  });
}

/**
 * One arena per variant, big enough for the largest shape, filled with small non-zero values; with
 * `threads`, on the threads build with a pool (as the engine sets it up: `startKernels`).
 */
async function setup(variant: Variant, threads = 1) {
  const maxT = 512, maxW = 4864 * 896;
  const { kernels: k, arena: ar } = await startKernels((scratch) => [
    { name: "a", bytes: 4 * maxT * 4864 },
    { name: "b", bytes: 4 * maxW },
    { name: "scales", bytes: 2 * maxW / 64 },
    { name: "c", bytes: 4 * maxT * 4864 },
    { name: "scratch", bytes: scratch },
  ], { variant, threads, poolOptions: { split } });
  if (threads > 1 && k.pool?.threads !== threads) throw new Error(`no pool of ${threads} threads here`);
  ar.f32("a").forEach((_, i, a) => (a[i] = ((i * 7) % 13) * 0.1 - 0.6));
  ar.f32("b").forEach((_, i, a) => (a[i] = ((i * 5) % 11) * 0.1 - 0.5));
  new Uint16Array(ar.u8("scales").buffer, ar.ptr("scales"), maxW / 64).fill(0x2e66); // f16 0.1
  return { ar, pool: k.pool, gemm: new Gemm(k.exports, ar.ptr("scratch"), { pool: k.pool }) };
}

type Env = Awaited<ReturnType<typeof setup>>;

function measure(env: Env, s: Shape): number {
  const { ar, gemm } = env;
  const ld = s.op === "nt" ? s.k : s.n;
  const w: WeightRef = {
    dtype: s.dtype,
    ptr: ar.ptr("b"),
    ld,
    scales: ar.ptr("scales"),
    biases: ar.ptr("scales"),
  };
  const lda = s.op === "tn" ? s.m : s.k;
  const run = () =>
    gemm.run(OP[s.op], 0, s.m, 0, s.n, s.n, s.k, ar.ptr("a"), lda, w, ar.ptr("c"), s.n, 1, false);
  run();
  const t0 = performance.now();
  let n = 0, t = 0;
  do {
    run();
    n++;
    t = performance.now() - t0;
  } while (t < SECONDS * 1000);
  return (2 * s.m * s.n * s.k * n) / (t / 1000) / 1e9;
}

const list = shapes();
const envs = new Map<string, Env>();
for (const v of VARIANTS) {
  try {
    envs.set(v, await setup(v));
  } catch (e) {
    console.error(`variant ${v} skipped: ${(e as Error).message}`);
  }
}
// the N-thread pool on the fastest variant's threads build, measured right after its single-thread build
const fastest = [...envs.keys()][0];
const threadedName = `${fastest}×${threads}`;
if (threads > 1) {
  const env = await setup(fastest as Variant, threads);
  const ordered = new Map<string, Env>();
  for (const [name, e] of envs) {
    ordered.set(name, e);
    if (name === fastest) ordered.set(threadedName, env);
  }
  envs.clear();
  for (const [name, e] of ordered) envs.set(name, e);
}
const native = await Native.start();
if (typeof native === "string") console.error(native);
const results = new Map<string, number[]>();
const key = (i: number, v: string) => `${i}/${v}`;
// On a shared machine other programs take cores from the threads being measured: a sample (one shape, every
// variant) during which they used more than QUIET cores is set aside and the shape measured again, up to
// 4× the rounds; a shape left without a quiet sample reports its contended ones, marked with *.
const QUIET = 0.15;
const quiet = list.map(() => 0);
const noisy = new Map<string, number[]>();
let discarded = 0;
const maxRounds = threads > 1 ? 4 * runs : runs;
for (let r = 0; r < maxRounds && quiet.some((q) => q < runs); r++) {
  if (!json) {
    const left = quiet.filter((q) => q < runs).length;
    await Deno.stderr.write(new TextEncoder().encode(`\rround ${r + 1}, ${left} shapes to go   `));
  }
  for (let i = 0; i < list.length; i++) {
    if (quiet[i] >= runs) continue;
    const cpu0 = cpuSeconds(), t0 = performance.now();
    const sample = [...envs].map(([v, env]) => [v, measure(env, list[i])] as const);
    const cpu1 = cpuSeconds();
    const others = (cpu1.busy - cpu0.busy - (cpu1.own - cpu0.own)) / ((performance.now() - t0) / 1000);
    const contended = threads > 1 && others > QUIET;
    for (const [v, g] of sample) {
      const into = contended ? noisy : results;
      into.set(key(i, v), [...(into.get(key(i, v)) ?? []), g]);
    }
    if (contended) {
      discarded++;
      continue;
    }
    quiet[i]++;
    if (typeof native !== "string") {
      const xs = results.get(key(i, "native")) ?? [];
      xs.push(await native.measure(list[i]));
      results.set(key(i, "native"), xs);
    }
  }
}
const starred = new Set<number>();
list.forEach((_, i) => {
  if (quiet[i] > 0) return;
  starred.add(i);
  for (const v of envs.keys()) results.set(key(i, v), noisy.get(key(i, v))!);
});
if (typeof native !== "string") await native.close();
for (const env of envs.values()) env.pool?.close();
if (!json) await Deno.stderr.write(new TextEncoder().encode("\r"));

const variants = [...envs.keys()];
const rows: string[][] = [];
/** N-thread over 1-thread ratio per shape (same variant, same rounds). */
const speedups: { what: string; ratio: number }[] = [];
for (let i = 0; i < list.length; i++) {
  const s = list[i];
  const nat = results.has(key(i, "native")) ? median(results.get(key(i, "native"))!) : NaN;
  const row = [`${s.what}${starred.has(i) ? " *" : ""}`, `${s.m}×${s.n}×${s.k}`, s.op, s.dtype];
  const speedup = threads > 1
    ? median(results.get(key(i, threadedName))!) / median(results.get(key(i, fastest))!)
    : NaN;
  for (const v of variants) {
    const g = median(results.get(key(i, v))!);
    row.push(g.toFixed(1));
    if (json) {
      console.log(JSON.stringify({
        m: s.m,
        n: s.n,
        k: s.k,
        op: s.op,
        b_dtype: s.dtype,
        variant: v,
        gflops: +g.toFixed(2),
        native_gflops: Number.isNaN(nat) ? null : +nat.toFixed(2),
        ratio: Number.isNaN(nat) ? null : +(g / nat).toFixed(3),
        what: s.what,
        ...(v === threadedName ? { threads, speedup: +speedup.toFixed(3) } : {}),
      }));
    }
  }
  if (threads > 1) {
    row.push(speedup.toFixed(2));
    speedups.push({ what: s.what, ratio: speedup });
  }
  row.push(Number.isNaN(nat) ? "-" : nat.toFixed(1));
  row.push(Number.isNaN(nat) ? "-" : (median(results.get(key(i, variants[0]))!) / nat).toFixed(2));
  rows.push(row);
}
if (!json) {
  const head = [
    "product",
    "M×N×K",
    "op",
    "B",
    ...variants.map((v) => `${v} GF/s`),
    ...(threads > 1 ? [`${threads}T/1T`] : []),
    "native GF/s",
    `${variants[0]}/native`,
  ];
  const all = [head, ...rows];
  const w = head.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]) =>
    "| " + r.map((x, c) => (c < 4 ? x.padEnd(w[c]) : x.padStart(w[c]))).join(" | ") + " |";
  console.log(line(head));
  console.log("|" + w.map((x, c) => (c < 4 ? "-".repeat(x + 2) : "-".repeat(x + 1) + ":")).join("|") + "|");
  for (const r of rows) console.log(line(r));
  console.log(
    `\nmedian of ${runs} interleaved rounds, ${
      SECONDS * 1000
    } ms each; one thread; native = bench/native/gemm_ref.c (gcc -O3 -mavx -mfma, 128-bit); CPU: ${cpuModel()}`,
  );
  if (threads > 1) {
    const geo = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
    const proj = speedups.filter((x) => /^(x·Wᵀ|G·W) /.test(x.what)).map((x) => x.ratio);
    console.log(
      `${threadedName}: the ${fastest} threads build on a pool of ${threads} threads (split: ${split}); ` +
        `${threads}T/1T = its GF/s over ${fastest} on one thread, same rounds.\n` +
        `geometric mean ${threads}T/1T: projections (x·Wᵀ, G·W) ${geo(proj).toFixed(2)}×, ` +
        `all shapes ${geo(speedups.map((x) => x.ratio)).toFixed(2)}×; ` +
        `${navigator.hardwareConcurrency} hardware threads; ${discarded} samples set aside because other ` +
        `processes used > ${QUIET} cores meanwhile${starred.size ? `; * = no quiet sample` : ""}`,
    );
  }
}
