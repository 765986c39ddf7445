/**
 * One exact gradient computation over a sequence: the forward saving the layer inputs the engine's recompute
 * order says (`recompute.ts`), the loss and its backward, then each layer's backward from `L−1` to 0 with its
 * forward recomputed, the inputs not saved recomputed from saved ones on the way.
 *
 * @module
 */
import type { Backward } from "./backward.ts";
import { restoreInput, saveInput } from "./saved_inputs.ts";
import type { Engine } from "./engine.ts";
import { embed, finalNorm, layerForward } from "./forward.ts";
import { trainingLayerForward } from "./kept.ts";
import { lossForwardBackward, lossSum, setTargets } from "./loss.ts";

/** Loss of a forward/backward pass. */
export interface StepLoss {
  /** Mean next-token loss over the trained positions. */
  loss: number;
  /** Trained positions. */
  tokens: number;
}

/**
 * Forward and backward of `ids[0..T)` with targets where `trained[t]` is set (all positions 1…T−1 when
 * omitted). LoRA gradients land in the backward's sink; `afterLayer(l)` runs right after layer `l`'s
 * gradients are complete (the fused optimizer update hooks in here).
 */
export async function forwardBackward(
  e: Engine,
  bw: Backward,
  ids: ArrayLike<number>,
  trained: ArrayLike<number> | undefined,
  T: number,
  afterLayer?: (l: number) => void,
): Promise<StepLoss> {
  const { L } = e.D, order = e.recompute;
  if (T > e.D.T) throw new Error(`sequence of ${T} tokens is longer than the plan's ${e.D.T}`);
  await embed(e, ids, T);
  for (let l = 0; l < L; l++) {
    if (order.saveAt[l] >= 0) saveInput(e, order.saveAt[l], T);
    await e.loadLayer(l, L - 1);
    await trainingLayerForward(e, l, T);
  }
  finalNorm(e, T);
  const tokens = setTargets(e, ids, trained, T);
  if (tokens === 0) throw new Error("the sequence has no trained tokens");
  await lossForwardBackward(e, T);
  const { sum } = lossSum(e, T);
  // the gradient in grad.x is untouched by the recomputing forwards
  for (let i = 0; i < order.backward.length; i++) {
    const s = order.backward[i];
    if (s.kind === "restore") restoreInput(e, s.slot, T);
    else if (s.kind === "save") saveInput(e, s.slot, T);
    else {
      await e.loadLayer(s.layer, order.through[i]);
      if (s.kind === "forward") await layerForward(e, s.layer, T);
      else {
        await bw.layerBackward(s.layer, T, s.slot);
        afterLayer?.(s.layer);
      }
    }
  }
  return { loss: sum / tokens, tokens };
}
