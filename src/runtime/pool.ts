/**
 * A worker pool on one shared WebAssembly memory (docs/architecture.md, "Threads"). Module Workers instantiate
 * the same compiled threads build on the same `WebAssembly.Memory({ shared: true })`; the calling thread and the
 * workers each run one share of a split kernel call and meet again on an `Atomics` counter.
 *
 * - **Work**: a call of a kernel export, one of whose argument pairs is a half-open range (GEMM rows
 *   `m0, m1` or columns `n0, n1`; the `(r0, r1)` of every row kernel), cut into `threads` contiguous,
 *   grain-aligned shares. Every output element is produced by one share with the same summation order as an
 *   unsplit call, so results are bitwise identical for any thread count (the kernels guarantee it for their
 *   range arguments).
 * - **Claiming**: the caller and the workers claim shares with a compare-and-swap on one counter, so which
 *   thread runs a share does not matter (nor change any bit): a worker that is slow to wake, or a core
 *   taken by another program, costs at worst the caller running every share itself, never a stall.
 * - **Control block**: a separate 256-byte `SharedArrayBuffer` (not wasm memory, so the plan is untouched):
 *   a task generation the workers `Atomics.wait` on, the claim counter (tagged with the generation), a
 *   count of finished shares the caller waits on, the task (export id, argument count, which argument is
 *   the range, grain, scratch argument, shares) and up to 24 arguments as f64. Posting a task writes these
 *   fields; nothing is allocated per task.
 * - **Scratch**: GEMM packing scratch is per thread: thread `t` (0 = the caller) uses
 *   `scratch + t · gemm_scratch_bytes()`, so the plan's `gemm.scratch` region must hold `threads` of them.
 * - **Lifetime**: workers block in `Atomics.wait`, and a live Worker keeps Deno (and Node) running, so the
 *   owner must call {@linkcode Pool.close}; it sets a quit flag, wakes the workers and terminates them.
 *
 * No Deno-only API: the pool runs in browsers that are cross-origin isolated (where the calling thread may
 * not block, so it spins while the workers finish).
 *
 * @module
 */
import {
  checkKernelLocation,
  GEMM_TILE,
  kernelConstants,
  type KernelExports,
  type KernelLocation,
  type Kernels,
  loadKernels,
  threadsUnavailable,
  type Variant,
} from "./kernels.ts";
import {
  Arena,
  checkAddressable,
  formatPlan,
  planMemory,
  PlanTooLargeError,
  type RegionSpec,
} from "./arena.ts";
import { KERNEL_PARAMS, type KernelName } from "./kernel_exports.ts";
import type { WeightRef } from "./weight_ref.ts";

/** A kernel whose last two parameters are its row range `r0, r1`: one a pool can split by rows. */
type RowKernel = {
  [K in KernelName]: typeof KERNEL_PARAMS[K] extends readonly [...string[], "r0", "r1"] ? K : never;
}[KernelName];

/** The row kernels a pool splits (a kernel listed here without a trailing `r0, r1` does not compile). */
const ROW_TASKS = [
  "rmsnorm_forward",
  "rmsnorm_backward",
  "rope_forward",
  "rope_backward",
  "softmax_causal_forward",
  "softmax_causal_backward",
  "swiglu_forward",
  "swiglu_backward",
  "ce_chunk_forward",
  "ce_finish",
  "ce_chunk_fused",
  "ce_fused_finish",
] as const satisfies readonly RowKernel[];

/** Kernel exports a pool can split, by task id: the two GEMMs, then the row kernels. */
const TASKS = ["gemm", "gemm_dot", ...ROW_TASKS] as const;
type RowTask = typeof ROW_TASKS[number];

/** Slots of the control block (Int32 indices). */
export const CTL = {
  /** Task generation: bumped once per posted task; workers wait on it. */
  seq: 0,
  /**
   * Claim word: `(generation & 0xffff) << 16 | shares << 8 | next share`, claimed with compare-and-swap;
   * one atomic read tells a thread whether the task is still current and which share is next.
   */
  claim: 1,
  /** Shares finished; the caller waits for it to reach `shares`. */
  done: 2,
  /** Task id (index in {@linkcode TASKS}). */
  fn: 3,
  /** Number of arguments. */
  nargs: 4,
  /** Index of the range's first argument (the range is `args[lo], args[lo + 1]`). */
  lo: 5,
  /** Range pieces are multiples of this (except the last). */
  grain: 6,
  /** Index of the scratch pointer argument, −1 if none. */
  scratchArg: 7,
  /** Bytes between two threads' scratch areas. */
  scratchStride: 8,
  /** Set by a worker whose share threw. */
  errors: 9,
  /** Set by {@linkcode Pool.close}: workers leave their loop. */
  quit: 10,
} as const;

/** Byte offset of the f64 arguments in the control block, their maximum count, the block's size. */
const ARGS_AT = 64, MAX_ARGS = 24, CONTROL_BYTES = ARGS_AT + MAX_ARGS * 8;

/** GEMM micro-tile height and width ({@linkcode GEMM_TILE}), and `gemm_dot`'s row and column blocks: split grains that keep tiles whole. */
const MR = GEMM_TILE.rows, NR = GEMM_TILE.columns, DOT_ROWS = 4, DOT_COLUMNS = 2;

type Fn = (...args: number[]) => unknown;

/**
 * Parameters of the pool's GEMM and row-kernel entry points: at least the arity of every such task (a wasm
 * export ignores arguments beyond its own); and the arities {@linkcode call} has a case for.
 */
const FORMALS = 18, ROW_FORMALS = 15, CALL_ARITIES = [7, 8, 9, 10, 11, 12, 13, 15, 18];
for (const name of TASKS) {
  const n = KERNEL_PARAMS[name].length;
  const most = (ROW_TASKS as readonly string[]).includes(name) ? ROW_FORMALS : FORMALS;
  if (n > most || !CALL_ARITIES.includes(n)) {
    throw new Error(`pool: no call shape for ${name}'s ${n} parameters`);
  }
}

/**
 * The `[s0, s1)` piece of `[lo, hi)` that thread `index` of `parts` runs: contiguous, in thread order,
 * boundaries on multiples of `grain` from `lo`.
 */
export function share(lo: number, hi: number, grain: number, parts: number, index: number): [number, number] {
  const units = Math.ceil((hi - lo) / grain);
  const u0 = Math.floor((units * index) / parts), u1 = Math.floor((units * (index + 1)) / parts);
  return [lo + u0 * grain, Math.min(hi, lo + u1 * grain)];
}

/** Claims and runs shares of the task in a control block (used by the caller and by every worker). */
export class Executor {
  readonly #fns: Fn[];
  readonly #ctl: Int32Array;
  readonly #args: Float64Array;
  readonly #a = new Float64Array(MAX_ARGS);
  readonly #thread: number;
  /** The first error a share threw since the owner last cleared it. */
  failure: unknown = undefined;

  /** `exports` of this thread's instance; `thread` picks its scratch area (0 = the caller). */
  constructor(exports: KernelExports, control: SharedArrayBuffer, thread: number) {
    const ex = exports as unknown as Record<string, Fn>;
    this.#fns = TASKS.map((name) => ex[name]);
    this.#ctl = new Int32Array(control, 0, ARGS_AT / 4);
    this.#args = new Float64Array(control, ARGS_AT, MAX_ARGS);
    this.#thread = thread;
  }

  /** Claims shares of task generation `gen` and runs them until none is left (or the task changed). */
  work(gen: number): void {
    const ctl = this.#ctl, tag = gen & 0xffff;
    for (;;) {
      const v = Atomics.load(ctl, CTL.claim), share = v & 0xff, shares = (v >>> 8) & 0xff;
      if (v >>> 16 !== tag || share >= shares) return;
      if (Atomics.compareExchange(ctl, CTL.claim, v, v + 1) !== v) continue;
      try {
        this.#run(share, shares);
      } catch (err) {
        Atomics.store(ctl, CTL.errors, 1);
        this.failure ??= err;
      }
      if (Atomics.add(ctl, CTL.done, 1) + 1 === shares) Atomics.notify(ctl, CTL.done);
    }
  }

  /** Share `share` of `shares` of the posted task, with this thread's scratch. */
  #run(share: number, shares: number): void {
    const ctl = this.#ctl, a = this.#a, n = ctl[CTL.nargs], lo = ctl[CTL.lo], grain = ctl[CTL.grain];
    for (let i = 0; i < n; i++) a[i] = this.#args[i];
    const units = Math.ceil((a[lo + 1] - a[lo]) / grain);
    const u0 = Math.floor((units * share) / shares), u1 = Math.floor((units * (share + 1)) / shares);
    if (u1 <= u0) return;
    const s0 = a[lo] + u0 * grain;
    a[lo + 1] = Math.min(a[lo + 1], a[lo] + u1 * grain);
    a[lo] = s0;
    const sa = ctl[CTL.scratchArg];
    if (sa >= 0) a[sa] += this.#thread * ctl[CTL.scratchStride];
    call(this.#fns[ctl[CTL.fn]], a, n);
  }
}

/** `f(a[0], …, a[n−1])` without building an argument array. */
function call(f: Fn, a: Float64Array, n: number): void {
  switch (n) {
    case 7:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
      break;
    case 8:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
      break;
    case 9:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
      break;
    case 10:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
      break;
    case 11:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]);
      break;
    case 12:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]);
      break;
    case 13:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]);
      break;
    case 15:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14]);
      break;
    case 18:
      f(
        a[0],
        a[1],
        a[2],
        a[3],
        a[4],
        a[5],
        a[6],
        a[7],
        a[8],
        a[9],
        a[10],
        a[11],
        a[12],
        a[13],
        a[14],
        a[15],
        a[16],
        a[17],
      );
      break;
    default:
      throw new Error(`pool: no call shape for ${n} arguments`);
  }
}

/** What a worker receives once, at start. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  /** This worker's thread number (1 … threads − 1), which picks its scratch area. */
  thread: number;
  /** How long an idle worker polls before it sleeps in `Atomics.wait`, in ms. */
  spinMs: number;
}

/** Options for {@linkcode Pool.start}. */
export interface PoolOptions {
  /** Threads working on each split call, the caller included (≥ 2; 2 = caller + one worker). */
  threads: number;
  /** URL of the worker module (default: `worker.ts` next to this module). */
  workerUrl?: string | URL;
  /** Row kernels with fewer rows than this run unsplit on the caller (default 16). */
  minRows?: number;
  /** How long an idle worker polls for the next task before sleeping, in ms (default 0.2). */
  spinMs?: number;
  /** GEMMs with fewer floating-point operations run unsplit (default 1e6, ≈ 40 µs on one core). */
  minFlops?: number;
  /** How GEMMs are split: by their shape (default), or always by rows / columns (benchmarks). */
  split?: "auto" | "rows" | "columns";
}

/** The number of threads this runtime offers (`navigator.hardwareConcurrency`, else 1). */
export function availableThreads(): number {
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return typeof n === "number" && n >= 1 ? Math.floor(n) : 1;
}

/** Kernels with the worker pool splitting work across threads, once one is started on them. */
export interface PooledKernels extends Kernels {
  readonly pool?: Pool;
}

/** The most threads a pool starts: a bound far above any machine this runs on, so a typo fails clearly. */
export const MAX_THREADS = 255;

/** A pool of module Workers sharing one threads-build kernel instance's memory. */
export class Pool {
  /** Threads per split call, the caller included. */
  readonly threads: number;
  /** Entry points with the raw signatures; row kernels split their `(r0, r1)` across the threads. */
  readonly exports: KernelExports;
  /** `gemm` split by rows (`m0, m1`, in micro-tiles of 6) or by columns (`n0, n1`, in tiles of 8). */
  readonly gemmRows: KernelExports["gemm"];
  readonly gemmColumns: KernelExports["gemm"];
  /** The unpacked skinny GEMM (`gemm_dot`), split by rows in blocks of 4, or by columns in pairs. */
  readonly gemmDotRows: KernelExports["gemm_dot"];
  readonly gemmDotColumns: KernelExports["gemm_dot"];
  /** The kernels this pool works for, with `pool` set (what the engine is given). */
  readonly kernels: PooledKernels;
  /** Row kernels with fewer rows run unsplit. */
  readonly minRows: number;
  /** GEMMs with fewer floating-point operations run unsplit. */
  readonly minFlops: number;
  /** GEMM split policy. */
  readonly split: "auto" | "rows" | "columns";
  /** Split calls posted so far (each ran on every thread). */
  posted = 0;
  readonly #raw: KernelExports;
  readonly #ctl: Int32Array;
  readonly #args: Float64Array;
  readonly #main: Executor;
  readonly #workers: Worker[];
  readonly #canBlock: boolean;
  readonly #scratchStride: number;
  #closed = false;
  #lastError = "";

  private constructor(
    kernels: Kernels,
    control: SharedArrayBuffer,
    workers: Worker[],
    options: PoolOptions,
  ) {
    this.threads = options.threads;
    this.minRows = options.minRows ?? 16;
    this.minFlops = options.minFlops ?? 1e6;
    this.split = options.split ?? "auto";
    this.#raw = kernels.exports;
    this.#ctl = new Int32Array(control, 0, ARGS_AT / 4);
    this.#args = new Float64Array(control, ARGS_AT, MAX_ARGS);
    this.#main = new Executor(kernels.exports, control, 0);
    this.#workers = workers;
    this.#scratchStride = kernels.exports.gemm_scratch_bytes();
    this.#canBlock = canBlock(this.#ctl);
    for (const w of workers) {
      w.onmessage = (ev: MessageEvent) => {
        if (ev.data?.error) this.#lastError = String(ev.data.error);
      };
    }
    this.gemmRows = this.#gemmSplitting("gemm", "m0", MR);
    this.gemmColumns = this.#gemmSplitting("gemm", "n0", NR);
    this.gemmDotRows = this.#gemmSplitting("gemm_dot", "m0", DOT_ROWS);
    this.gemmDotColumns = this.#gemmSplitting("gemm_dot", "n0", DOT_COLUMNS);
    const ex: Record<string, unknown> = { ...kernels.exports };
    for (const name of ROW_TASKS) ex[name] = this.#rowSplitting(name);
    this.exports = ex as unknown as KernelExports;
    this.kernels = { ...kernels, pool: this };
  }

  /**
   * Starts `threads − 1` workers on the shared memory of `kernels` (a threads build, see
   * `loadKernels({ shared: true })`). Grow the memory to the plan first. The plan's GEMM scratch region must
   * hold `threads · gemm_scratch_bytes()` bytes.
   */
  static async start(kernels: Kernels, options: PoolOptions): Promise<Pool> {
    const threads = options.threads;
    if (!Number.isInteger(threads) || threads < 2 || threads > MAX_THREADS) {
      throw new Error(`a pool needs at least 2 threads (and at most ${MAX_THREADS}), got ${threads}`);
    }
    if (!kernels.shared) throw new Error("a pool needs the threads build of the kernels (shared memory)");
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const url = options.workerUrl ?? workerUrlHere();
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    const ctl = new Int32Array(control, 0, ARGS_AT / 4);
    try {
      for (let i = 1; i < threads; i++) {
        const w = new Worker(url, { type: "module" });
        workers.push(w);
        ready.push(
          new Promise<void>((resolve, reject) => {
            w.onmessage = (ev: MessageEvent) => {
              if (ev.data?.ready) return resolve();
              const why = ev.data?.error ?? "no reason";
              reject(new Error(`pool worker ${i} (${url}) failed to start: ${why}`));
            };
            w.onerror = (ev: ErrorEvent) => {
              ev.preventDefault();
              // browsers give a worker whose script did not load an error without a message
              workerLoadFailure(url, ev.message).then((why) =>
                reject(new Error(`pool worker ${i} failed to start: ${why}`))
              );
            };
          }),
        );
        const init: WorkerInit = {
          module: kernels.module,
          memory: kernels.memory,
          control,
          thread: i,
          spinMs: options.spinMs ?? 0.2,
        };
        w.postMessage(init);
      }
      await Promise.all(ready);
    } catch (err) {
      stop(ctl, workers);
      throw err;
    }
    for (const w of workers) w.onerror = null;
    return new Pool(kernels, control, workers, options);
  }

  /**
   * An entry point with the raw signature of GEMM `name` that runs it as a split task: the range that starts
   * at parameter `start` (`m0` rows or `n0` columns) is cut into shares on multiples of `grain`, and the
   * `scratch` parameter, if any, is thread 0's area (thread `i` uses the `i`-th after it). Where the
   * arguments go is found from the parameter names of the generated interface.
   */
  #gemmSplitting(name: "gemm" | "gemm_dot", start: "m0" | "n0", grain: number): Fn {
    const id = TASKS.indexOf(name), params: readonly string[] = KERNEL_PARAMS[name];
    const nargs = params.length, lo = params.indexOf(start), scratchArg = params.indexOf("scratch");
    const x = this.#args;
    return (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17) => {
      x[0] = a0;
      x[1] = a1;
      x[2] = a2;
      x[3] = a3;
      x[4] = a4;
      x[5] = a5;
      x[6] = a6;
      x[7] = a7;
      x[8] = a8;
      x[9] = a9;
      x[10] = a10;
      x[11] = a11;
      x[12] = a12;
      x[13] = a13;
      x[14] = a14;
      x[15] = a15;
      x[16] = a16;
      x[17] = a17;
      this.#post(id, nargs, lo, grain, scratchArg);
    };
  }

  /**
   * A row kernel's entry point: splits its trailing `(r0, r1)` across the threads, or runs it unsplit here
   * when the range is shorter than `minRows`. (Its own 15 parameters, not 18: row kernels are called
   * often, and storing unused arguments costs ~8 ns a call, measured.)
   */
  #rowSplitting(name: RowTask): Fn {
    const id = TASKS.indexOf(name), nargs = KERNEL_PARAMS[name].length, lo = nargs - 2;
    const f = this.#raw[name] as Fn;
    const x = this.#args, min = this.minRows;
    return (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14) => {
      x[0] = a0;
      x[1] = a1;
      x[2] = a2;
      x[3] = a3;
      x[4] = a4;
      x[5] = a5;
      x[6] = a6;
      x[7] = a7;
      x[8] = a8;
      x[9] = a9;
      x[10] = a10;
      x[11] = a11;
      x[12] = a12;
      x[13] = a13;
      x[14] = a14;
      if (!(x[lo + 1] - x[lo] >= min)) {
        return f(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14);
      }
      this.#post(id, nargs, lo, 1, -1);
    };
  }

  /** Posts the task whose arguments are written, claims shares here too, waits until all are done. */
  #post(fn: number, nargs: number, lo: number, grain: number, scratchArg: number): void {
    if (this.#closed) throw new Error("the worker pool is closed");
    this.posted++;
    const ctl = this.#ctl, shares = this.threads;
    ctl[CTL.fn] = fn;
    ctl[CTL.nargs] = nargs;
    ctl[CTL.lo] = lo;
    ctl[CTL.grain] = grain;
    ctl[CTL.scratchArg] = scratchArg;
    ctl[CTL.scratchStride] = this.#scratchStride;
    Atomics.store(ctl, CTL.done, 0);
    // the claim word is published after every field, the generation after the claim word
    const gen = (Atomics.load(ctl, CTL.seq) + 1) | 0;
    Atomics.store(ctl, CTL.claim, ((gen & 0xffff) << 16) | (shares << 8));
    Atomics.store(ctl, CTL.seq, gen);
    Atomics.notify(ctl, CTL.seq);
    this.#main.work(gen);
    this.#wait(shares);
    const failure = this.#main.failure;
    this.#main.failure = undefined;
    if (Atomics.load(ctl, CTL.errors)) {
      Atomics.store(ctl, CTL.errors, 0);
      if (failure) throw failure;
      throw new Error(
        `pool: ${TASKS[fn]} failed in a worker${this.#lastError ? `: ${this.#lastError}` : ""}`,
      );
    }
  }

  /** Until every share is done: poll briefly, then sleep on the counter where the runtime allows it. */
  #wait(shares: number): void {
    const ctl = this.#ctl;
    let v = Atomics.load(ctl, CTL.done);
    for (let i = 0; v !== shares && (i < 20000 || !this.#canBlock); i++) v = Atomics.load(ctl, CTL.done);
    while (v !== shares) {
      Atomics.wait(ctl, CTL.done, v);
      v = Atomics.load(ctl, CTL.done);
    }
  }

  /** Ends the workers. Idempotent; the pool's split entry points throw afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    stop(this.#ctl, this.#workers);
  }
}

/** The pool worker shipped with this module (read only when no `workerUrl` is given). */
function workerUrlHere(): URL {
  const here = import.meta.url;
  try {
    return new URL("./worker.ts", here);
  } catch {
    throw new Error(
      `cannot locate mesp's pool worker: this module has no URL here (import.meta.url is ${here}); ` +
        `pass the kernels option { workerUrl }, or threads: 1`,
    );
  }
}

/** Why the worker script at `url` did not start: the runtime's message, or what fetching it says. */
async function workerLoadFailure(url: string | URL, message: string | undefined): Promise<string> {
  if (message) return `${message} (${url})`;
  try {
    const res = await fetch(url, { method: "HEAD" });
    await res.body?.cancel();
    if (!res.ok) return `cannot load ${url}: HTTP ${res.status} ${res.statusText}`.trimEnd();
  } catch (err) {
    return `cannot load ${url}: ${(err as Error).message}`;
  }
  return `the worker script ${url} failed to load or to run`;
}

/** Sets the quit flag, wakes every worker and terminates them (a worker asleep in `Atomics.wait` ignores
 * `terminate()` alone, and keeps the process alive). */
function stop(ctl: Int32Array, workers: Worker[]): void {
  Atomics.store(ctl, CTL.quit, 1);
  Atomics.store(ctl, CTL.claim, -1); // no generation's tag: nothing left to claim
  Atomics.add(ctl, CTL.seq, 1);
  Atomics.notify(ctl, CTL.seq);
  for (const w of workers) {
    w.onmessage = null;
    w.terminate();
  }
}

/** Whether this thread may block in `Atomics.wait` (browsers forbid it on the main thread). */
function canBlock(ctl: Int32Array): boolean {
  try {
    Atomics.wait(ctl, CTL.quit, 1, 0); // value differs: returns "not-equal" at once where allowed
    return true;
  } catch {
    return false;
  }
}

/** Wall time, calls and floating-point operations of kernel calls, by category (for benchmarks). */
export interface ProfileEntry {
  ms: number;
  calls: number;
  flops: number;
}

/** Default category of a non-GEMM kernel export. */
function kernelCategory(name: string): string {
  if (name.startsWith("softmax")) return "softmax";
  if (name.startsWith("ce_")) return "loss";
  if (name.startsWith("rmsnorm") || name.startsWith("rope") || name.startsWith("swiglu")) return "norm";
  return "elementwise";
}

/**
 * Collects where kernel time goes when given to the engine (`EngineOptions.profile`): every GEMM call
 * (category from {@linkcode Profile.classifyGemm}, default `"gemm"`) and every other kernel call (category
 * from {@linkcode kernelCategory}), timed around the whole call (with a pool: until every share is done).
 */
export class Profile {
  /** Category of a GEMM call from its shape and B operand. */
  classifyGemm: (op: number, m: number, n: number, k: number, b: WeightRef) => string = () => "gemm";
  /** Totals by category. */
  readonly entries: Map<string, ProfileEntry> = new Map();

  /** Adds one timed call. */
  add(category: string, ms: number, flops = 0): void {
    let e = this.entries.get(category);
    if (!e) this.entries.set(category, e = { ms: 0, calls: 0, flops: 0 });
    e.ms += ms;
    e.calls++;
    e.flops += flops;
  }

  /** Forgets everything collected. */
  reset(): void {
    this.entries.clear();
  }
}

/**
 * The kernel entry points an engine calls: the raw exports with one thread and no profile (no overhead),
 * the pool's splitting entry points with a pool, each wrapped in a timer when `profile` is given.
 */
export function kernelEntries(kernels: PooledKernels, profile?: Profile): KernelExports {
  const base = kernels.pool?.exports ?? kernels.exports;
  if (!profile) return base;
  const ex: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(base)) {
    if (typeof v !== "function") {
      ex[name] = v;
      continue;
    }
    const f = v as Fn, cat = kernelCategory(name);
    ex[name] = (...args: number[]) => {
      const t0 = performance.now();
      const r = f(...args);
      profile.add(cat, performance.now() - t0);
      return r;
    };
  }
  return ex as unknown as KernelExports;
}

/** Options for {@linkcode startKernels}. */
export interface StartKernelsOptions {
  /** Kernel variant (default: the fastest this runtime validates). */
  variant?: Variant;
  /** Threads (default 1). More start a {@linkcode Pool} where the runtime allows it, else one thread. */
  threads?: number;
  /** Refuse plans whose arena is larger than this many bytes (before any memory is taken). */
  budget?: number;
  /** Split thresholds and policy of the pool. */
  poolOptions?: Omit<PoolOptions, "threads">;
  /** Where the wasm files and the pool worker are (default: next to this module). */
  kernels?: KernelLocation;
  /** Told why a run asked for threads gets one (default `console.warn`). */
  onNotice?: (message: string) => void;
}

/**
 * Loads the kernels, lays out the plan `specsOf(gemmScratch)` in their memory and, with `threads` > 1,
 * starts a pool on it: what an engine needs before it computes. `gemmScratch` is the bytes the plan's GEMM
 * scratch region must have (one area per thread). With a pool, the shared memory is created at exactly the
 * plan's size and can never grow (see `LoadKernelsOptions.memoryBytes`), so workers start after it is sized.
 * The returned kernels carry the pool (`kernels.pool`), which the caller must close.
 */
export async function startKernels(
  specsOf: (gemmScratch: number) => readonly RegionSpec[],
  options: StartKernelsOptions = {},
): Promise<{ kernels: PooledKernels; arena: Arena }> {
  checkKernelLocation(options.kernels, "kernels");
  const threads = options.threads ?? 1;
  const location = options.kernels ?? {};
  const budget = { budget: options.budget };
  if (threads > 1) {
    // read from the wasm bytes: instantiating the single-thread build only to size the plan kept a second
    // instance, memory and compiled module alive next to the threads build (issue 14)
    const single = await kernelConstants({ ...location, variant: options.variant });
    const specs = specsOf(single.gemmScratchBytes * threads);
    // every build has the same static data, so the plan is placed alike in any of them
    const plan = planMemory(specs, { base: Math.ceil(single.heapBase / 64) * 64 });
    checkAddressable(plan);
    if (options.budget !== undefined && plan.bytes > options.budget) {
      throw new PlanTooLargeError(plan, options.budget, plan.bytes, formatPlan(plan));
    }
    const shared = await loadKernels({
      ...location,
      variant: single.variant,
      shared: true,
      memoryBytes: plan.end,
    });
    if (
      shared.shared && shared.exports.heap_base() === single.heapBase &&
      shared.exports.gemm_scratch_bytes() === single.gemmScratchBytes
    ) {
      const arena = Arena.create(shared, specs, budget);
      // said only where the threads run (without a pool the run is on one thread, and says why)
      const cores = availableThreads();
      if (threads > cores) {
        (options.onNotice ?? console.warn)(
          `mesp: ${threads} threads asked for and the runtime reports ${cores} core${
            cores === 1 ? "" : "s"
          }: ` +
            `the threads beyond them take turns, which slows every step`,
        );
      }
      const pool = await Pool.start(shared, {
        workerUrl: location.workerUrl,
        ...options.poolOptions,
        threads,
      });
      return { kernels: pool.kernels, arena };
    }
    const why = threadsUnavailable() ??
      (shared.shared
        ? "the threads build lays out memory differently"
        : "no threads build or shared memory of " +
          `${Math.ceil(plan.end / 2 ** 20)} MB could be had`);
    (options.onNotice ?? console.warn)(`mesp: ${threads} threads asked for, running on 1: ${why}`);
    // without a threads build loadKernels gave the single-thread one: use it rather than load another
    if (!shared.shared) {
      return {
        kernels: shared,
        arena: Arena.create(shared, specsOf(shared.exports.gemm_scratch_bytes()), budget),
      };
    }
  }
  const single = await loadKernels({ ...location, variant: options.variant });
  const scratch = single.exports.gemm_scratch_bytes();
  return { kernels: single, arena: Arena.create(single, specsOf(scratch), budget) };
}
