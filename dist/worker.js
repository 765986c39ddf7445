// src/runtime/kernels.ts
var GEMM_TILE = {
  rows: 5,
  columns: 8
};
var KERNEL_LOCATION_OPTIONS = [
  "wasmBase",
  "modules",
  "workerUrl"
];
var LOAD_KERNELS_OPTIONS = [
  ...KERNEL_LOCATION_OPTIONS,
  "variant",
  "shared",
  "memoryBytes"
];
function kernelImports(memory) {
  const env = {
    abort(_msg, _file, line, col) {
      throw new Error(`kernel abort at ${line}:${col}`);
    }
  };
  if (memory) env.memory = memory;
  return {
    env
  };
}

// src/runtime/arena.ts
var WASM32_BYTES = 2 ** 32;

// src/runtime/kernel_exports.ts
var KERNEL_PARAMS = {
  heap_base: [],
  gemm: [
    "op",
    "m0",
    "m1",
    "n0",
    "n1",
    "K",
    "a",
    "lda",
    "bDtype",
    "b",
    "ldb",
    "bScales",
    "bBiases",
    "c",
    "ldc",
    "alpha",
    "accumulate",
    "scratch"
  ],
  gemm_dot: [
    "m0",
    "m1",
    "n0",
    "n1",
    "K",
    "a",
    "lda",
    "b",
    "ldb",
    "c",
    "ldc",
    "alpha",
    "accumulate"
  ],
  gemm_scratch_bytes: [],
  gemm_tile_columns: [],
  gemm_tile_rows: [],
  decode_row: [
    "dtype",
    "w",
    "ld",
    "scales",
    "biases",
    "row",
    "col0",
    "len",
    "dst"
  ],
  rmsnorm_forward: [
    "y",
    "rstd",
    "x",
    "w",
    "d",
    "ldX",
    "ldY",
    "eps",
    "r0",
    "r1"
  ],
  rmsnorm_backward: [
    "dx",
    "dy",
    "x",
    "w",
    "rstd",
    "d",
    "ldDx",
    "ldDy",
    "ldX",
    "accumulate",
    "r0",
    "r1"
  ],
  rope_forward: [
    "x",
    "cos",
    "sin",
    "nHeads",
    "headDim",
    "ld",
    "pos0",
    "r0",
    "r1"
  ],
  rope_backward: [
    "dx",
    "cos",
    "sin",
    "nHeads",
    "headDim",
    "ld",
    "pos0",
    "r0",
    "r1"
  ],
  softmax_causal_forward: [
    "p",
    "s",
    "nCols",
    "ld",
    "scale",
    "qPos0",
    "r0",
    "r1"
  ],
  softmax_causal_backward: [
    "ds",
    "p",
    "dp",
    "nCols",
    "ld",
    "scale",
    "qPos0",
    "r0",
    "r1"
  ],
  swiglu_forward: [
    "m",
    "g",
    "u",
    "nCols",
    "ldM",
    "ldG",
    "ldU",
    "r0",
    "r1"
  ],
  swiglu_backward: [
    "dg",
    "du",
    "dm",
    "g",
    "u",
    "nCols",
    "ldDg",
    "ldDu",
    "ldDm",
    "ldG",
    "ldU",
    "r0",
    "r1"
  ],
  ce_chunk_forward: [
    "logits",
    "vc",
    "ld",
    "v0",
    "targets",
    "rowMax",
    "rowSum",
    "targetLogit",
    "first",
    "r0",
    "r1"
  ],
  ce_finish: [
    "loss",
    "logsum",
    "rowMax",
    "rowSum",
    "targetLogit",
    "r0",
    "r1"
  ],
  ce_chunk_fused: [
    "logits",
    "vc",
    "ld",
    "v0",
    "targets",
    "rowMax",
    "rowSum",
    "targetLogit",
    "rowWeight",
    "acc",
    "ldAcc",
    "d",
    "first",
    "r0",
    "r1"
  ],
  ce_fused_finish: [
    "loss",
    "logsum",
    "rowMax",
    "rowSum",
    "targetLogit",
    "rowWeight",
    "acc",
    "ldAcc",
    "d",
    "r0",
    "r1"
  ],
  axpy: [
    "y",
    "alpha",
    "x",
    "n"
  ],
  scale: [
    "x",
    "alpha",
    "n"
  ],
  sum_squares: [
    "x",
    "n"
  ],
  f32_to_bf16: [
    "dst",
    "src",
    "n"
  ],
  exp_array: [
    "y",
    "x",
    "n"
  ],
  log_array: [
    "y",
    "x",
    "n"
  ],
  sgd_update: [
    "p",
    "g",
    "n",
    "lr",
    "weightDecay"
  ],
  adamw_update: [
    "p",
    "g",
    "m",
    "v",
    "n",
    "lr",
    "beta1",
    "beta2",
    "eps",
    "weightDecay",
    "biasC1",
    "biasC2"
  ],
  normal_fill: [
    "out",
    "n",
    "seed",
    "offset"
  ],
  zo_perturb: [
    "p",
    "n",
    "seed",
    "offset",
    "eps"
  ],
  zo_update: [
    "p",
    "n",
    "seed",
    "offset",
    "coeff",
    "lr",
    "weightDecay"
  ]
};

// src/runtime/pool.ts
var ROW_TASKS = [
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
  "ce_fused_finish"
];
var TASKS = [
  "gemm",
  "gemm_dot",
  ...ROW_TASKS
];
var CTL = {
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
  quit: 10
};
var ARGS_AT = 64;
var MAX_ARGS = 24;
var CONTROL_BYTES = ARGS_AT + MAX_ARGS * 8;
var MR = GEMM_TILE.rows;
var NR = GEMM_TILE.columns;
var FORMALS = 18;
var ROW_FORMALS = 15;
var CALL_ARITIES = [
  7,
  8,
  9,
  10,
  11,
  12,
  13,
  15,
  18
];
for (const name of TASKS) {
  const n = KERNEL_PARAMS[name].length;
  const most = ROW_TASKS.includes(name) ? ROW_FORMALS : FORMALS;
  if (n > most || !CALL_ARITIES.includes(n)) {
    throw new Error(`pool: no call shape for ${name}'s ${n} parameters`);
  }
}
var Executor = class {
  #fns;
  #ctl;
  #args;
  #a = new Float64Array(MAX_ARGS);
  #thread;
  /** The first error a share threw since the owner last cleared it. */
  failure = void 0;
  /** `exports` of this thread's instance; `thread` picks its scratch area (0 = the caller). */
  constructor(exports, control, thread) {
    const ex = exports;
    this.#fns = TASKS.map((name) => ex[name]);
    this.#ctl = new Int32Array(control, 0, ARGS_AT / 4);
    this.#args = new Float64Array(control, ARGS_AT, MAX_ARGS);
    this.#thread = thread;
  }
  /** Claims shares of task generation `gen` and runs them until none is left (or the task changed). */
  work(gen) {
    const ctl = this.#ctl, tag = gen & 65535;
    for (; ; ) {
      const v = Atomics.load(ctl, CTL.claim), share = v & 255, shares = v >>> 8 & 255;
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
  #run(share, shares) {
    const ctl = this.#ctl, a = this.#a, n = ctl[CTL.nargs], lo = ctl[CTL.lo], grain = ctl[CTL.grain];
    for (let i = 0; i < n; i++) a[i] = this.#args[i];
    const units = Math.ceil((a[lo + 1] - a[lo]) / grain);
    const u0 = Math.floor(units * share / shares), u1 = Math.floor(units * (share + 1) / shares);
    if (u1 <= u0) return;
    const s0 = a[lo] + u0 * grain;
    a[lo + 1] = Math.min(a[lo + 1], a[lo] + u1 * grain);
    a[lo] = s0;
    const sa = ctl[CTL.scratchArg];
    if (sa >= 0) a[sa] += this.#thread * ctl[CTL.scratchStride];
    call(this.#fns[ctl[CTL.fn]], a, n);
  }
};
function call(f, a, n) {
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
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17]);
      break;
    default:
      throw new Error(`pool: no call shape for ${n} arguments`);
  }
}

// src/runtime/worker.ts
var scope = globalThis;
scope.onmessage = (ev) => {
  scope.onmessage = null;
  const init = ev.data;
  let ex;
  try {
    const instance = new WebAssembly.Instance(init.module, kernelImports(init.memory));
    ex = new Executor(instance.exports, init.control, init.thread);
  } catch (err) {
    scope.postMessage({
      error: String(err)
    });
    return;
  }
  const ctl = new Int32Array(init.control, 0, 16);
  const seen = Atomics.load(ctl, CTL.seq);
  scope.postMessage({
    ready: true
  });
  serve(ex, ctl, seen, init.spinMs);
  scope.close();
};
function serve(ex, ctl, seen, spinMs) {
  for (; ; ) {
    let seq = Atomics.load(ctl, CTL.seq);
    if (seq === seen) {
      const until = performance.now() + spinMs;
      for (let i = 1; seq === seen; i++) {
        if ((i & 255) === 0 && performance.now() > until) break;
        seq = Atomics.load(ctl, CTL.seq);
      }
      while (seq === seen) {
        Atomics.wait(ctl, CTL.seq, seen);
        seq = Atomics.load(ctl, CTL.seq);
      }
    }
    seen = seq;
    if (Atomics.load(ctl, CTL.quit)) return;
    ex.work(seq);
    if (ex.failure !== void 0) {
      scope.postMessage({
        error: String(ex.failure)
      });
      ex.failure = void 0;
    }
  }
}
