/**
 * One exact gradient computation over a sequence: forward keeping each layer's input, the loss, the loss
 * backward, then each layer's backward from `L−1` to 0 with its forward recomputed (layer checkpointing).
 *
 * @module
 */
import type { Backward } from "./backward.ts";
import { storeCheckpoint } from "./checkpoints.ts";
import type { Engine } from "./engine.ts";

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
  const { L } = e.D;
  if (T > e.D.T) throw new Error(`sequence of ${T} tokens is longer than the plan's ${e.D.T}`);
  await e.embed(ids, T);
  for (let l = 0; l < L; l++) {
    storeCheckpoint(e, l, T);
    await e.loadLayer(l);
    await e.layerForward(l, T);
  }
  e.finalNorm(T);
  const tokens = e.setTargets(ids, trained, T);
  if (tokens === 0) throw new Error("the sequence has no trained tokens");
  await bw.lossForwardBackward(T);
  const { sum } = e.lossSum(T);
  for (let l = L - 1; l >= 0; l--) {
    await e.loadLayer(l);
    await bw.layerBackward(l, T);
    afterLayer?.(l);
  }
  return { loss: sum / tokens, tokens };
}
