/**
 * What a memory budget buys: one MeSP training step (Qwen2.5-0.5B shapes, q4, LoRA rank 8 on all seven
 * targets, T = 256, fused SGD) under budgets from the smallest that fits to 1 GB, one line each, with the
 * schedule the budget chose (`src/engine/schedule.ts`), the step time, the whole-process peak and the speed
 * relative to the default schedule (no budget) measured in the same run. Every configuration also checks
 * that its parameters after the steps are bitwise the default's (the same gradients).
 *
 *   deno task make-model --preset qwen2.5-0.5b --out /tmp/m05 --format mlx-q4
 *   deno task bench:budget --model /tmp/m05 --threads 2 --steps 2
 *
 * Each configuration runs `train` in a fresh process (so its peak is its own) with a spill file, as the CLI
 * does by default (`--spill off`: everything in the arena): the default first and last (bracketing drift on a
 * shared machine), the budgets in between; step time is the median of `--steps` measured steps after one
 * warm-up step. `--help` lists the flags.
 */
import { Engine } from "../src/engine/engine.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { smallestSchedule } from "../src/engine/schedule.ts";
import { train } from "../src/run/train.ts";
import { createSpillFile } from "../src/io/deno_files.ts";
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import { formatMB, parseSize } from "../src/runtime/arena.ts";
import { processMemory } from "../src/runtime/memory.ts";
import { seededRandom } from "../src/util/random.ts";
import { cacheDir, runtimeBytes } from "../src/cli/common.ts";
import { cpuModel, cpuSeconds, median } from "./measure.ts";
import { benchArgs, CACHE_FLAG } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench:budget",
  program: "deno task",
  description: "one MeSP step under memory budgets, each configuration in a fresh process",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    budgets: {
      type: "list",
      default: ["min", "200MB", "300MB", "400MB", "600MB", "1GB"],
      description: "whole-process budgets (min: the smallest schedule that fits)",
    },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per step" },
    rank: { type: "integer", default: 8, min: 1, description: "LoRA rank" },
    threads: { type: "integer", default: 1, min: 1, description: "kernel threads" },
    steps: { type: "integer", default: 2, min: 1, description: "measured steps per configuration" },
    spill: {
      type: "string",
      choices: ["on", "off"],
      default: "on",
      description: "saved inputs and the adapter in a spill file, as the CLI's default (off: in the arena)",
    },
    cache: CACHE_FLAG,
    child: {
      type: "string",
      value: "BYTES|none",
      description: "(internal) run one configuration with this arena budget and print its result as JSON",
    },
  },
} as const satisfies CommandSpec;
const args = benchArgs(SPEC);
const { model, seqLen: T, rank, threads, steps } = args;
const cache = `${cacheDir(args.cache ?? "")}/packs`;

/** What one configuration's process reports. */
interface Result {
  budget: string;
  schedule: string;
  arena: number;
  ms: number[];
  /** CPU seconds of the process per measured step (all its threads): steadier than wall time under load. */
  cpu: number[];
  peak: number;
  params: string;
}

/** The child: one configuration, `--child BUDGET` (arena bytes, or "none"), through `train` as the CLI runs it. */
async function child(budget: number | undefined): Promise<Result> {
  const { pack } = await loadOrBuildPack(model, { format: "q4", cacheDir: cache });
  const random = seededRandom(1), V = Math.min(pack.config.vocabSize, 150000);
  const data = Array.from({ length: steps + 1 }, () => ({
    ids: Int32Array.from({ length: T }, () => Math.floor(random() * V)),
    targets: undefined,
  }));
  const dir = args.spill === "on" ? await Deno.makeTempDir({ prefix: "mesp-budget-" }) : undefined;
  const spill = dir === undefined ? undefined : createSpillFile(dir);
  const ms: number[] = [], cpu: number[] = [];
  let schedule = "", arena = 0, lastMs = 0, lastCpu = 0;
  try {
    const result = await train(pack, data, [], {
      seqLen: T,
      steps: steps + 1,
      seed: 7,
      lora: { rank },
      optimizer: { name: "sgd", lr: 1e-4 },
      threads,
      budget,
      spill,
      onEvent: (ev) => {
        if (ev.type === "plan") [schedule, arena] = [ev.schedule ?? "", ev.bytes];
        if (ev.type !== "step") return;
        const now = performance.now(), c = cpuSeconds().own;
        // the first step compiles the kernels and reads the pack cold: a warm-up, not measured
        if (ev.step > 1) ms.push(now - lastMs), cpu.push(c - lastCpu);
        [lastMs, lastCpu] = [now, c];
      },
    });
    // the peak before the parameters are gathered for the hash (17.6 MB for the 0.5B), which the CLI never does
    const peak = processMemory().peak ?? 0;
    // FNV-1a over the parameters' bits: equal hashes, equal updates, equal gradients
    const p = result.params, bits = new Uint32Array(p.buffer, p.byteOffset, p.length);
    let h = 0x811c9dc5;
    for (const b of bits) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    return {
      budget: budget === undefined ? "none" : String(budget),
      schedule: schedule + (spill ? "; spilled" : ""),
      arena,
      ms,
      cpu,
      peak,
      params: h.toString(16),
    };
  } finally {
    spill?.close();
    if (dir !== undefined) await Deno.remove(dir, { recursive: true });
  }
}

if (args.child !== undefined) {
  const b = args.child;
  console.log(JSON.stringify(await child(b === "none" ? undefined : Number(b))));
  Deno.exit(0);
}

// the smallest schedule's whole-process budget: its arena plus the runtime's estimate
const { pack } = await loadOrBuildPack(model, {
  format: "q4",
  cacheDir: cache,
  onStatus: (m) => console.error(m),
});
const runtime = runtimeBytes(threads);
const smallest = smallestSchedule(pack.config, {
  ...await Engine.planOptions(pack, {
    mode: "train",
    seqLen: T,
    lora: loraLayout(pack.config, { rank }),
    method: "mesp",
    optimizer: "sgd",
    threads,
  }),
  spill: args.spill === "on",
});
const budgets = args.budgets.map((b) =>
  b === "min" ? Math.ceil((smallest.arenaBytes + runtime) / 1e6) * 1e6 : parseSize(b)
);

async function measure(whole: number | undefined): Promise<Result> {
  const arena = whole === undefined ? "none" : String(whole - runtime);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--max-semi-space-size=1",
      new URL(import.meta.url).pathname,
      ...Deno.args,
      "--child",
      arena,
    ],
    // as `deno task train` runs (deno.json): one malloc arena, not one per thread
    env: { MALLOC_ARENA_MAX: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`configuration ${whole ?? "default"} failed`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!) as Result;
  const secs = (xs: number[], f: number) => xs.map((x) => (x / f).toFixed(2)).join(", ");
  console.error(
    `${whole === undefined ? "default" : formatMB(whole)}: wall ${secs(r.ms, 1000)} s, CPU ${
      secs(r.cpu, 1)
    } s`,
  );
  return r;
}

console.error(
  `model ${model}, T ${T}, rank ${rank}, ${threads} thread(s), MeSP, SGD fused; ${steps} measured step(s) ` +
    `after 1 warm-up per configuration; spill ${args.spill}; runtime estimate ${formatMB(runtime)}`,
);
const first = await measure(undefined);
const rows: { budget: number; r: Result }[] = [];
for (const b of budgets) rows.push({ budget: b, r: await measure(b) });
const last = await measure(undefined);
const base = median([...first.ms, ...last.ms]), baseCpu = median([...first.cpu, ...last.cpu]);
const table = [
  "| --max-memory | schedule | arena | peak (whole process) | step wall s | × default | step CPU s | × default (CPU) | same parameters |",
  "| -----------: | -------- | ----: | -------------------: | ----------: | --------: | ---------: | --------------: | :-------------: |",
  `| (none: default) | ${first.schedule} | ${formatMB(first.arena)} | ${
    formatMB(Math.max(first.peak, last.peak))
  } | ${(base / 1000).toFixed(2)} | 1.00 | ${baseCpu.toFixed(2)} | 1.00 | ${
    first.params === last.params ? "yes" : "NO"
  } |`,
];
for (const { budget, r } of rows) {
  const s = median(r.ms), c = median(r.cpu);
  table.push(
    `| ${formatMB(budget)} | ${r.schedule} | ${formatMB(r.arena)} | ${formatMB(r.peak)} | ${
      (s / 1000).toFixed(2)
    } | ${(base / s).toFixed(2)} | ${c.toFixed(2)} | ${(baseCpu / c).toFixed(2)} | ${
      r.params === first.params ? "yes" : "NO"
    } |`,
  );
}
console.log(table.join("\n"));
console.log(`\nCPU: ${cpuModel()}`);
