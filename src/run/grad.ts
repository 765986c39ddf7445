/**
 * The LoRA gradient of one sequence (batch 1, mean over its trained tokens): what users (and the tests)
 * compare with another framework to check that mesp's gradients are exact.
 *
 * @module
 */
import { Engine } from "../engine/engine.ts";
import { Backward } from "../engine/backward.ts";
import { forwardBackward } from "../engine/step.ts";
import { type OpenedAdapter, readAdapterInto } from "../engine/adapter.ts";
import { type LoraLayout, loraLayout, type LoraOptions } from "../engine/lora.ts";
import type { Method } from "../engine/plan.ts";
import type { Pack } from "../model/pack.ts";
import type { Variant } from "../runtime/kernels.ts";
import type { Sequence } from "./evaluate.ts";
import { initLora } from "./train.ts";

/** Options of {@linkcode computeGradients}. */
export interface GradOptions {
  method?: Method;
  /** Adapter to differentiate at (default: a fresh PEFT initialisation from `lora` and `seed`). */
  adapter?: OpenedAdapter;
  lora?: LoraOptions;
  seed?: number;
  seqLen?: number;
  /** Layer checkpoints in f32 (default, exact) or bf16. */
  ckptDtype?: "f32" | "bf16";
  budget?: number;
  variant?: Variant;
}

/** Loss and gradients, laid out like the parameters. */
export interface GradResult {
  layout: LoraLayout;
  loss: number;
  tokens: number;
  params: Float32Array;
  grads: Float32Array;
}

/** dLoss/dθ for every LoRA parameter θ on one sequence. */
export async function computeGradients(
  pack: Pack,
  seq: Sequence,
  options: GradOptions = {},
): Promise<GradResult> {
  const method = options.method ?? "mesp";
  if (method !== "mesp") throw new Error(`method "${method}" is not available yet`);
  const layout = loraLayout(pack.config, options.adapter?.config ?? options.lora ?? {});
  const T = Math.min(seq.ids.length, options.seqLen ?? seq.ids.length);
  if (T < 2) throw new Error("the sequence needs at least 2 tokens");
  const e = await Engine.create(pack, {
    mode: "train",
    seqLen: T,
    lora: layout,
    gradBuffer: true,
    ckptDtype: options.ckptDtype,
    budget: options.budget,
    variant: options.variant,
  });
  const params = e.arena.f32("lora.params");
  if (options.adapter) await readAdapterInto(options.adapter, layout, params);
  else initLora(layout, params, options.seed ?? 0);
  const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false });
  const { loss, tokens } = await forwardBackward(e, bw, seq.ids, seq.targets, T);
  return { layout, loss, tokens, params: params.slice(), grads: e.arena.f32("lora.grad").slice() };
}
