/**
 * Optimizers over the flat LoRA parameter region: SGD (the MeSP paper's) and AdamW (decoupled weight decay,
 * as torch.optim.AdamW), with a constant or warmup + cosine learning-rate schedule. Updates run on any range
 * of parameters, so a layer can be updated right after its backward (the fused update) or the whole model
 * after gradient accumulation.
 *
 * @module
 */
import type { KernelExports } from "../runtime/kernels.ts";
import type { OptimizerName } from "./plan.ts";

/**
 * The optimizer a run takes when none is named (the CLI's too): AdamW, or SGD for MeZO, which updates with
 * SGD only.
 */
export function defaultOptimizer(method?: string): OptimizerName {
  return method === "mezo" ? "sgd" : "adamw";
}

/** The peak learning rate a run takes when none is given (the CLI's too): 2e-4 AdamW, 1e-4 SGD, 5e-5 MeZO. */
export function defaultLr(name: OptimizerName, method?: string): number {
  return method === "mezo" ? 5e-5 : name === "adamw" ? 2e-4 : 1e-4;
}

/** The schedule a run takes when none is named (the CLI's too). */
export const DEFAULT_SCHEDULE: "constant" | "cosine" = "cosine";

/** The optional hyper-parameters' values when left out. */
export const OPTIMIZER_DEFAULTS = Object.freeze({
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  warmup: 0,
});

/** Optimizer hyper-parameters. */
export interface OptimizerOptions {
  name: OptimizerName;
  /** Peak learning rate. */
  lr: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /**
   * "constant" or "cosine" (linear warmup then cosine decay to 0 at the last step, like HF); default
   * {@linkcode DEFAULT_SCHEDULE}.
   */
  schedule?: "constant" | "cosine";
  warmup?: number;
  /** Total optimizer steps (for the cosine schedule). */
  totalSteps?: number;
}

/** Learning rate at optimizer step `step` (0-based). */
export function learningRate(o: OptimizerOptions, step: number): number {
  const warmup = o.warmup ?? OPTIMIZER_DEFAULTS.warmup;
  if (warmup > 0 && step < warmup) return (o.lr * (step + 1)) / warmup;
  if ((o.schedule ?? DEFAULT_SCHEDULE) === "constant") return o.lr;
  const total = Math.max(o.totalSteps ?? 1, warmup + 1);
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return o.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Applies one optimizer step to parameter ranges. */
export class Optimizer {
  readonly options: OptimizerOptions;
  readonly #k: KernelExports;
  readonly #params: number;
  readonly #m: number;
  readonly #v: number;

  /** `params`, `m`, `v` are byte offsets of the parameter region and (AdamW) the moment regions. */
  constructor(k: KernelExports, options: OptimizerOptions, params: number, m = 0, v = 0) {
    if (!(options.lr >= 0)) throw new Error(`learning rate must be ≥ 0, got ${options.lr}`);
    if (options.name === "adamw" && (!m || !v)) throw new Error("AdamW needs its moment regions in the plan");
    this.options = options;
    this.#k = k;
    this.#params = params;
    this.#m = m;
    this.#v = v;
  }

  /**
   * Updates parameters [off, off + n) (element offsets) from gradients at byte pointer `grad`, scaled by
   * `gradScale` first when it is not 1 (clipping), at optimizer step `step` (0-based).
   */
  update(off: number, n: number, grad: number, step: number, gradScale = 1): void {
    const o = this.options, k = this.#k;
    if (gradScale !== 1) k.scale(grad, gradScale, n);
    const lr = learningRate(o, step);
    const p = this.#params + off * 4;
    if (o.name === "sgd") {
      k.sgd_update(p, grad, n, lr, o.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay);
      return;
    }
    const b1 = o.beta1 ?? OPTIMIZER_DEFAULTS.beta1, b2 = o.beta2 ?? OPTIMIZER_DEFAULTS.beta2;
    const t = step + 1;
    k.adamw_update(
      p,
      grad,
      this.#m + off * 4,
      this.#v + off * 4,
      n,
      lr,
      b1,
      b2,
      o.eps ?? OPTIMIZER_DEFAULTS.eps,
      o.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay,
      1 - b1 ** t,
      1 - b2 ** t,
    );
  }
}
