/**
 * Saved inputs: the layer inputs the forward pass saves for the backward pass to recompute each layer from,
 * in f32 (exact) or bf16 (half the memory). Region `saved` holds `[T, d]` slots back to back, or, spilled,
 * the spill file does (`spill.ts`); which layer's input is in which slot, and when, is the step's recompute
 * order (`recompute.ts`).
 *
 * @module
 */
import { DTYPE } from "../runtime/kernels.ts";
import type { Engine } from "./engine.ts";

/** Saves the residual stream `act.x` (rows [0, T)) in slot `slot`. */
export function saveInput(e: Engine, slot: number, T: number): void {
  if (e.spill) return e.spill.saveInput(slot);
  const n = T * e.D.d, x = e.p["act.x"], at = e.p["saved"];
  if (e.options.savedInputDtype === "bf16") e.k.f32_to_bf16(at + slot * n * 2, x, n);
  else e.F.copyWithin((at >>> 2) + slot * n, x >>> 2, (x >>> 2) + n);
}

/** Puts the input saved in slot `slot` back into the residual stream `act.x` (rows [0, T)). */
export function restoreInput(e: Engine, slot: number, T: number): void {
  if (e.spill) return e.spill.restoreInput(slot);
  const n = T * e.D.d, at = e.p["saved"], x = e.p["act.x"];
  if (e.options.savedInputDtype === "bf16") {
    e.k.decode_row(DTYPE.bf16, at + slot * n * 2, n, 0, 0, 0, 0, n, x);
  } else e.F.copyWithin(x >>> 2, (at >>> 2) + slot * n, (at >>> 2) + slot * n + n);
}

/**
 * The input saved in slot `slot` as f32 `[T, d]`: the f32 slot itself (no copy), or the bf16 slot decoded
 * (or the spilled one read) into `saved.decoded`.
 */
export function savedInput(e: Engine, slot: number, T: number): number {
  if (e.spill) {
    e.spill.readInput(slot);
    return e.p["saved.decoded"];
  }
  const n = T * e.D.d, at = e.p["saved"];
  if (e.options.savedInputDtype !== "bf16") return at + slot * n * 4;
  const dst = e.p["saved.decoded"];
  e.k.decode_row(DTYPE.bf16, at + slot * n * 2, n, 0, 0, 0, 0, n, dst);
  return dst;
}
