/**
 * Layer checkpoints: the input of every layer, kept by the forward pass for the backward pass to recompute
 * the layer from — in f32 (exact) or bf16 (half the memory). Region `ckpt` holds them back to back.
 *
 * @module
 */
import { DTYPE } from "../runtime/kernels.ts";
import type { Engine } from "./engine.ts";

/** Keeps layer `l`'s input (the residual stream `act.x`, rows [0, T)) in its checkpoint. */
export function storeCheckpoint(e: Engine, l: number, T: number): void {
  const n = T * e.D.d, x = e.p["act.x"], ckpt = e.p["ckpt"];
  if (e.options.ckptDtype === "bf16") e.k.f32_to_bf16(ckpt + l * n * 2, x, n);
  else e.F.copyWithin((ckpt >> 2) + l * n, x >> 2, (x >> 2) + n);
}

/**
 * Layer `l`'s input as f32: the f32 checkpoint itself (no copy, `dst` unused), or the bf16 checkpoint
 * decoded into `dst` ([T, d]). With `copy`, an f32 checkpoint is copied into `dst` too.
 */
export function loadCheckpoint(e: Engine, l: number, T: number, dst: number, copy = false): number {
  const n = T * e.D.d, ckpt = e.p["ckpt"];
  if (e.options.ckptDtype === "bf16") {
    e.k.decode_row(DTYPE.bf16, ckpt + l * n * 2, n, 0, 0, 0, 0, n, dst);
    return dst;
  }
  const src = ckpt + l * n * 4;
  if (!copy) return src;
  e.F.copyWithin(dst >> 2, src >> 2, (src >> 2) + n);
  return dst;
}
