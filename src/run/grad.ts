/**
 * The LoRA gradient of one sequence (batch 1, mean over its trained tokens): what users (and the tests)
 * compare with another framework to check that mesp's gradients are exact.
 *
 * @module
 */
import {
  checkBudget,
  checkOptions,
  checkPositions,
  checkSequences,
  GRAD_OPTIONS,
  LORA_OPTIONS,
} from "./run_options.ts";
import { Engine } from "../engine/engine.ts";
import { Backward } from "../engine/backward.ts";
import { forwardBackward } from "../engine/step.ts";
import { DEFAULT_ZO_EPS, stepSeed, zoEstimate } from "../engine/mezo.ts";
import { meanSequenceLoss } from "../engine/sequence_loss.ts";
import { type OpenedAdapter, readAdapterInto } from "../engine/adapter.ts";
import { type LoraLayout, loraLayout, type LoraOptions } from "../engine/lora.ts";
import type { Method } from "../engine/plan.ts";
import { checkPack, type Pack } from "../model/pack.ts";
import type { KernelLocation, Variant } from "../runtime/kernels.ts";
import type { Sequence } from "../data/sequence.ts";
import { initLora } from "../engine/lora_init.ts";

/** Options of {@linkcode computeGradients}. */
export interface GradOptions {
  method?: Method;
  /** Adapter to differentiate at (default: a fresh PEFT initialisation from `lora` and `seed`). */
  adapter?: OpenedAdapter;
  lora?: LoraOptions;
  seed?: number;
  /** MeZO's perturbation scale ε (default 1e-3). */
  zoEps?: number;
  seqLen?: number;
  /** Saved layer inputs in f32 (default, exact) or bf16. */
  savedInputDtype?: "f32" | "bf16";
  /** Save every k-th layer's input (default 1), or `savedInputs` of them (see `EngineOptions`). */
  savedInputEvery?: number;
  savedInputs?: number;
  /** @deprecated Renamed {@linkcode savedInputDtype}; this name goes in the next release. */
  ckptDtype?: "f32" | "bf16";
  /** @deprecated Renamed {@linkcode savedInputEvery}; this name goes in the next release. */
  ckptEvery?: number;
  /** Arena budget (refused when nothing fits) or target (never refused), as in `EngineOptions`. */
  budget?: number;
  target?: number;
  variant?: Variant;
  /** Kernel threads (default 1); results are bitwise the same for any count. */
  threads?: number;
  /** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
  kernels?: KernelLocation;
}

/** Loss and gradients, laid out like the parameters. */
export interface GradResult {
  layout: LoraLayout;
  loss: number;
  tokens: number;
  params: Float32Array;
  /** The gradient (MeZO: its estimate coeff · z). */
  grads: Float32Array;
  /** MeZO's projected gradient (L+ − L−)/(2ε). */
  coeff?: number;
}

/** dLoss/dθ for every LoRA parameter θ on one sequence. */
export async function computeGradients(
  pack: Pack,
  seq: Sequence,
  options: GradOptions = {},
): Promise<GradResult> {
  checkPack(pack, "computeGradients");
  checkOptions("computeGradients options", options, GRAD_OPTIONS);
  if (options.lora) checkOptions("computeGradients options.lora", options.lora, LORA_OPTIONS);
  checkBudget("computeGradients options", options.budget);
  checkBudget("computeGradients options", options.target, "target");
  const method = options.method ?? "mesp";
  const layout = loraLayout(pack.config, options.adapter?.config ?? options.lora ?? {});
  checkSequences("computeGradients", [seq], options.seqLen ?? Infinity, "each", pack.config.vocabSize);
  const T = Math.min(seq.ids.length, options.seqLen ?? seq.ids.length);
  if (T < 2) throw new Error("the sequence needs at least 2 tokens");
  checkPositions("computeGradients", "the sequence", T, pack.config.maxPositionEmbeddings);
  const e = await Engine.create(pack, {
    mode: "train",
    method,
    seqLen: T,
    lora: layout,
    gradBuffer: true,
    savedInputDtype: options.savedInputDtype ?? options.ckptDtype,
    savedInputEvery: options.savedInputEvery ?? options.ckptEvery,
    savedInputs: options.savedInputs,
    budget: options.budget,
    target: options.target,
    variant: options.variant,
    threads: options.threads,
    kernels: options.kernels,
  });
  try {
    const params = e.arena.f32("lora.params");
    if (options.adapter) await readAdapterInto(options.adapter, layout, params);
    else initLora(layout, params, options.seed ?? 0);
    const grads = e.arena.f32("lora.grad");
    if (method === "mezo") {
      // the two-point estimate (L+ − L−)/(2ε) · z for the step-0 direction of `seed`
      const zs = stepSeed(options.seed ?? 0, 0);
      const est = await zoEstimate(e, [seq], T, zs, options.zoEps ?? DEFAULT_ZO_EPS);
      e.k.normal_fill(e.p["lora.grad"], layout.totalElements, zs, 0);
      e.k.scale(e.p["lora.grad"], est.coeff, layout.totalElements);
      const loss = (await meanSequenceLoss(e, seq.ids, seq.targets, T)).loss;
      return {
        layout,
        loss,
        tokens: est.tokens,
        params: params.slice(),
        grads: grads.slice(),
        coeff: est.coeff,
      };
    }
    const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false }, {
      mebp: method === "mebp",
    });
    const { loss, tokens } = await forwardBackward(e, bw, seq.ids, seq.targets, T);
    return { layout, loss, tokens, params: params.slice(), grads: grads.slice() };
  } finally {
    e.close();
  }
}
