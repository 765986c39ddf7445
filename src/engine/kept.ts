/**
 * The training forward under a budget schedule (`schedule.ts`): each layer writes what the schedule keeps
 * for its backward (`blocks.ts`: the MLP's gate and up, or the attention tensors and the MLP's input) where
 * its working buffers would have been. The backward reads them instead of recomputing. Same kernels, same
 * operands: the gradients are bitwise MeSP's.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { attentionForward, mlpForward } from "./forward.ts";

/**
 * Layer `l` of the training forward: `layerForward` with the schedule's kept tensors written where they
 * are kept (keys, values and the rest of a kept attention block in its slot, then x2 copied there).
 */
export async function trainingLayerForward(e: Engine, l: number, T: number): Promise<void> {
  const b = e.blocks, kept = b.keptAttention[l], p = e.p;
  attentionForward(e, l, T, 0, kept?.kv ?? b.kv[l], kept?.buffers ?? b.attention);
  if (kept) e.F.copyWithin(kept.x2 >>> 2, p["act.x"] >>> 2, (p["act.x"] >>> 2) + T * e.D.d);
  await mlpForward(e, l, T, b.keptMlp[l] ?? b.mlp);
}
