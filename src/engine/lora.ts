/**
 * LoRA adapters: which linears carry one, their rank and scale, where each A and B lives in one flat f32
 * parameter region, and the PEFT tensor names they are saved under (docs/formats.md).
 *
 * A is `[r, in]`, B is `[out, r]`, `y = x Wᵀ + b + s·(x Aᵀ) Bᵀ` with `s = alpha / r` (rsLoRA:
 * `alpha / √r`).
 *
 * @module
 */
import type { ModelConfig } from "../model/config.ts";
import { type Linear, LINEAR_PREFIX, LINEARS, linearShape } from "../model/qwen2.ts";

/** LoRA hyper-parameters. */
export interface LoraOptions {
  /** Rank r (default 8). */
  rank?: number;
  /** Alpha (default 2·rank, as many recipes use; PEFT's own default is 8). */
  alpha?: number;
  /** Scale by alpha/√r instead of alpha/r. */
  rslora?: boolean;
  /** Which linears get an adapter (default all seven). Short names `q`, `gate` … are accepted. */
  targets?: readonly string[];
}

/** One adapter matrix pair of one layer, with byte offsets into the parameter region. */
export interface LoraPair {
  layer: number;
  target: Linear;
  inDim: number;
  outDim: number;
  /** Offsets in f32 elements from the start of the parameter region. */
  a: number;
  b: number;
}

/** The resolved adapter layout. */
export interface LoraLayout {
  rank: number;
  alpha: number;
  rslora: boolean;
  scale: number;
  targets: Linear[];
  /** pairs[layer][i] for targets[i]. */
  pairs: LoraPair[][];
  /** Elements of one layer's parameters, and of all layers. */
  layerElements: number;
  totalElements: number;
}

const SHORT: Record<string, Linear> = {
  q: "q_proj",
  k: "k_proj",
  v: "v_proj",
  o: "o_proj",
  gate: "gate_proj",
  up: "up_proj",
  down: "down_proj",
};

/** Resolves target names (`q`, `q_proj`, `all`, `all-linear`) to linears in canonical order. */
export function resolveTargets(targets: readonly string[] | undefined): Linear[] {
  if (!targets) return [...LINEARS];
  // an empty list is a mistake (a filter that kept nothing), not "all": that is leaving it out, or ["all"]
  if (targets.length === 0) {
    throw new Error('LoRA targets: the list is empty (leave it out, or ["all"], for all)');
  }
  const set = new Set<Linear>();
  for (const t of targets) {
    if (t === "all" || t === "all-linear") {
      LINEARS.forEach((l) => set.add(l));
      continue;
    }
    const name: Linear | undefined = SHORT[t] ??
      ((LINEARS as readonly string[]).includes(t) ? t as Linear : undefined);
    if (!name) {
      throw new Error(`unknown LoRA target "${t}" (choose from ${Object.keys(SHORT).join(", ")}, or all)`);
    }
    set.add(name);
  }
  return LINEARS.filter((l) => set.has(l));
}

/** Lays out the adapter parameters of every layer: per layer, per target, A then B. */
export function loraLayout(cfg: ModelConfig, options: LoraOptions = {}): LoraLayout {
  const rank = options.rank ?? 8;
  if (!Number.isInteger(rank) || rank < 1) {
    throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
  }
  const alpha = options.alpha ?? 2 * rank;
  if (!(alpha > 0)) throw new Error(`LoRA alpha must be positive, got ${alpha}`);
  const rslora = options.rslora ?? false;
  const targets = resolveTargets(options.targets);
  const pairs: LoraPair[][] = [];
  let at = 0;
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    const row: LoraPair[] = [];
    for (const target of targets) {
      const [outDim, inDim] = linearShape(cfg, target);
      row.push({ layer, target, inDim, outDim, a: at, b: at + rank * inDim });
      at += rank * (inDim + outDim);
    }
    pairs.push(row);
  }
  return {
    rank,
    alpha,
    rslora,
    scale: rslora ? alpha / Math.sqrt(rank) : alpha / rank,
    targets,
    pairs,
    layerElements: cfg.numLayers ? at / cfg.numLayers : 0,
    totalElements: at,
  };
}

/** The adapter of `target` in `layer`, if that linear has one. */
export function findPair(layout: LoraLayout, layer: number, target: Linear): LoraPair | undefined {
  return layout.pairs[layer].find((p) => p.target === target);
}

/** PEFT's saved name of a pair's A or B, e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. */
export function peftName(pair: LoraPair, which: "A" | "B"): string {
  return `base_model.model.model.layers.${pair.layer}.${LINEAR_PREFIX[pair.target]}.lora_${which}.weight`;
}

/** Parses a PEFT tensor name into (layer, target, A|B), or undefined if it is not one of ours. */
export function parsePeftName(name: string): { layer: number; target: Linear; which: "A" | "B" } | undefined {
  const m =
    /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$/
      .exec(name);
  if (!m) return undefined;
  const target = m[3] as Linear;
  if (!LINEARS.includes(target) || LINEAR_PREFIX[target] !== `${m[2]}.${target}`) return undefined;
  return { layer: Number(m[1]), target, which: m[4] as "A" | "B" };
}
