/**
 * MeZO (Malladi et al. 2023), the zeroth-order baseline: forward passes only. For a step with seed s,
 * every LoRA parameter is perturbed by ε·z with z ~ N(0, 1) regenerated from (s, index) inside the kernel
 * (never stored), the loss is evaluated at θ + εz and θ − εz, θ is restored, and the projected gradient
 * g = (L+ − L−)/(2ε) scales z in the update θ −= lr·(g·z + wd·θ). Memory is inference memory plus the seed.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { meanSequenceLoss } from "./sequence_loss.ts";
import type { Sequence } from "../data/sequence.ts";

/** The two-point estimate of one step. */
export interface ZoEstimate {
  lossPlus: number;
  lossMinus: number;
  /** Projected gradient (L+ − L−)/(2ε): the estimate is coeff · z. */
  coeff: number;
  tokens: number;
}

/** MeZO's default perturbation scale ε (the MeZO paper's). */
export const DEFAULT_ZO_EPS = 1e-3;

/**
 * Evaluates L(θ + εz) and L(θ − εz) over `batch` (mean of the sequences' losses) and restores θ.
 * `z` is the counter-based normal stream of `seed`, indexed by the parameter's position in `lora.params`.
 */
export async function zoEstimate(
  e: Engine,
  batch: readonly Sequence[],
  seqLen: number,
  seed: number,
  eps: number,
): Promise<ZoEstimate> {
  const p = e.p["lora.params"], n = e.lora!.totalElements;
  const mean = async () => {
    let loss = 0, tokens = 0;
    for (const s of batch) {
      const r = await meanSequenceLoss(e, s.ids, s.targets, Math.min(s.ids.length, seqLen));
      loss += r.loss / batch.length;
      tokens += r.tokens;
    }
    return { loss, tokens };
  };
  e.k.zo_perturb(p, n, seed, 0, eps);
  const plus = await mean();
  e.k.zo_perturb(p, n, seed, 0, -2 * eps);
  const minus = await mean();
  e.k.zo_perturb(p, n, seed, 0, eps);
  return {
    lossPlus: plus.loss,
    lossMinus: minus.loss,
    coeff: (plus.loss - minus.loss) / (2 * eps),
    tokens: plus.tokens,
  };
}

/** θ −= lr·(coeff·z + wd·θ), regenerating z from `seed`. */
export function zoUpdate(e: Engine, seed: number, coeff: number, lr: number, weightDecay: number): void {
  e.k.zo_update(e.p["lora.params"], e.lora!.totalElements, seed, 0, coeff, lr, weightDecay);
}

/** The u32 seed of step `step` of a run seeded `seed`. */
export function stepSeed(seed: number, step: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}
