/**
 * Checks made before anything is packed, tokenized or loaded, from `config.json` and the flags alone: the
 * predicted whole-process peak against `--max-memory`, and sequence lengths against the model's positions.
 *
 * @module
 */
import type { ModelConfig } from "../model/config.ts";
import { formatMB, formatPlan, type MemoryPlan, planMemory } from "../runtime/arena.ts";
import { kernelConstants, type Variant } from "../runtime/kernels.ts";
import { type PlanOptions, planRegions, type RunMode } from "../engine/plan.ts";
import { scheduled } from "../engine/schedule.ts";
import { runtimeBytes, shownSize } from "./common.ts";

/** The flags of each kind of run that make its plan smaller (a hint must name only flags the command takes). */
const SMALLER: Record<RunMode, string> = {
  train: "--seq-len, --threads 1, --ckpt bf16, --ckpt-every 2, a smaller --vocab-chunk",
  eval: "--seq-len, --threads 1",
  generate: "--max-tokens, a shorter prompt, --threads 1",
};

/**
 * A spilled training keeps every saved input in its file already: `--ckpt bf16` and `--ckpt-every` would end
 * the spill (more memory, not less), so its hint leaves them out.
 */
const SMALLER_SPILLED = "--seq-len, --threads 1, a smaller --vocab-chunk";

/** Plan options without the kernels' scratch (filled in here). */
export type PreflightPlan = Omit<PlanOptions, "gemmScratch">;

/**
 * Refuses a run whose predicted peak (arena + runtime) exceeds `maxMemory`, showing the plan: the same plan
 * the engine lays out (under the schedule the budget buys, `schedule.ts`), so a run that passes this check
 * also passes the engine's. Training and eval plan for their longest sequence once cut to `--seq-len`, known
 * only once the data is tokenized: before that they check `seqLen: 2` (refusing what cannot fit at all),
 * after it the longest sequence's plan, with `longest` saying so.
 */
export async function refuseOverBudget(
  cfg: ModelConfig,
  plan: PreflightPlan,
  maxMemory: number | undefined,
  threads: number,
  variant?: Variant,
  longest?: { seqLen: number },
): Promise<void> {
  const over = await overBudget(cfg, plan, maxMemory, threads, variant);
  if (over === undefined) return;
  throw new Error(
    `memory plan needs ${formatMB(over.peak)} but the budget is ${shownSize(maxMemory!)} (--max-memory), ` +
      (longest
        ? `for the longest sequence (${plan.seqLen} tokens once cut to --seq-len ${longest.seqLen}):\n`
        : `refused before packing or tokenizing (the least any data needs: once tokenized, the longest ` +
          `sequence's plan is checked too):\n`) +
      `${
        formatPlan(over.memory, {
          extra: [{ name: "runtime", bytes: over.runtime, purpose: "Deno, kernels, host heap" }],
        })
      }\n(smaller: ${plan.mode === "train" && plan.spill ? SMALLER_SPILLED : SMALLER[plan.mode]})`,
  );
}

/**
 * The predicted peak of `plan` (arena under the schedule the budget buys, plus the runtime) when it exceeds
 * `maxMemory`; undefined when it fits or no budget is given.
 */
export async function overBudget(
  cfg: ModelConfig,
  plan: PreflightPlan,
  maxMemory: number | undefined,
  threads: number,
  variant?: Variant,
): Promise<{ peak: number; memory: MemoryPlan; runtime: number } | undefined> {
  if (maxMemory === undefined) return undefined;
  const gemmScratch = (await kernelConstants({ variant })).gemmScratchBytes * threads;
  const runtime = runtimeBytes(threads);
  const memory = planMemory(planRegions(cfg, scheduled(cfg, { ...plan, gemmScratch }, maxMemory - runtime)));
  const peak = memory.bytes + runtime;
  return peak <= maxMemory ? undefined : { peak, memory, runtime };
}

/** Whether a pack in `format` keeps bf16 scales (an MLX checkpoint packed into quantized weights). */
export function bf16ScalesOf(cfg: ModelConfig, format: string): boolean {
  return cfg.quantization !== undefined && (format === "q4" || format === "q8");
}

/**
 * The sequence length to use: `value` when it fits the model's positions; a default that does not fit is
 * lowered to the model's limit, a given value that does not fit is refused.
 */
export function fitPositions(flag: string, value: number, given: boolean, cfg: ModelConfig): number {
  const max = cfg.maxPositionEmbeddings;
  if (value <= max) return value;
  if (!given) return max;
  throw new Error(`${flag} ${value} is longer than the model allows (${max} positions)`);
}
