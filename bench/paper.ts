/**
 * The MeSP paper's comparison (arXiv 2602.13069, Tables 1–3), reproduced with mesp's engine: whole-process
 * peak memory and seconds per step of MeBP, MeSP and MeZO for Qwen2.5 0.5B/1.5B/3B shapes (random weights,
 * MLX 4-bit base, made once with `make-model`), LoRA on all seven targets, batch 1, SGD lr 1e-4.
 *
 *   deno task bench:paper --quick          # 0.5B, T = 256, r = 8, the three methods (a few minutes)
 *   deno task bench:paper                  # 0.5B by sequence 128…1024 and rank 4…32; 1.5B/3B at T 256, r 8
 *   deno task bench:paper --models 0.5b --steps 3 --json --results runs/paper.jsonl
 *
 * Every configuration trains in a FRESH process (`deno task train --json`, so with the task's runtime
 * flags): its peak is the last stderr line (`peak memory N MB (whole process, VmHWM)`) and its time per step
 * the median of the `elapsed_s` differences after one warm-up step. Beside it, `plan --json` gives the predicted peak (arena +
 * runtime estimate). Preparation (packing, tokenizing) runs once per model and length before timing.
 *
 * Flags: --quick, --models 0.5b,1.5b,3b, --methods mebp,mesp,mezo, --steps N (default 3: 1 warm-up + 2
 * measured), --threads N (kernel threads, default 1: each worker adds its own memory), --json (JSON lines on stdout, tables
 * on stderr), --cache-dir DIR (models, packs, datasets; default $MESP_CACHE or $TMPDIR/mesp-bench-cache),
 * --results FILE (results are appended as they finish; configurations already in it are not run again).
 *
 * @module
 */
import type { CommandSpec } from "../src/cli/args.ts";
import { benchArgs } from "./args.ts";
import { exists } from "../src/io/deno_files.ts";
import { prepare } from "../src/cli/prepare.ts";
import { busyCores, median } from "./measure.ts";

/** The repository root: commands run as `deno task <command>` there, with the tasks' runtime flags. */
const ROOT = new URL("..", import.meta.url).pathname;

const SPEC = {
  name: "bench:paper",
  program: "deno task",
  description: "peak memory and time per step of MeBP / MeSP / MeZO beside the MeSP paper's Tables 1–3",
  flags: {
    quick: { type: "boolean", description: "only 0.5B, T = 256, r = 8 (a few minutes)" },
    models: {
      type: "list",
      choices: ["0.5b", "1.5b", "3b"],
      default: ["0.5b", "1.5b", "3b"],
      description: "model sizes",
    },
    methods: {
      type: "list",
      choices: ["mebp", "mesp", "mezo"],
      default: ["mebp", "mesp", "mezo"],
      description: "methods",
    },
    steps: { type: "integer", default: 3, min: 2, description: "steps per run (the first is warm-up)" },
    threads: { type: "integer", min: 1, default: 1, description: "kernel threads of every run" },
    json: { type: "boolean", description: "JSON lines on stdout (tables go to stderr)" },
    cacheDir: { type: "string", value: "DIR", description: "models, packs, datasets (not ~/.cache)" },
    results: {
      type: "string",
      value: "FILE",
      description: "append results here; configurations already in it are reused, not rerun",
    },
  },
} as const satisfies CommandSpec;

type Method = "mebp" | "mesp" | "mezo";

/** One measured configuration. */
interface Row {
  model: string;
  method: Method;
  seq: number;
  rank: number;
  peak_mb: number;
  step_s: number;
  /** Predicted whole-process peak of `plan` (arena + runtime estimate), MB. */
  plan_mb: number;
  arena_mb: number;
  steps: number;
  threads: number;
  /**
   * Average busy cores of the whole machine while the run trained (>≈ threads + 0.3: shared machine), from
   * the 1-minute load average at its start and end (`busyCores`): runnable and waiting tasks, not cores,
   * sampled every 5 s and weighted toward the run's end, so rough for runs shorter than a minute.
   */
  busy_cores: number;
  /** The code measured: git commit, "+dirty" with uncommitted changes to src/, asm/ or wasm/. */
  commit: string;
}

const PAPER = {
  byModel: {
    "0.5b": { mebp: 360.8, mesp: 136.2, goal: 100 },
    "1.5b": { mebp: 516.2, mesp: 262.6, goal: 150 },
    "3b": { mebp: 637.6, mesp: 368.4, goal: 200 },
  } as Record<string, { mebp: number; mesp: number; goal: number }>,
  bySeq: {
    128: { mebp: 252.7, mesp: 110.7 },
    256: { mebp: 360.8, mesp: 136.2 },
    512: { mebp: 582.4, mesp: 245.8 },
    1024: { mebp: 1050.3, mesp: 513.6 },
  } as Record<number, { mebp: number; mesp: number }>,
  byRank: {
    4: { mebp: 355.2, mesp: 132.8 },
    8: { mebp: 360.8, mesp: 136.2 },
    16: { mebp: 372.4, mesp: 143.5 },
    32: { mebp: 395.8, mesp: 158.2 },
  } as Record<number, { mebp: number; mesp: number }>,
};

const SEQS = [128, 256, 512, 1024];
const RANKS = [4, 8, 16, 32];

function log(m: string): void {
  console.error(m);
}

function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Runs `deno task <command> ...args` in the repository (so the run gets the task's flags, e.g. V8's), and
 * throws with the last stderr lines on failure.
 */
async function mesp(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", ...args],
    cwd: ROOT,
    // the paths given here mean the repository, not where this bench was typed (`deno task` keeps an
    // inherited INIT_CWD, which the CLI follows)
    env: { INIT_CWD: decodeURIComponent(ROOT) },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
  if (!out.success) {
    throw new Error(`mesp ${args.join(" ")} failed:\n${stderr.trim().split("\n").slice(-5).join("\n")}`);
  }
  return { stdout, stderr };
}

/** The random MLX-q4 model of a preset, made once into the cache (a marker file says it is complete). */
async function ensureModel(cache: string, size: string): Promise<string> {
  const preset = `qwen2.5-${size}`;
  const dir = `${cache}/models/${preset}`;
  const marker = `${dir}/.bench-made`;
  if (await exists(marker)) return dir;
  log(`making ${preset} (random weights, mlx-q4) in ${dir} …`);
  await mesp(["make-model", "--preset", preset, "--format", "mlx-q4", "--out", dir, "--force"]);
  await Deno.writeTextFile(marker, `${preset} mlx-q4 seed 0\n`);
  return dir;
}

/** 16 sequences of exactly T random token ids (deterministic), as pre-tokenized JSONL. */
async function ensureData(cache: string, T: number): Promise<string> {
  const path = `${cache}/data/random-${T}.jsonl`;
  if (await exists(path)) return path;
  await Deno.mkdir(`${cache}/data`, { recursive: true });
  let x = 12345 + T;
  const next = () => {
    // xorshift32: any fixed ids will do, they only have to be valid (< 151000)
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % 151000;
  };
  const lines = [];
  for (let i = 0; i < 16; i++) lines.push(JSON.stringify({ input_ids: Array.from({ length: T }, next) }));
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/**
 * The commit of the code being measured (read-only git queries); outside a git checkout (e.g. a snapshot
 * made with `git archive`), the first line of a `.code-version` file at the root, else "unknown".
 */
async function codeVersion(): Promise<string> {
  const root = new URL("..", import.meta.url).pathname;
  const fallback = async () => {
    try {
      return (await Deno.readTextFile(`${root}.code-version`)).split("\n")[0].trim() || "unknown";
    } catch {
      return "unknown";
    }
  };
  const git = async (...a: string[]) => {
    const out = await new Deno.Command("git", { args: ["-C", root, ...a], stdout: "piped", stderr: "null" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  };
  try {
    const head = await git("rev-parse", "--short", "HEAD");
    if (!head) return await fallback();
    const dirty = await git("status", "--porcelain", "--", "src", "asm", "wasm");
    return dirty ? `${head}+dirty` : head;
  } catch {
    return await fallback();
  }
}

interface Config {
  size: string;
  method: Method;
  seq: number;
  rank: number;
}

function trainFlags(c: Config, model: string, cache: string, threads: number): string[] {
  return [
    "--threads",
    String(threads),
    "--model",
    model,
    "--cache-dir",
    cache,
    "--weights",
    "q4",
    "--method",
    c.method,
    "--seq-len",
    String(c.seq),
    "--rank",
    String(c.rank),
    "--targets",
    "all",
    "--optimizer",
    "sgd",
  ];
}

/** Trains one configuration in a fresh process and asks `plan` for its prediction. */
async function measure(
  c: Config,
  o: { cache: string; steps: number; threads: number; commit: string },
): Promise<Row> {
  const model = await ensureModel(o.cache, c.size);
  const data = await ensureData(o.cache, c.seq);
  const planOut = await mesp(["plan", ...trainFlags(c, model, o.cache, o.threads), "--json"]);
  const plan = JSON.parse(planOut.stdout) as { arena_bytes: number; predicted_peak_bytes: number };
  const out = await Deno.makeTempDir({ prefix: "mesp-bench-run-" });
  const load0 = Deno.loadavg()[0], t0 = performance.now();
  let res;
  try {
    res = await mesp([
      "train",
      ...trainFlags(c, model, o.cache, o.threads),
      "--data",
      data,
      "--lr",
      "1e-4",
      "--schedule",
      "constant",
      "--steps",
      String(o.steps),
      "--json",
      "--out",
      out,
      "--force",
    ]);
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
  const wall = (performance.now() - t0) / 1000, busy = busyCores(load0, Deno.loadavg()[0], wall);
  const steps = res.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .filter((r) => r.step !== undefined && r.elapsed_s !== undefined) as {
      step: number;
      elapsed_s: number;
    }[];
  if (steps.length < 2) throw new Error(`train printed ${steps.length} step lines (need ≥ 2)`);
  const diffs = steps.slice(1).map((s, i) => s.elapsed_s - steps[i].elapsed_s);
  const last = res.stderr.trim().split("\n").at(-1) ?? "";
  const m = /peak memory ([\d.]+) MB/.exec(last);
  if (!m) throw new Error(`no peak memory line at the end of train's stderr: ${JSON.stringify(last)}`);
  return {
    model: `qwen2.5-${c.size}`,
    method: c.method,
    seq: c.seq,
    rank: c.rank,
    peak_mb: Number(m[1]),
    step_s: +median(diffs).toFixed(2),
    plan_mb: +(plan.predicted_peak_bytes / 1e6).toFixed(1),
    arena_mb: +(plan.arena_bytes / 1e6).toFixed(1),
    steps: o.steps,
    threads: o.threads,
    busy_cores: +busy.toFixed(2),
    commit: o.commit,
  };
}

/** The configurations of a run, methods of one configuration adjacent (drift hits them alike). */
function configs(sizes: string[], methods: Method[], quick: boolean): Config[] {
  const shapes: { size: string; seq: number; rank: number }[] = [];
  for (const size of sizes) {
    shapes.push({ size, seq: 256, rank: 8 });
    // the paper's Tables 2 and 3 are 0.5B only
    if (quick || size !== "0.5b") continue;
    for (const seq of SEQS) if (seq !== 256) shapes.push({ size, seq, rank: 8 });
    for (const rank of RANKS) if (rank !== 8) shapes.push({ size, seq: 256, rank });
  }
  return shapes.flatMap((s) => methods.map((method) => ({ ...s, method })));
}

// ---- tables ---------------------------------------------------------------------------------------------

const ORDER: Method[] = ["mebp", "mesp", "mezo"];

function find(rows: Row[], size: string, method: Method, seq: number, rank: number): Row | undefined {
  return rows.find((r) =>
    r.model === `qwen2.5-${size}` && r.method === method && r.seq === seq && r.rank === rank
  );
}

/** "118.3 (105.6)": measured peak with the plan's prediction; "—" when not run. */
function memCell(r?: Row): string {
  return r ? `${r.peak_mb.toFixed(1)} (${r.plan_mb.toFixed(1)})` : "—";
}

function table(head: string[], body: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...body.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

const MEM_HEAD = ["MeBP paper", "MeBP ours (plan)", "MeSP paper", "MeSP ours (plan)", "MeZO ours (plan)"];

function memRow(
  rows: Row[],
  size: string,
  seq: number,
  rank: number,
  paper?: { mebp: number; mesp: number },
) {
  return [
    paper ? paper.mebp.toFixed(1) : "—",
    memCell(find(rows, size, "mebp", seq, rank)),
    paper ? paper.mesp.toFixed(1) : "—",
    memCell(find(rows, size, "mesp", seq, rank)),
    memCell(find(rows, size, "mezo", seq, rank)),
  ];
}

/** The markdown report: Tables 1–3 (memory), the step-time table and a note on the machine. */
function report(rows: Row[], sizes: string[]): string {
  const out: string[] = [];
  out.push(
    "**Table 1: peak memory by model** (MB = 10⁶ bytes, whole process; T = 256, r = 8; ours: measured " +
      "VmHWM, in parentheses `plan`'s prediction)\n",
  );
  out.push(table(
    ["model", ...MEM_HEAD, "MeSP goal"],
    sizes.map((
      s,
    ) => [
      `Qwen2.5-${s.toUpperCase()}`,
      ...memRow(rows, s, 256, 8, PAPER.byModel[s]),
      `≤ ${PAPER.byModel[s].goal}`,
    ]),
  ));
  if (sizes.includes("0.5b")) {
    out.push("\n**Table 2: peak memory by sequence length** (Qwen2.5-0.5B, r = 8)\n");
    out.push(
      table(["T", ...MEM_HEAD], SEQS.map((T) => [String(T), ...memRow(rows, "0.5b", T, 8, PAPER.bySeq[T])])),
    );
    out.push("\n**Table 3: peak memory by LoRA rank** (Qwen2.5-0.5B, T = 256)\n");
    out.push(
      table(
        ["r", ...MEM_HEAD],
        RANKS.map((r) => [String(r), ...memRow(rows, "0.5b", 256, r, PAPER.byRank[r])]),
      ),
    );
  }
  out.push(
    "\n**Time per step** (s, median after one warm-up step; the paper's MeSP costs +27–31 % over MeBP, " +
      "the goal is ≤ +5 %)\n",
  );
  const shapes = new Map<string, { size: string; seq: number; rank: number }>();
  for (const r of rows) {
    const size = r.model.replace("qwen2.5-", "");
    if (sizes.includes(size)) shapes.set(`${size}/${r.seq}/${r.rank}`, { size, seq: r.seq, rank: r.rank });
  }
  const sorted = [...shapes.values()].sort((a, b) =>
    sizes.indexOf(a.size) - sizes.indexOf(b.size) || a.seq - b.seq || a.rank - b.rank
  );
  out.push(table(
    ["model", "T", "r", "MeBP s/step", "MeSP s/step", "MeSP vs MeBP", "MeZO s/step", "busy cores"],
    sorted.map(({ size, seq, rank }) => {
      const [b, s, z] = ORDER.map((m) => find(rows, size, m, seq, rank));
      const ratio = b && s
        ? `${s.step_s >= b.step_s ? "+" : "−"}${(Math.abs(s.step_s / b.step_s - 1) * 100).toFixed(1)} %`
        : "—";
      const busy = [b, s, z].filter((x): x is Row => x !== undefined).map((x) => x.busy_cores.toFixed(1));
      return [
        `${size.toUpperCase()}`,
        String(seq),
        String(rank),
        b ? b.step_s.toFixed(2) : "—",
        s ? s.step_s.toFixed(2) : "—",
        ratio,
        z ? z.step_s.toFixed(2) : "—",
        busy.join(" / "),
      ];
    }),
  ));
  const threads = [...new Set(rows.map((r) => r.threads))].join(", ");
  const commits = [...new Set(rows.map((r) => r.commit ?? "unknown"))].join(", ");
  out.push(
    `\nsteps per run: ${
      [...new Set(rows.map((r) => r.steps))].join(", ")
    } (first is warm-up); kernel threads: ${threads}; code: ${commits}. ` +
      '"busy cores" = average busy cores of the whole machine during each run (MeBP / MeSP / MeZO), from ' +
      "the 1-minute load average at its start and end; " +
      "clearly above the thread count means other programs shared the CPU and times are inflated.",
  );
  return out.join("\n");
}

/** The largest plan regions of a configuration, for "where the memory goes". */
async function planRegions(c: Config, cache: string, threads: number): Promise<string> {
  const model = await ensureModel(cache, c.size);
  const { stdout } = await mesp(["plan", ...trainFlags(c, model, cache, threads), "--json"]);
  const plan = JSON.parse(stdout) as {
    regions: { name: string; bytes: number }[];
    arena_bytes: number;
    runtime_bytes: number;
  };
  const top = [...plan.regions].sort((a, b) => b.bytes - a.bytes).slice(0, 5);
  return `arena ${(plan.arena_bytes / 1e6).toFixed(1)} + runtime ${(plan.runtime_bytes / 1e6).toFixed(0)}: ` +
    top.map((r) => `${r.name} ${(r.bytes / 1e6).toFixed(1)}`).join(", ");
}

async function main(): Promise<number> {
  const args = benchArgs(SPEC);
  const tmp = envOr("TMPDIR") ?? "/tmp";
  let cache = args.cacheDir ?? envOr("MESP_CACHE") ?? `${tmp}/mesp-bench-cache`;
  await Deno.mkdir(cache, { recursive: true });
  cache = await Deno.realPath(cache); // the commands run in the repository root
  const sizes = args.quick ? ["0.5b"] : args.models as string[];
  const methods = ORDER.filter((m) => (args.methods as string[]).includes(m));
  const previous: Row[] = [];
  if (args.results && await exists(args.results)) {
    for (const l of (await Deno.readTextFile(args.results)).split("\n")) {
      if (l.trim()) previous.push(JSON.parse(l));
    }
  }
  const threads = args.threads;
  const startCommit = await codeVersion();
  log(`measuring code ${startCommit}`);
  const todo = configs(sizes, methods, args.quick);
  const rows: Row[] = [];
  // prepare (pack the model, tokenize the data) once per model and length, outside any timed run
  const prepared = new Set<string>();
  for (const c of todo) {
    const key = `${c.size}/${c.seq}`;
    if (prepared.has(key)) continue;
    prepared.add(key);
    const model = await ensureModel(cache, c.size);
    const data = await ensureData(cache, c.seq);
    await prepare({ model, weights: "q4", cacheDir: cache, data: [data], seqLen: c.seq }, (m) => {
      if (!m.startsWith("  packed")) log(m);
    });
  }
  for (const [i, c] of todo.entries()) {
    const done = previous.find((r) =>
      r.model === `qwen2.5-${c.size}` && r.method === c.method && r.seq === c.seq && r.rank === c.rank &&
      r.steps === args.steps && r.threads === threads
    );
    const tag = `[${i + 1}/${todo.length}] ${c.size} ${c.method} T=${c.seq} r=${c.rank}`;
    let row: Row;
    if (done) {
      row = done;
      log(`${tag}: from ${args.results}`);
    } else {
      log(`${tag} …`);
      const commit = await codeVersion();
      if (commit !== startCommit) {
        log(`warning: the code changed during the run (${startCommit} → ${commit})`);
      }
      row = await measure(c, { cache, steps: args.steps, threads, commit });
      if (args.results) await Deno.writeTextFile(args.results, JSON.stringify(row) + "\n", { append: true });
    }
    log(
      `${tag}: peak ${row.peak_mb} MB (plan ${row.plan_mb}), ${row.step_s} s/step, busy cores ${row.busy_cores}`,
    );
    rows.push(row);
    if (args.json) {
      const { model, method, seq, rank, peak_mb, step_s, plan_mb } = row;
      console.log(JSON.stringify({ model, method, seq, rank, peak_mb, step_s, plan_mb }));
    }
  }
  const lines = [
    report(rows, sizes),
    "\n**Where the memory goes** (`plan`, T = 256, r = 8, MB; largest regions)\n",
  ];
  for (const size of sizes) {
    for (const method of methods) {
      lines.push(
        `- ${size} ${method}: ${await planRegions({ size, method, seq: 256, rank: 8 }, cache, threads)}`,
      );
    }
  }
  const text = lines.join("\n");
  if (args.json) console.error(text);
  else console.log(text);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
