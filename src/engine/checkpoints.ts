/**
 * Layer checkpoints: the inputs the forward pass keeps for the backward pass to recompute each layer from,
 * in f32 (exact) or bf16 (half the memory). With `ckptEvery` k > 1 only every k-th layer's input is kept; the
 * backward recomputes the others segment by segment into k − 1 spare slots (less memory, one more forward
 * through k − 1 of every k layers). Region `ckpt` holds the slots back to back.
 *
 * @module
 */
import { DTYPE } from "../runtime/kernels.ts";
import type { Engine } from "./engine.ts";

/** The slot of layer `l`'s input: its segment's kept slot, or one of the spares after them. */
export function checkpointSlot(e: Engine, l: number): number {
  const k = e.options.ckptEvery ?? 1;
  return l % k === 0 ? l / k : Math.ceil(e.D.L / k) + (l % k) - 1;
}

/** Keeps layer `l`'s input (the residual stream `act.x`, rows [0, T)) in its slot. */
export function storeCheckpoint(e: Engine, l: number, T: number): void {
  const n = T * e.D.d, x = e.p["act.x"], at = e.p["ckpt"], s = checkpointSlot(e, l);
  if (e.options.ckptDtype === "bf16") e.k.f32_to_bf16(at + s * n * 2, x, n);
  else e.F.copyWithin((at >> 2) + s * n, x >> 2, (x >> 2) + n);
}

/** Puts layer `l`'s kept input back into the residual stream `act.x` (rows [0, T)). */
export function restoreCheckpoint(e: Engine, l: number, T: number): void {
  const n = T * e.D.d, at = e.p["ckpt"], s = checkpointSlot(e, l), x = e.p["act.x"];
  if (e.options.ckptDtype === "bf16") e.k.decode_row(DTYPE.bf16, at + s * n * 2, n, 0, 0, 0, 0, n, x);
  else e.F.copyWithin(x >> 2, (at >> 2) + s * n, (at >> 2) + s * n + n);
}

/**
 * Layer `l`'s input as f32 `[T, d]`: the f32 slot itself (no copy), or the bf16 slot decoded into
 * `ckpt.decoded`.
 */
export function checkpointInput(e: Engine, l: number, T: number): number {
  const n = T * e.D.d, at = e.p["ckpt"], s = checkpointSlot(e, l);
  if (e.options.ckptDtype !== "bf16") return at + s * n * 4;
  const dst = e.p["ckpt.decoded"];
  e.k.decode_row(DTYPE.bf16, at + s * n * 2, n, 0, 0, 0, 0, n, dst);
  return dst;
}
