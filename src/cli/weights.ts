/**
 * Which weights a command runs on, said out loud: training (and `grad`, `plan`) default to q4 — the MeSP
 * paper's setting, a quarter of bf16's memory — while `eval` and `generate` default to the checkpoint's own
 * precision, so a loss or a completion is the model's and not a re-quantization's; with an adapter whose run
 * recorded its weights (train's `--out`), they take those, since the adapter was fitted to that base. A model
 * whose dimensions q4/q8 cannot group (not multiples of 64) falls back to the nearest float format, with a
 * notice.
 *
 * @module
 */
import type { ModelConfig } from "../model/config.ts";
import { GROUP, type PackFormat } from "../model/pack_layout.ts";

/**
 * What a command takes when `--weights` is not given: q4, the checkpoint's own precision, or the weights an
 * adapter was trained on.
 */
export type WeightsDefault = "q4" | "checkpoint" | TrainedOn;

/** The weights an adapter's training run recorded, and the file that records them. */
export interface TrainedOn {
  format: PackFormat;
  recordedIn: string;
}

const NAMES: Record<PackFormat, string> = {
  q4: "q4 (MLX affine 4-bit, group 64)",
  q8: "q8 (MLX affine 8-bit, group 64)",
  bf16: "bf16",
  f16: "f16",
  f32: "f32",
};

/** The format closest to what the checkpoint stores: its MLX bits, else its float dtype (bf16 if unnamed). */
export function checkpointFormat(cfg: ModelConfig): PackFormat {
  const bits = cfg.quantization?.bits;
  if (bits === 4) return "q4";
  if (bits === 8) return "q8";
  if (cfg.dtype === "float32") return "f32";
  if (cfg.dtype === "float16") return "f16";
  return "bf16";
}

/** The first input dimension q4/q8 cannot split into groups of 64, if any. */
export function ungroupableDim(cfg: ModelConfig): number | undefined {
  return [cfg.hiddenSize, cfg.numHeads * cfg.headDim, cfg.intermediateSize].find((d) => d % GROUP !== 0);
}

/** The format to run on and the line that says so. */
export interface WeightsChoice {
  format: PackFormat;
  line: string;
}

/**
 * The format to run on and the line that says so. `flagName` says where `flag` came from (a resumed run
 * takes the format it recorded, not a typed `--weights`).
 */
export function chooseWeights(
  cfg: ModelConfig,
  flag: string | undefined,
  fallback: WeightsDefault,
  flagName = "--weights",
): WeightsChoice {
  const own = checkpointFormat(cfg);
  const wanted = (flag as PackFormat | undefined) ??
    (fallback === "q4" ? "q4" : fallback === "checkpoint" ? own : fallback.format);
  const stored = `the checkpoint stores ${own}`;
  const bad = ungroupableDim(cfg);
  if ((wanted === "q4" || wanted === "q8") && bad !== undefined) {
    const format: PackFormat = own === "f32" || own === "f16" ? own : "bf16";
    return {
      format,
      line: `weights: ${NAMES[format]} — ${wanted} needs input dimensions that are multiples of ${GROUP} ` +
        `and this model has ${bad}, so the nearest format that works is used (${stored})`,
    };
  }
  const why = flag !== undefined
    ? `${flagName}; ${stored}`
    : fallback === "q4"
    ? "the default for training, as in the MeSP paper; --weights bf16|f32 to train on other weights; " +
      stored
    : fallback === "checkpoint"
    ? "the checkpoint's own precision; --weights to choose another"
    : `what the adapter was trained on, recorded in ${fallback.recordedIn}; --weights to choose another; ${stored}`;
  return { format: wanted, line: `weights: ${NAMES[wanted]} (${why})` };
}
