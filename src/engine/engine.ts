/**
 * The engine: one kernel instance, one arena laid out by the plan, the weights streamed from a pack
 * (`weight_stream.ts`) and the LoRA descriptors of every layer (docs/architecture.md, docs/mesp.md). The
 * passes over it are their own files: the layer forward (`forward.ts`), the loss (`loss.ts`), the backward
 * (`backward.ts`) and the training step (`step.ts`).
 *
 * Everything the step loop touches is a buffer of the plan (`plan.ts`); weight descriptors and typed-array
 * views are made once here, so no pass allocates memory of its own. What remains per step is the garbage of
 * asynchronous reads: a promise per weight unit read (a layer, an MLP or vocabulary chunk, a gather), never
 * one per token or row.
 *
 * @module
 */
import { type Arena, checkAddressable, type MemoryPlan, planMemory } from "../runtime/arena.ts";
import { f32Ref, type WeightRef } from "../runtime/weight_ref.ts";
import { Gemm } from "../runtime/gemm.ts";
import {
  kernelConstants,
  type KernelExports,
  type KernelLocation,
  type Variant,
} from "../runtime/kernels.ts";
import {
  kernelEntries,
  type PooledKernels,
  type PoolOptions,
  type Profile,
  startKernels,
} from "../runtime/pool.ts";
import type { ModelConfig } from "../model/config.ts";
import { type Linear, LINEARS } from "../model/qwen2.ts";
import { checkPack, type Pack } from "../model/pack.ts";
import { type Blocks, resolveBlocks } from "./blocks.ts";
import { findPair, type LoraLayout, type LoraPair } from "./lora.ts";
import { type LayerVector, type MlpChunk, WeightStream } from "./weight_stream.ts";
import { bufferPointers, type Buffers, type Dims, dims, planBuffers, type PlanOptions } from "./plan.ts";
import { type Schedule, scheduled, scheduleOf } from "./schedule.ts";
import { type RecomputeOrder, recomputeOrder } from "./recompute.ts";
import { planSpill, Spill } from "./spill.ts";
import type { SpillFile } from "../io/spill_file.ts";

/** The plan options of an engine over `pack`: the caller's options and what the pack's layout fixes. */
function enginePlanOptions(pack: Pack, options: EngineOptions, gemmScratch: number): PlanOptions {
  const { spillFile, ...planned } = options;
  return {
    ...planned,
    spill: spillFile !== undefined,
    format: pack.header.format,
    bf16Scales: pack.header.bf16Scales,
    mlpChunk: pack.layout.mlpChunk,
    gemmScratch,
  };
}

/**
 * The options an engine runs with: the caller's, with the schedule their `budget` (or `target`) buys in
 * MeSP training (`schedule.ts`: which inputs are saved and which forward tensors kept; bitwise the same
 * gradients).
 */
function scheduledOptions(pack: Pack, options: EngineOptions, gemmScratch: number): EngineOptions {
  const o = scheduled(
    pack.config,
    enginePlanOptions(pack, options, gemmScratch),
    options.budget,
    options.target,
  );
  return o.savedInputEvery === options.savedInputEvery && o.savedInputs === options.savedInputs &&
      o.keep === options.keep
    ? options
    : { ...options, savedInputEvery: o.savedInputEvery, savedInputs: o.savedInputs, keep: o.keep };
}

/** Options for {@linkcode Engine.create}. */
export interface EngineOptions
  extends Omit<PlanOptions, "format" | "bf16Scales" | "gemmScratch" | "mlpChunk" | "spill"> {
  /**
   * Spill the saved layer inputs, the adapter and the optimizer's moments to this file, the arena keeping
   * one layer's (MeSP training, f32 saved inputs, the update fused into the backward; `spill.ts`).
   */
  spillFile?: SpillFile;
  /**
   * Arena budget in bytes: in MeSP training (f32 saved inputs) the fastest exact schedule that fits is
   * chosen (`schedule.ts`; `savedInputs`, `savedInputEvery` and `keep` fixed when given); creation fails,
   * showing the plan, if the plan (the smallest schedule's) is larger.
   */
  budget?: number;
  /**
   * Arena bytes to aim at when no `budget` is given (MeSP training, nothing fixed): the fastest exact
   * schedule that fits, or, when none does, the fewest saved inputs recomputing at most one more forward
   * pass (`targetSchedule` in `schedule.ts`); never refused. The CLI's default; without it every input is
   * saved.
   */
  target?: number;
  /** Kernel variant (default: the fastest this runtime validates). */
  variant?: Variant;
  /**
   * Threads for the kernels (default 1). With 2 or more, where the runtime allows it, a worker pool splits
   * GEMMs and row kernels (bitwise the same results); call `e.close()` when done, since live
   * workers keep the process running.
   */
  threads?: number;
  /** Split thresholds of the pool (tests and benchmarks). */
  poolOptions?: Omit<PoolOptions, "threads">;
  /** Collects kernel time by category (benchmarks). */
  profile?: Profile;
  /** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
  kernels?: KernelLocation;
}

/** Descriptors of one linear: the frozen weight and, if adapted, LoRA's A and B. */
export interface LinearRefs {
  /** The frozen weight (attention linears; the MLP's are per chunk, see `WeightStream.chunks`). */
  w?: WeightRef;
  pair?: LoraPair;
  a?: WeightRef;
  b?: WeightRef;
}

/** What makes a plan too large for wasm32 smaller, in the terms of the callers' options and flags. */
function addressHint(o: EngineOptions): string {
  return o.mode === "generate"
    ? `it holds ${o.maxPositions ?? o.seqLen} positions: a shorter prompt or fewer maxTokens (--max-tokens)`
    : `it holds ${o.seqLen} positions, for the longest sequence once cut to seqLen: cut them shorter ` +
      `(seqLen, --seq-len)`;
}

/** Whole-model state over a pack, with LoRA when a layout is given. */
export class Engine {
  readonly cfg: ModelConfig;
  readonly pack: Pack;
  readonly kernels: PooledKernels;
  readonly k: KernelExports;
  readonly arena: Arena;
  readonly gemm: Gemm;
  readonly D: Dims;
  readonly lora?: LoraLayout;
  readonly options: EngineOptions;
  /** f32 and i32 views of the whole linear memory (the memory never grows after creation). */
  readonly F: Float32Array;
  readonly I32: Int32Array;
  /** Byte pointers of the plan's buffers (one the plan lacks throws when read). */
  readonly p: Buffers;
  /** Where each block's tensors go, every layer's (`blocks.ts`). */
  readonly blocks: Blocks;
  /** The frozen weights, streamed into their slots (or resident). */
  readonly weights: WeightStream;
  /** Which layer inputs a training step saves and how its backward recomputes the rest. */
  readonly recompute: RecomputeOrder;
  /** Where the saved inputs, the adapter and its moments live when spilled (the arena holds one layer's). */
  readonly spill?: Spill;
  /** Per-layer descriptors; in streaming mode every layer shares the slot's frozen weights. */
  readonly #linears: Record<Linear, LinearRefs>[] = [];
  readonly #rope: { readonly cos: number; readonly sin: number };

  private constructor(pack: Pack, kernels: PooledKernels, arena: Arena, D: Dims, options: EngineOptions) {
    this.cfg = pack.config;
    this.pack = pack;
    this.kernels = kernels;
    this.k = kernelEntries(kernels, options.profile);
    this.arena = arena;
    this.D = D;
    this.lora = options.lora;
    this.options = options;
    this.recompute = recomputeOrder(D.L, options);
    this.F = new Float32Array(kernels.memory.buffer);
    this.I32 = new Int32Array(kernels.memory.buffer);
    const planned = planBuffers(
      pack.config,
      enginePlanOptions(pack, options, arena.region("gemm.scratch").bytes),
    );
    this.p = bufferPointers(arena.plan, planned.views);
    this.blocks = resolveBlocks(this.p, D, {
      lora: !!options.lora,
      keep: options.keep,
      cache: arena.has("kv.k"),
    });
    this.gemm = new Gemm(kernels.exports, this.p["gemm.scratch"], {
      pool: kernels.pool,
      profile: options.profile,
    });
    this.weights = new WeightStream(pack, kernels.memory.buffer, this.p, D, options.resident ?? false, {
      mlp: options.resident ? 0 : arena.region("weights.mlp").bytes / 2,
      vocab: arena.region("weights.vocab").bytes / 2,
    });
    if (options.spillFile) {
      const layout = planSpill(pack.config, enginePlanOptions(pack, options, 0))!;
      const adamw = options.optimizer === "adamw";
      this.spill = new Spill(options.spillFile, layout, kernels.memory.buffer, {
        x: this.p["act.x"],
        decoded: this.p["saved.decoded"],
        params: this.p["lora.params"],
        m: adamw ? this.p["opt.m"] : 0,
        v: adamw ? this.p["opt.v"] : 0,
      });
    }
    // LoRA descriptors per layer; spilled, every layer's point into the one layer the arena holds
    const attention = this.weights.attention as Partial<Record<Linear, WeightRef>>;
    for (let l = 0; l < D.L; l++) {
      const refs = {} as Record<Linear, LinearRefs>;
      for (const n of LINEARS) {
        const pair = this.lora ? findPair(this.lora, l, n) : undefined;
        const first = this.spill ? l * this.lora!.layerElements * 4 : 0;
        const base = pair ? this.p["lora.params"] - first : 0;
        refs[n] = {
          w: attention[n],
          pair,
          a: pair ? f32Ref(base + pair.a * 4, pair.inDim) : undefined,
          b: pair ? f32Ref(base + pair.b * 4, D.r) : undefined,
        };
      }
      this.#linears.push(refs);
    }
    const cos = this.p["rope"];
    this.#rope = { cos, sin: cos + D.P * (D.hd / 2) * 4 };
    this.#fillRope();
  }

  /** Plans the arena for `pack` and `options`, loads the kernels, lays out memory once. */
  static async create(pack: Pack, options: EngineOptions): Promise<Engine> {
    checkPack(pack, "Engine.create");
    if (!["eval", "generate", "train"].includes(options?.mode)) {
      throw new TypeError(`Engine.create: mode must be "eval", "generate" or "train", got ${options?.mode}`);
    }
    const D = dims(pack.config, enginePlanOptions(pack, options, 0));
    // kernels, the arena laid out once (to the schedule the budget buys), and (threads > 1) the worker pool
    let resolved = options;
    const { kernels, arena } = await startKernels((scratch) => {
      resolved = scheduledOptions(pack, options, scratch);
      const { regions } = planBuffers(pack.config, enginePlanOptions(pack, resolved, scratch));
      // named here, where the cause is known: the plan grows with the positions it holds
      checkAddressable(planMemory(regions), addressHint(options));
      return regions;
    }, options);
    try {
      const e = new Engine(pack, kernels, arena, D, resolved);
      await e.weights.readResident(e.arena.f32("weights.norm"));
      return e;
    } catch (err) {
      kernels.pool?.close();
      throw err;
    }
  }

  /**
   * The memory plan {@linkcode Engine.create} lays out for `options` (with all `threads` granted), without
   * allocating it: what a caller shows, or refuses against a budget, first. Reads the kernels' scratch size
   * and where the arena starts from the wasm bytes, instantiating nothing (`kernelConstants`).
   */
  static async plan(pack: Pack, options: EngineOptions): Promise<MemoryPlan> {
    checkPack(pack, "Engine.plan");
    const kernels = await kernelConstants({ ...options.kernels, variant: options.variant });
    const scratch = kernels.gemmScratchBytes * (options.threads ?? 1);
    const base = Math.ceil(kernels.heapBase / 64) * 64; // where the arena starts (Arena.create)
    const resolved = scheduledOptions(pack, options, scratch);
    return planMemory(planBuffers(pack.config, enginePlanOptions(pack, resolved, scratch)).regions, { base });
  }

  /**
   * The plan options of an engine over `pack` with `options` (all `threads` granted), before the budget's
   * schedule: what `schedule.ts` chooses from.
   */
  static async planOptions(pack: Pack, options: EngineOptions): Promise<PlanOptions> {
    const kernels = await kernelConstants({ ...options.kernels, variant: options.variant });
    return enginePlanOptions(pack, options, kernels.gemmScratchBytes * (options.threads ?? 1));
  }

  /** Stops the kernel workers, if any (live workers keep the process running). Memory views stay valid. */
  close(): void {
    this.kernels.pool?.close();
  }

  /** The schedule this engine runs (which inputs and forward tensors are kept), with its predicted cost. */
  schedule(): Schedule {
    return scheduleOf(
      this.cfg,
      enginePlanOptions(this.pack, this.options, this.arena.region("gemm.scratch").bytes),
    );
  }

  /**
   * Makes layer `l`'s weights and (spilled) adapter the ones in use, before the layer runs; `through`: layers
   * l + 1…through are loaded right after, in order (a remote pack reads them as one response).
   */
  async loadLayer(l: number, through = l): Promise<void> {
    await this.weights.loadLayer(l, through);
    this.spill?.loadAdapter(l);
  }

  /** Descriptors of layer `l`'s linears. */
  refs(l: number): Record<Linear, LinearRefs> {
    return this.#linears[l];
  }

  /** The MLP chunks of a layer (descriptors of the chunk loaded last). */
  get chunks(): readonly MlpChunk[] {
    return this.weights.chunks;
  }

  /** Absolute pointer of a per-layer vector (bias or norm weight) of the layer in use. */
  vec(name: LayerVector): number {
    return this.weights.vec(name);
  }

  /** cos/sin of (position · θ_i) in f64, rounded to f32, for every planned position. */
  #fillRope(): void {
    const { hd, P } = this.D;
    const half = hd / 2;
    const cos = this.p["rope"] / 4, sin = cos + P * half;
    for (let i = 0; i < half; i++) {
      const invFreq = 1 / Math.pow(this.cfg.ropeTheta, (2 * i) / hd);
      for (let pos = 0; pos < P; pos++) {
        this.F[cos + pos * half + i] = Math.cos(pos * invFreq);
        this.F[sin + pos * half + i] = Math.sin(pos * invFreq);
      }
    }
  }

  /** Pointers of the rope tables. */
  rope(): { readonly cos: number; readonly sin: number } {
    return this.#rope;
  }

  /** Linear memory size now (constant after creation). */
  memoryBytes(): number {
    return this.kernels.memory.buffer.byteLength;
  }
}
