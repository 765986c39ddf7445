/**
 * Where the memory of a training run goes outside the arena, and what V8 settings and thread counts change
 * it: each variant trains in a fresh process (`bench/memory_probe.ts`, which runs `train` as `deno task
 * train` would), while this process polls `/proc` of the whole process tree (the trainer, its preparation
 * child) every 10 ms.
 *
 *   deno run --lock=deno.dev.lock -A bench/memory_breakdown.ts --model /tmp/m05              # every variant, 1 step each
 *   deno run --lock=deno.dev.lock -A bench/memory_breakdown.ts --model /tmp/m05 --variants default,threads1 --steps 2
 *
 * Columns (MB = 10⁶ bytes): the trainer's peak (VmHWM), the sum over the tree at its highest sample, the
 * preparation child's own peak; at the trainer's end: file-backed pages (Deno's code and read-only data
 * touched: RssFile), anonymous memory (arena, V8 heap, malloc, stacks: RssAnon at its highest); the V8 heap
 * and external buffers (`Deno.memoryUsage()` at their highest); the first step's seconds; and whether the
 * adapter written is byte-identical to the first variant's (every variant must leave the gradients alone).
 *
 * Flags: `--help` (the shared bench parser, `bench/args.ts`); `--model DIR` is an MLX q4 Qwen2.5 checkpoint,
 * e.g. `make-model --preset qwen2.5-0.5b --format mlx-q4`; the pack and token cache are built by the first
 * variant that needs them; `--variants` takes the names below.
 *
 * @module
 */
import { cpuModel, cpuSeconds } from "./measure.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

/** A way to run the same training: V8 flags and a thread count (undefined: the CLI's default). */
export interface Variant {
  name: string;
  v8: string[];
  threads?: number;
  /** Environment variables of the process (e.g. glibc malloc's). */
  env?: Record<string, string>;
  /** What it tries. */
  note: string;
}

/** `deno.json`'s train task today: `--max-semi-space-size=1`. */
const TASK = ["--max-semi-space-size=1"];

export const VARIANTS: Variant[] = [
  { name: "default", v8: TASK, note: "as `deno task train` runs (every core)" },
  { name: "threads1", v8: TASK, threads: 1, note: "--threads 1: no worker" },
  { name: "no-v8-flags", v8: [], threads: 1, note: "V8's own heap sizing" },
  {
    name: "single-threaded-gc",
    v8: [...TASK, "--single-threaded-gc"],
    threads: 1,
    note: "no GC helper threads",
  },
  { name: "single-threaded", v8: [...TASK, "--single-threaded"], threads: 1, note: "no V8 background tasks" },
  { name: "no-maglev", v8: [...TASK, "--no-maglev"], threads: 1, note: "JS: no mid-tier compiler" },
  {
    name: "no-maglev-sparkplug",
    v8: [...TASK, "--no-maglev", "--no-sparkplug"],
    threads: 1,
    note: "JS: interpreter and TurboFan only",
  },
  { name: "no-turbofan", v8: [...TASK, "--no-turbofan"], threads: 1, note: "JS: no optimizing compiler" },
  { name: "no-liftoff", v8: [...TASK, "--no-liftoff"], threads: 1, note: "wasm: TurboFan only" },
  { name: "no-liftoff-default", v8: [...TASK, "--no-liftoff"], note: "wasm: TurboFan only, every core" },
  {
    name: "malloc-arena-1",
    v8: TASK,
    threads: 1,
    env: { MALLOC_ARENA_MAX: "1" },
    note: "glibc malloc: one arena for every thread",
  },
  {
    name: "malloc-arena-1-default",
    v8: TASK,
    env: { MALLOC_ARENA_MAX: "1" },
    note: "glibc malloc: one arena, every core",
  },
  { name: "no-tier-up", v8: [...TASK, "--no-wasm-tier-up"], threads: 1, note: "wasm: Liftoff only" },
  {
    name: "lazy-wasm",
    v8: [...TASK, "--wasm-lazy-compilation"],
    threads: 1,
    note: "wasm: compile on first call",
  },
  {
    name: "optimize-for-size",
    v8: [...TASK, "--optimize-for-size"],
    threads: 1,
    note: "V8's memory-saving mode",
  },
  { name: "max-old-16", v8: [...TASK, "--max-old-space-size=16"], threads: 1, note: "a 16 MB old space" },
  {
    name: "no-flush",
    v8: [...TASK, "--no-flush-bytecode"],
    threads: 1,
    note: "keep bytecode (no code flushing)",
  },
];

export interface Row {
  variant: string;
  v8: string;
  threads: string;
  env: string;
  peak_mb: number;
  tree_mb: number;
  child_mb: number;
  file_mb: number;
  anon_mb: number;
  heap_mb: number;
  external_mb: number;
  step1_s: number;
  adapter: string;
  busy_cores: number;
  /** Resident MB by kind of mapping at the trainer's end (`mappings` in memory_probe.ts). */
  mappings: Record<string, number>;
}

const MAIN = new URL("./memory_probe.ts", import.meta.url).pathname;
/** Deno reads `/proc/self` only with every permission granted. */
const PERMS = ["-A"];

function statusMB(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const g = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024 / 1e6;
    return { rss: g("VmRSS"), hwm: g("VmHWM") };
  } catch {
    return undefined;
  }
}

/** Every descendant of `pid` (children of all its threads). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${p}/task`)].map((e) => e.name);
    } catch {
      return;
    }
    for (const t of tasks) {
      let kids = "";
      try {
        kids = Deno.readTextFileSync(`/proc/${p}/task/${t}/children`);
      } catch {
        continue;
      }
      for (const k of kids.trim().split(/\s+/).filter(Boolean).map(Number)) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

/** Trains with `v`, polling the process tree; returns the row. */
export async function measureVariant(v: Variant, trainArgs: string[]): Promise<Row> {
  const dir = await Deno.makeTempDir({ prefix: "mesp-membreak-" });
  const probe = `${dir}/probe.jsonl`;
  const v8 = v.v8.length ? [`--v8-flags=${v.v8.join(",")}`] : [];
  const threads = v.threads === undefined ? [] : ["--threads", String(v.threads)];
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMS, ...v8, MAIN, "train", ...trainArgs, ...threads, "--out", `${dir}/run`, "--json"],
    env: { ...v.env, MESP_MEMORY_PROBE: probe },
    stdout: "piped",
    stderr: "piped",
  });
  const busy0 = cpuSeconds().busy, t0 = performance.now();
  const child = cmd.spawn();
  let tree = 0, childPeak = 0, done = false;
  const status = child.output().finally(() => (done = true));
  while (!done) {
    let sum = statusMB(child.pid)?.rss ?? 0;
    for (const k of descendants(child.pid)) {
      const s = statusMB(k);
      if (!s) continue;
      sum += s.rss;
      childPeak = Math.max(childPeak, s.hwm);
    }
    tree = Math.max(tree, sum);
    await new Promise((r) => setTimeout(r, 10));
  }
  const out = await status;
  const wall = (performance.now() - t0) / 1000, busy = cpuSeconds().busy - busy0;
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`variant ${v.name} failed:\n${stderr}`);
  const peak = Number(/peak memory ([\d.]+) MB/.exec(stderr)?.[1] ?? NaN);
  const steps = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l)).filter((r) => r.step !== undefined);
  const samples = (await Deno.readTextFile(probe)).trim().split("\n").map((l) => JSON.parse(l));
  const max = samples.at(-1).max, last = samples.findLast((x: { file?: number }) => x.file !== undefined);
  const mappings = samples.find((x: { mappings?: unknown }) => x.mappings)?.mappings ?? {};
  const adapter = await sha256(`${dir}/run/adapter_model.safetensors`);
  await Deno.remove(dir, { recursive: true });
  return {
    variant: v.name,
    v8: v.v8.join(" ") || "(none)",
    env: Object.entries(v.env ?? {}).map(([k, x]) => `${k}=${x}`).join(" "),
    threads: v.threads === undefined ? "default" : String(v.threads),
    peak_mb: peak,
    tree_mb: +tree.toFixed(1),
    child_mb: +childPeak.toFixed(1),
    file_mb: +last.file.toFixed(1),
    anon_mb: +max.anon.toFixed(1),
    heap_mb: +max.heapTotal.toFixed(1),
    external_mb: +max.external.toFixed(1),
    step1_s: steps[0]?.elapsed_s ?? NaN,
    adapter,
    busy_cores: +(busy / wall).toFixed(2),
    mappings,
  };
}

/** 8 sequences of T random ids (deterministic), as pre-tokenized JSONL. */
async function ensureData(cache: string, T: number): Promise<string> {
  const path = `${cache}/data/membreak-${T}.jsonl`;
  try {
    await Deno.stat(path);
    return path;
  } catch {
    // make it
  }
  await Deno.mkdir(`${cache}/data`, { recursive: true });
  let x = 777 + T;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % 151000;
  };
  const lines = [];
  for (let i = 0; i < 8; i++) lines.push(JSON.stringify({ input_ids: Array.from({ length: T }, next) }));
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

function table(rows: Row[]): string {
  const head =
    "| variant | V8 flags | threads | peak | tree | prepare child | file pages | anon | V8 heap | " +
    "external | step 1 s | adapter |";
  const out = [head, "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |"];
  const ref = rows[0]?.adapter;
  for (const r of rows) {
    out.push(
      `| ${r.variant} | \`${r.v8}\` | ${r.threads} | ${r.peak_mb.toFixed(1)} | ${r.tree_mb.toFixed(1)} | ` +
        `${r.child_mb.toFixed(1)} | ${r.file_mb.toFixed(1)} | ${r.anon_mb.toFixed(1)} | ${
          r.heap_mb.toFixed(1)
        } | ` +
        `${r.external_mb.toFixed(1)} | ${r.step1_s.toFixed(1)} | ${r.adapter === ref ? "same" : "DIFFERS"} |`,
    );
  }
  return out.join("\n");
}

/** Resident MB by kind of mapping at the end of each variant's run. */
function mappingTable(rows: Row[]): string {
  const kinds = [...new Set(rows.flatMap((r) => Object.keys(r.mappings)))];
  const out = [`| kind of mapping | ${rows.map((r) => r.variant).join(" | ")} |`];
  out.push(`| --- | ${rows.map(() => "--:").join(" | ")} |`);
  for (const k of kinds) {
    out.push(`| ${k} | ${rows.map((r) => (r.mappings[k] ?? 0).toFixed(1)).join(" | ")} |`);
  }
  const sum = (r: Row) => Object.values(r.mappings).reduce((a, b) => a + b, 0);
  out.push(`| total | ${rows.map((r) => sum(r).toFixed(1)).join(" | ")} |`);
  return out.join("\n");
}

const SPEC = {
  name: "bench/memory_breakdown.ts",
  program: "deno run -A",
  description:
    "where a training run's memory goes outside the arena, per V8 flag / thread count / environment",
  flags: {
    model: {
      type: "string",
      value: "DIR",
      required: true,
      description: "MLX q4 Qwen2.5 checkpoint directory",
    },
    data: { type: "string", value: "FILE", description: "training data (default: 8 random sequences)" },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per step" },
    rank: { type: "integer", default: 8, min: 1, description: "LoRA rank" },
    steps: { type: "integer", default: 1, min: 1, description: "steps per variant" },
    cache: {
      type: "string",
      value: "DIR",
      description: "pack and token cache (default ~/.cache/mesp-membreak)",
    },
    firstRun: { type: "boolean", description: "also measure a run that builds the caches (a fresh --cache)" },
    variants: {
      type: "list",
      choices: VARIANTS.map((v) => v.name),
      description: "variants to run, in order (default: all)",
    },
    json: { type: "boolean", description: "one JSON line per variant instead of the tables" },
  },
} as const satisfies CommandSpec;

if (import.meta.main) {
  const args = benchArgs(SPEC);
  const cache = args.cache ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache/mesp-membreak`;
  const T = args.seqLen;
  const data = args.data ?? await ensureData(cache, T);
  const names = args.variants.length ? args.variants : VARIANTS.map((v) => v.name);
  const trainArgs = [
    "--model",
    args.model,
    "--data",
    data,
    "--cache-dir",
    cache,
    "--seq-len",
    String(T),
    "--rank",
    String(args.rank),
    "--targets",
    "all",
    "--optimizer",
    "sgd",
    "--lr",
    "1e-4",
    "--schedule",
    "constant",
    "--steps",
    String(args.steps),
  ];
  const rows: Row[] = [];
  // --first-run: a run that builds the pack and token cache first (a fresh --cache), reported last
  const first = args.firstRun
    ? await measureVariant({ ...VARIANTS[0], name: "first run (builds the caches)" }, trainArgs)
    : undefined;
  if (first) console.error(`first run: peak ${first.peak_mb} MB, tree ${first.tree_mb} MB`);
  for (const name of names) {
    const row = await measureVariant(VARIANTS.find((v) => v.name === name)!, trainArgs);
    rows.push(row);
    if (args.json) console.log(JSON.stringify(row));
    else console.error(`${name}: peak ${row.peak_mb} MB, tree ${row.tree_mb} MB, step 1 ${row.step1_s} s`);
  }
  if (!args.json) {
    console.log(table(first ? [...rows, first] : rows));
    console.log("\n" + mappingTable(rows));
  }
  console.log(`CPU: ${cpuModel()}; Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`);
}
