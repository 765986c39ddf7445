/**
 * One exact gradient computation over a sequence: forward keeping each layer's input (or every k-th), the
 * loss and its backward, then each layer's backward from `L−1` to 0 with its forward recomputed (layer
 * checkpointing).
 *
 * @module
 */
import type { Backward } from "./backward.ts";
import { restoreCheckpoint, storeCheckpoint } from "./checkpoints.ts";
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
  const { L } = e.D, k = e.options.ckptEvery ?? 1;
  if (T > e.D.T) throw new Error(`sequence of ${T} tokens is longer than the plan's ${e.D.T}`);
  await embed(e, ids, T);
  for (let l = 0; l < L; l++) {
    if (l % k === 0) storeCheckpoint(e, l, T);
    await e.weights.loadLayer(l);
    await trainingLayerForward(e, l, T);
  }
  finalNorm(e, T);
  const tokens = setTargets(e, ids, trained, T);
  if (tokens === 0) throw new Error("the sequence has no trained tokens");
  await lossForwardBackward(e, T);
  const { sum } = lossSum(e, T);
  for (let l0 = Math.floor((L - 1) / k) * k; l0 >= 0; l0 -= k) {
    const l1 = Math.min(L, l0 + k);
    // the segment's other inputs, recomputed from its kept one (the gradient in grad.x is untouched)
    if (l1 - l0 > 1) {
      restoreCheckpoint(e, l0, T);
      for (let l = l0; l < l1 - 1; l++) {
        await e.weights.loadLayer(l);
        await layerForward(e, l, T);
        storeCheckpoint(e, l + 1, T);
      }
    }
    for (let l = l1 - 1; l >= l0; l--) {
      await e.weights.loadLayer(l);
      await bw.layerBackward(l, T);
      afterLayer?.(l);
    }
  }
  return { loss: sum / tokens, tokens };
}
