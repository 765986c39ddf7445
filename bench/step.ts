/**
 * Training-step benchmark: one MeSP step (forward with layer checkpoints, chunked loss, backward with the
 * forward recomputed, fused SGD update) on a real-shaped model, on 1 thread and on N threads in the same
 * run, with where the wall time goes.
 *
 *   deno task make-model --preset qwen2.5-0.5b --out /tmp/q05 --format mlx-q4
 *   deno task bench:step --model /tmp/q05 --threads 2
 *   deno task bench:step --model /tmp/q05 --threads 2 --resident   # also with all weights resident
 *
 * Flags: --weights q4 (pack format), --seq-len 256, --rank 8, --steps 3 (measured, median reported),
 * --warmup 1, --cache DIR (where the pack is built once; default: the CLI's cache), --split auto|rows|columns.
 *
 * Configurations are measured round-robin (one step of each in turn), so drift on a shared machine hits
 * all alike. Time is attributed at the kernel layer (the engine's GEMM dispatcher and kernel entry points,
 * `Profile` in src/runtime/pool.ts) and at the weight pack (reads), never inside the engine:
 *
 * - GEMM: linear layers (frozen weights), LoRA products, LM head chunks; with its GFLOP/s
 * - attention: q·kᵀ, P·V and their gradients (a head's width on N or K), causal softmax
 * - norms/elementwise: RMSNorm, RoPE, SwiGLU, embedding row decode, the optimizer update
 * - loss: the cross-entropy chunk kernels (their logits GEMMs count as GEMM)
 * - I/O wait: awaiting weights (attention blocks, MLP and vocabulary chunks not yet read ahead, single rows)
 * - host: everything else (JavaScript between kernels, copies of checkpoints)
 */
import { Engine } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { Optimizer } from "../src/engine/optimizer.ts";
import { initLora } from "../src/engine/lora_init.ts";
import { seededRandom } from "../src/util/random.ts";
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import type { Pack } from "../src/model/pack.ts";
import type { PackFormat } from "../src/model/pack_layout.ts";
import { formatMB } from "../src/runtime/arena.ts";
import { Profile } from "../src/runtime/pool.ts";
import { cacheDir } from "../src/cli/common.ts";
import type { CommandSpec } from "../src/cli/args.ts";
import { cpuModel, cpuSeconds, median, medianIndex } from "./measure.ts";
import { benchArgs, SPLIT_FLAG } from "./args.ts";

const SPEC = {
  name: "bench:step",
  program: "deno task",
  description: "one MeSP step on 1 and on N threads, with where the wall time goes",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    threads: { type: "integer", default: 2, min: 1, description: "threads of the pooled configuration" },
    steps: { type: "integer", default: 3, min: 1, description: "measured steps (median reported)" },
    warmup: { type: "integer", default: 1, min: 0, description: "steps run before measuring" },
    seqLen: { type: "integer", default: 256, min: 1, description: "tokens per sequence" },
    rank: { type: "integer", default: 8, min: 1, description: "LoRA rank" },
    weights: {
      type: "string",
      choices: ["q4", "q8", "bf16", "f16", "f32"],
      default: "q4",
      description: "pack format",
    },
    split: SPLIT_FLAG,
    resident: { type: "boolean", description: "also measure with every layer's weights resident" },
    cache: {
      type: "string",
      value: "DIR",
      description: "where the pack is built once (default: the CLI's cache)",
    },
  },
} as const satisfies CommandSpec;

const args = benchArgs(SPEC);
const { model, threads, steps, warmup, rank, split } = args;
const T = args.seqLen;
const format: PackFormat = args.weights;
const withResident = args.resident;

/** Wall time spent awaiting weights, added to by the wrapped loads. */
let ioMs = 0;
function timed<A extends unknown[], R>(f: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  return async (...a: A) => {
    const t0 = performance.now();
    try {
      return await f(...a);
    } finally {
      ioMs += performance.now() - t0;
    }
  };
}

/**
 * Times what the step waits for, not what is read: chunks are read ahead while the kernels compute, so the
 * wait is at the engine's loads (attention blocks, MLP and vocabulary chunks); single vocabulary rows
 * (token embeddings, target rows) are read when needed, so their reads are the wait.
 */
function timedPack(pack: Pack): Pack {
  const rows = pack.readVocabRows.bind(pack), timedRows = timed(rows);
  return {
    ...pack,
    readVocabRows: (r0, r1, into, head) => (r1 - r0 === 1 ? timedRows : rows)(r0, r1, into, head),
  };
}

function timedLoads(e: Engine): void {
  const w = e.weights;
  w.loadLayer = timed(w.loadLayer.bind(w));
  w.loadChunk = timed(w.loadChunk.bind(w));
  w.loadVocabChunk = timed(w.loadVocabChunk.bind(w));
}

const { pack: rawPack, path } = await loadOrBuildPack(model, {
  format,
  cacheDir: `${cacheDir(args.cache ?? "")}/packs`,
  onStatus: (m) => console.error(m),
});
const pack = timedPack(rawPack);
const cfg = pack.config;
const layout = loraLayout(cfg, { rank });
const random = seededRandom(1);
const ids = Int32Array.from({ length: T }, () => Math.floor(random() * Math.min(cfg.vocabSize, 150000)));

interface Config {
  name: string;
  threads: number;
  resident: boolean;
  e: Engine;
  profile: Profile;
  run: () => Promise<number>;
  walls: number[];
  /** Per measured step: ms by category. */
  parts: Map<string, number>[];
  flops: number[];
  /** Per measured step: cores used by other processes on average. */
  others: number[];
  /** Per measured step: kernel calls, and those split across the pool. */
  calls: number[];
  splits: number[];
}

async function makeConfig(n: number, resident: boolean): Promise<Config> {
  const profile = new Profile();
  const e = await Engine.create(pack, {
    mode: "train",
    seqLen: T,
    lora: layout,
    method: "mesp",
    optimizer: "sgd",
    resident,
    threads: n,
    poolOptions: { split },
    profile,
  });
  if (n > 1 && e.kernels.pool?.threads !== n) throw new Error(`could not start a pool of ${n} threads`);
  timedLoads(e);
  // GEMM category from where its B operand lives
  // frozen weights by where B lives; attention by shape (a head's width on N or K, no LoRA rank)
  const weights = e.arena.plan.regions.filter((r) => r.name.startsWith("weights."));
  const hd = cfg.headDim;
  profile.classifyGemm = (_op, m, n, k, b) => {
    const w = weights.find((r) => b.ptr >= r.offset && b.ptr < r.offset + r.bytes);
    if (w) return w.name === "weights.vocab" ? "gemm.lmhead" : "gemm.linear";
    if ((n === hd || k === hd) && m !== rank && n !== rank && k !== rank) return "attention";
    return "gemm.lora";
  };
  initLora(layout, e.arena.f32("lora.params"), 7);
  const opt = new Optimizer(e.k, { name: "sgd", lr: 1e-4 }, e.p["lora.params"]);
  const grad = e.p["lora.grad"], layerN = layout.layerElements;
  const bw = new Backward(e, { ptr: grad, perLayer: true, accumulate: false });
  let step = 0;
  const run = async () => {
    const r = await forwardBackward(
      e,
      bw,
      ids,
      undefined,
      T,
      (l) => opt.update(l * layerN, layerN, grad, step),
    );
    step++;
    return r.loss;
  };
  const name = `${n} thread${n > 1 ? "s" : ""}${resident ? ", resident" : ""}`;
  return {
    name,
    threads: n,
    resident,
    e,
    profile,
    run,
    walls: [],
    parts: [],
    flops: [],
    others: [],
    calls: [],
    splits: [],
  };
}

const configs: Config[] = [];
for (const resident of withResident ? [false, true] : [false]) {
  for (const n of threads > 1 ? [1, threads] : [1]) configs.push(await makeConfig(n, resident));
}
console.error(
  `model ${model} (${cfg.numLayers} layers, d ${cfg.hiddenSize}), pack ${path}\n` +
    `T ${T}, LoRA rank ${rank} on ${layout.targets.join(",")}, MeSP, SGD fused; ` +
    `${warmup} warm-up + ${steps} measured steps per configuration, round-robin`,
);

const losses = new Map<string, number[]>();
// a step during which other processes used more than QUIET cores is kept but not counted: the configuration
// runs again (up to 3× the steps), and the report uses its quiet steps (marked * when it had none)
const QUIET = 0.1;
const quietSteps = (c: Config) => c.others.filter((o) => o <= QUIET).length;
for (let s = 0; s < warmup + 3 * steps && configs.some((c) => quietSteps(c) < steps); s++) {
  for (const c of configs) {
    if (s >= warmup && quietSteps(c) >= steps) continue;
    c.profile.reset();
    ioMs = 0;
    const posted = c.e.kernels.pool?.posted ?? 0;
    const cpu0 = cpuSeconds(), t0 = performance.now();
    const loss = await c.run();
    const wall = performance.now() - t0, cpu1 = cpuSeconds();
    const other = (cpu1.busy - cpu0.busy - (cpu1.own - cpu0.own)) / (wall / 1000);
    losses.set(c.name, [...(losses.get(c.name) ?? []), loss]);
    await Deno.stderr.write(
      new TextEncoder().encode(
        `step ${s + 1} ${c.name}: ${(wall / 1000).toFixed(2)} s, other processes ${other.toFixed(2)} cores\n`,
      ),
    );
    if (s < warmup) continue;
    const parts = new Map<string, number>();
    let flops = 0, calls = 0;
    for (const [cat, v] of c.profile.entries) {
      parts.set(cat, v.ms);
      calls += v.calls;
      if (cat.startsWith("gemm")) flops += v.flops;
    }
    c.calls.push(calls);
    c.splits.push((c.e.kernels.pool?.posted ?? 0) - posted);
    parts.set("io", ioMs);
    c.walls.push(wall);
    c.parts.push(parts);
    c.flops.push(flops);
    c.others.push(other);
  }
}
for (const c of configs) c.e.close();

// keep the quiet steps of each configuration (all of them if none was quiet)
const starred = new Set<Config>();
for (const c of configs) {
  const keep = c.others.map((o) => o <= QUIET);
  if (!keep.some(Boolean)) {
    starred.add(c);
    continue;
  }
  for (const xs of [c.walls, c.parts, c.flops, c.others, c.calls, c.splits] as unknown[][]) {
    xs.splice(0, xs.length, ...xs.filter((_, i) => keep[i]));
  }
}

// the same loss for every configuration: a quick check that threads change nothing
const ref = losses.get(configs[0].name)!;
for (const c of configs) {
  const ls = losses.get(c.name)!;
  if (!ls.every((x, i) => i >= ref.length || Object.is(x, ref[i]))) {
    console.log(`WARNING: ${c.name} losses differ: ${ls} vs ${ref}`);
  }
}

const table = (head: string[], rows: string[][]) => {
  const w = head.map((_, i) => Math.max(...[head, ...rows].map((r) => r[i].length)));
  const line = (r: string[]) =>
    "| " + r.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join(" | ") + " |";
  return [
    line(head),
    "|" + w.map((x, i) => (i === 0 ? "-".repeat(x + 2) : "-".repeat(x + 1) + ":")).join("|") + "|",
  ]
    .concat(rows.map(line)).join("\n");
};

const base = configs[0];
console.log(table(
  [
    "configuration",
    "step s (median)",
    "min s",
    "tokens/s",
    "× 1 thread",
    "arena",
    "gemm.scratch",
    "kernel calls (split)",
    "others' cores",
  ],
  configs.map((c) => {
    const m = median(c.walls);
    const ref = configs.find((x) => x.threads === 1 && x.resident === c.resident) ?? base;
    return [
      `${c.name}${starred.has(c) ? " *" : ""}`,
      (m / 1000).toFixed(2),
      (Math.min(...c.walls) / 1000).toFixed(2),
      ((T - 1) / (m / 1000)).toFixed(1),
      (median(ref.walls) / m).toFixed(2),
      formatMB(c.e.arena.plan.bytes),
      formatMB(c.e.arena.region("gemm.scratch").bytes),
      `${median(c.calls)} (${median(c.splits)})`,
      `${Math.max(...c.others).toFixed(2)} (${c.walls.length} steps)`,
    ];
  }),
));
console.log();

// the breakdown of the median step of each configuration
const CATS: [string, (k: string) => boolean][] = [
  ["GEMM: linear layers", (k) => k === "gemm.linear"],
  ["GEMM: LoRA", (k) => k === "gemm.lora"],
  ["GEMM: LM head", (k) => k === "gemm.lmhead"],
  ["attention (GEMMs + softmax)", (k) => k === "attention" || k === "softmax"],
  ["norms/elementwise", (k) => k === "norm" || k === "elementwise"],
  ["loss (CE kernels)", (k) => k === "loss"],
  ["I/O wait", (k) => k === "io"],
];
const rows: string[][] = [];
const medianStep = configs.map((c) => {
  const i = medianIndex(c.walls);
  return { wall: c.walls[i], parts: c.parts[i], flops: c.flops[i] };
});
for (const [label, match] of CATS) {
  const row = [label];
  for (const m of medianStep) {
    let ms = 0;
    for (const [k, v] of m.parts) if (match(k)) ms += v;
    row.push(`${(ms / 1000).toFixed(2)} s`, `${((100 * ms) / m.wall).toFixed(1)} %`);
  }
  rows.push(row);
}
{
  const row = ["host (rest)"];
  for (const m of medianStep) {
    let ms = 0;
    for (const v of m.parts.values()) ms += v;
    row.push(`${((m.wall - ms) / 1000).toFixed(2)} s`, `${((100 * (m.wall - ms)) / m.wall).toFixed(1)} %`);
  }
  rows.push(row);
  const rate = ["GEMM GFLOP/s (in the step)"];
  for (const m of medianStep) {
    let ms = 0;
    for (const [k, v] of m.parts) if (k.startsWith("gemm")) ms += v;
    rate.push((m.flops / (ms / 1000) / 1e9).toFixed(1), "");
  }
  rows.push(rate);
  rows.push(["wall", ...medianStep.flatMap((m) => [`${(m.wall / 1000).toFixed(2)} s`, "100 %"])]);
}
console.log(table(["where the time goes (median step)", ...configs.flatMap((c) => [c.name, "%"])], rows));
console.log(
  `\nT ${T}, rank ${rank}, ${format}, ${cfg.numLayers} layers; loss ${ref.at(-1)?.toFixed(4)}; ` +
    `${navigator.hardwareConcurrency} hardware threads; steps during which other processes used more than ` +
    `${QUIET} cores are left out${starred.size ? " (* = no quiet step: all shown)" : ""}; CPU: ${cpuModel()}`,
);
