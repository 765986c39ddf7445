/**
 * The Qwen2 architecture (`Qwen2ForCausalLM`): what a decoder layer is made of — its seven linears and their
 * shapes, the q/k/v biases, the two RMSNorms — and the checkpoint's tensor names for them. The weight pack,
 * the LoRA layout, the engine's plan and the random checkpoints all read it from here.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/** The seven linear layers of a Qwen2 decoder layer, in the order they are stored. */
export const LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
/** Name of a decoder-layer linear. */
export type Linear = typeof LINEARS[number];

/** The attention linears, stored together at the start of a layer's blob. */
export const ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"] as const;
/** Name of an attention linear. */
export type AttentionLinear = typeof ATTENTION[number];

/** Shape [out, in] of each linear. */
export function linearShape(cfg: ModelConfig, name: Linear): [number, number] {
  const d = cfg.hiddenSize, q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim;
  const i = cfg.intermediateSize;
  switch (name) {
    case "q_proj":
      return [q, d];
    case "k_proj":
    case "v_proj":
      return [kv, d];
    case "o_proj":
      return [d, q];
    case "gate_proj":
    case "up_proj":
      return [i, d];
    case "down_proj":
      return [d, i];
  }
}

/** Tensor names of the checkpoint for layer `l`. */
export function hfName(l: number, suffix: string): string {
  return `model.layers.${l}.${suffix}`;
}
/** Module path of each linear inside a decoder layer (`model.layers.{i}.<path>`). */
export const LINEAR_PREFIX: Record<Linear, string> = {
  q_proj: "self_attn.q_proj",
  k_proj: "self_attn.k_proj",
  v_proj: "self_attn.v_proj",
  o_proj: "self_attn.o_proj",
  gate_proj: "mlp.gate_proj",
  up_proj: "mlp.up_proj",
  down_proj: "mlp.down_proj",
};
