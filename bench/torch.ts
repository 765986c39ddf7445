/**
 * mesp beside PyTorch on the same machine, in the same run: CPU autograd LoRA (`bench/torch_lora.py`,
 * Debian's `python3-torch`, fp32 base weights: torch has no 4-bit CPU matmul) against `mesp train` (MeSP,
 * exact gradients, MLX 4-bit base weights streamed from the pack), both on Qwen2.5 shapes with LoRA rank 8 on
 * all seven targets, T = 256, batch 1, SGD, fp32 arithmetic, the same thread count. The two alternate round
 * by round, so drift on a shared machine hits both.
 *
 *   deno task make-model --preset qwen2.5-0.5b --out /tmp/m05 --format mlx-q4
 *   deno task bench:torch --model /tmp/m05                       # threads: every core; 2 rounds; 3 steps each
 *   deno task bench:torch --model /tmp/m05 --threads 1 --rounds 3 --steps 4
 *   deno task bench:torch --model /tmp/m05 --budget 280MB   # also mesp with --max-memory 280MB
 *
 * `--budget SIZE` adds a third contestant to every round: mesp with `--max-memory SIZE`, the fastest exact
 * schedule that fits that whole-process budget (README, "A budget that buys speed"). `--tab-budget SIZE` adds
 * mesp in a headless Chromium tab (`bench/tab_train.ts`: `dist/mesp.js`, cross-origin isolated, the same
 * threads, no DevTools client, the pack fetched from 127.0.0.1 into OPFS in its first step) with `train`'s
 * `budget` SIZE (arena bytes), the same options and data as the CLI (its losses must equal the CLI's);
 * its memory is the tab's renderer process (VmHWM), Chromium's other processes not counted.
 *
 * Printed: seconds per step (median over the steps after each process's first, over all rounds), trained
 * tokens per second (T − 1 predicted tokens per step), whole-process peak memory (VmHWM) and the ratios;
 * with `--threads 1` also CPU seconds per step of each (the work itself, on a machine others share). mesp
 * runs as `deno task train` does (`MALLOC_ARENA_MAX=1`), through `bench/memory_probe.ts` for its CPU times.
 * `--python PATH` picks the interpreter (default /usr/bin/python3, where apt installs torch); PyTorch's
 * matmuls run on the BLAS that Debian's alternatives select (`libopenblas0-pthread` installed: OpenBLAS;
 * otherwise the reference BLAS, ~50× slower), named in the output.
 *
 * @module
 */
import { cpuModel, median } from "./measure.ts";
import { tabTrain } from "./tab_train.ts";
import { parseSize } from "../src/runtime/arena.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench:torch",
  program: "deno task",
  description: "mesp beside PyTorch CPU autograd LoRA on the same shapes: tokens/s and peak memory",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    threads: { type: "integer", min: 1, description: "threads of both (default: the cores)" },
    rounds: { type: "integer", default: 2, min: 1, description: "alternating rounds" },
    steps: { type: "integer", default: 3, min: 1, description: "steps per round" },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per step" },
    preset: { type: "string", default: "qwen2.5-0.5b", description: "the make-model preset of --model" },
    python: { type: "string", value: "FILE", default: "/usr/bin/python3", description: "Python with torch" },
    budget: { type: "string", value: "SIZE", description: "also run mesp with --max-memory SIZE" },
    tabBudget: {
      type: "string",
      value: "SIZE",
      description: "also run mesp in a Chromium tab with train's budget SIZE (arena bytes)",
    },
    cache: {
      type: "string",
      value: "DIR",
      description: "where packs and data go (default ~/.cache/mesp-bench-torch)",
    },
  },
} as const satisfies CommandSpec;
const { model, rounds, steps, seqLen: T, preset, python, budget, tabBudget, ...flags } = benchArgs(SPEC);
const threads = flags.threads ?? navigator.hardwareConcurrency;
// a bad SIZE stops here, naming the flag, not after a whole mesp run
for (const [flag, size] of [["--budget", budget], ["--tab-budget", tabBudget]]) {
  if (size === undefined) continue;
  try {
    parseSize(size);
  } catch (err) {
    console.error(`${flag}: ${(err as Error).message}`);
    Deno.exit(2);
  }
}
const cache = flags.cache ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache/mesp-bench-torch`;
const here = (p: string) => new URL(p, import.meta.url).pathname;
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** T random ids per line (deterministic), 8 lines. */
async function data(): Promise<string> {
  const path = `${cache}/random-${T}.jsonl`;
  await Deno.mkdir(cache, { recursive: true });
  let x = 4242 + T;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % 151000;
  };
  const lines = Array.from(
    { length: 8 },
    () => JSON.stringify({ input_ids: Array.from({ length: T }, next) }),
  );
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** A mesp run: seconds and CPU seconds per step, the whole-process peak, its losses and the pack it read. */
interface MespRun {
  step_s: number[];
  step_cpu_s: number[];
  peak_mb: number;
  losses: number[];
  pack: string;
}

async function mesp(dataPath: string, maxMemory?: string): Promise<MespRun> {
  const out = await Deno.makeTempDir({ prefix: "mesp-bench-torch-" });
  try {
    const o = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--max-semi-space-size=1",
        here("memory_probe.ts"),
        "train",
        "--model",
        model,
        "--data",
        dataPath,
        "--cache-dir",
        cache,
        "--seq-len",
        String(T),
        "--rank",
        "8",
        "--targets",
        "all",
        "--optimizer",
        "sgd",
        "--lr",
        "1e-4",
        "--schedule",
        "constant",
        "--steps",
        String(steps),
        "--threads",
        String(threads),
        "--out",
        `${out}/run`,
        "--json",
        ...(maxMemory ? ["--max-memory", maxMemory] : []),
      ],
      env: { MALLOC_ARENA_MAX: "1", MESP_MEMORY_PROBE: `${out}/probe.jsonl` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = decode(o.stderr);
    if (!o.success) throw new Error(`mesp train failed:\n${err}`);
    const events = decode(o.stdout).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .filter((r) => r.elapsed_s !== undefined);
    const el = events.map((r) => r.elapsed_s as number);
    const cpu = (await Deno.readTextFile(`${out}/probe.jsonl`)).trim().split("\n").map((l) => JSON.parse(l))
      .filter((r) => r.label?.startsWith("stdout")).map((r) => r.cpu as number);
    return {
      step_s: el.map((t, i) => t - (i ? el[i - 1] : 0)),
      // the main thread's CPU time per step: the whole step's work with one thread (not with more)
      step_cpu_s: cpu.map((t, i) => t - (i ? cpu[i - 1] : 0)),
      peak_mb: Number(/peak memory ([\d.]+) MB/.exec(err)?.[1] ?? NaN),
      losses: events.map((r) => r.loss as number),
      pack: /weight pack (\S+\.pack)/.exec(err)?.[1] ?? "",
    };
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
}

async function torch(): Promise<
  { step_s: number[]; step_cpu_s: number[]; peak_mb: number; torch: string; weights_mb: number }
> {
  const n = String(threads);
  const o = await new Deno.Command(python, {
    args: [
      here("torch_lora.py"),
      "--preset",
      preset,
      "--threads",
      n,
      "--steps",
      String(steps),
      "--seq-len",
      String(T),
      "--rank",
      "8",
    ],
    env: { OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!o.success) throw new Error(`torch_lora.py failed:\n${decode(o.stderr)}`);
  return JSON.parse(decode(o.stdout).trim().split("\n").at(-1)!);
}

function blas(): string {
  try {
    return Deno.realPathSync("/usr/lib/x86_64-linux-gnu/libblas.so.3");
  } catch {
    return "unknown";
  }
}

const dataPath = await data();
type Tally = { steps: number[]; cpu: number[]; peaks: number[] };
const tally = (): Tally => ({ steps: [], cpu: [], peaks: [] });
const m = tally(), b = tally(), t = { ...tally(), torch: "", weights: 0 }, tab = { ...tally(), arena: 0 };
const add = (to: Tally, x: { step_s: number[]; step_cpu_s?: number[]; peak_mb: number }, label: string) => {
  to.steps.push(...x.step_s.slice(1));
  to.cpu.push(...(x.step_cpu_s ?? []).slice(1));
  to.peaks.push(x.peak_mb);
  console.error(`${label}: ${x.step_s.map((s) => s.toFixed(1)).join(", ")} s; ${x.peak_mb.toFixed(1)} MB`);
};
/** The CLI's first run: its pack and losses, which the tab reads and must reproduce. */
let cli: MespRun | undefined;
// the tab last: it reads the pack the CLI's first run built
const contestants = ["mesp", ...(budget ? ["budget"] : []), "torch", ...(tabBudget ? ["tab"] : [])];
for (let r = 0; r < rounds; r++) {
  // odd rounds run in reverse order, so drift on a shared machine hits every contestant alike
  for (const which of r % 2 ? [...contestants].reverse() : contestants) {
    if (which === "mesp") {
      const x = await mesp(dataPath);
      cli ??= x;
      add(m, x, `round ${r + 1} mesp`);
    } else if (which === "budget") {
      add(b, await mesp(dataPath, budget), `round ${r + 1} mesp --max-memory ${budget}`);
    } else if (which === "tab") {
      const x = await tabTrain({
        pack: cli!.pack,
        data: dataPath,
        options: {
          seqLen: T,
          steps,
          threads,
          budget: parseSize(tabBudget!),
          lora: { rank: 8, alpha: 16 },
          optimizer: { name: "sgd", lr: 1e-4, schedule: "constant" },
        },
      });
      const losses = x.losses.map((l) => +l.toFixed(5));
      if (losses.join() !== cli!.losses.join()) {
        throw new Error(
          `the tab's losses ${losses.join(" ")} differ from the CLI's ${cli!.losses.join(" ")}`,
        );
      }
      add(
        tab,
        x,
        `round ${r + 1} tab (arena ${x.arenaMB.toFixed(1)} MB, idle tab ${x.idle_mb.toFixed(1)} MB)`,
      );
      tab.arena = x.arenaMB;
    } else {
      const x = await torch();
      add(t, x, `round ${r + 1} torch`);
      t.torch = x.torch;
      t.weights = x.weights_mb;
    }
  }
}
const ts = median(t.steps), tp = Math.max(...t.peaks), tc = median(t.cpu);
console.log(`| ${preset}, T ${T}, rank 8, 7 targets, ${threads} thread(s) | s/step | tokens/s | peak MB |`);
console.log("| --- | --: | --: | --: |");
const rows: [string, Tally][] = [["mesp (MeSP, q4 base streamed)", m]];
if (budget) rows.push([`mesp --max-memory ${budget}`, b]);
if (tabBudget) {
  rows.push([
    `mesp in a Chromium tab, budget ${tabBudget} (arena ${tab.arena.toFixed(1)} MB; tab's peak)`,
    tab,
  ]);
}
for (const [name, x] of rows) {
  const s = median(x.steps), p = Math.max(...x.peaks);
  console.log(`| ${name} | ${s.toFixed(2)} | ${((T - 1) / s).toFixed(1)} | ${p.toFixed(1)} |`);
}
console.log(
  `| PyTorch ${t.torch} autograd (fp32 base, ${t.weights.toFixed(0)} MB of it) | ${ts.toFixed(2)} | ` +
    `${((T - 1) / ts).toFixed(1)} | ${tp.toFixed(1)} |`,
);
for (const [name, x] of rows) {
  const s = median(x.steps), p = Math.max(...x.peaks);
  console.log(
    `| ${name} / PyTorch | ${(s / ts).toFixed(2)} | ${(ts / s).toFixed(2)}× | ${(p / tp).toFixed(3)} (1/${
      (tp / p).toFixed(1)
    }) |`,
  );
}
if (threads === 1) {
  for (const [name, x] of rows.filter(([, x]) => x.cpu.length)) {
    const c = median(x.cpu);
    console.log(
      `\nCPU seconds per step (one thread: the work itself, whatever else ran on the machine): ${name} ` +
        `${c.toFixed(2)}, PyTorch ${tc.toFixed(2)}: ${(tc / c).toFixed(2)}× PyTorch's tokens per CPU-second`,
    );
  }
}
console.log(
  `\n${rounds} alternating rounds of ${steps} steps each (first step of each process dropped: ` +
    `${[m, ...(budget ? [b] : []), t, ...(tabBudget ? [tab] : [])].map((x) => x.steps.length).join(" / ")} ` +
    `steps); BLAS: ${blas()}; ` +
    `CPU: ${cpuModel()}`,
);
