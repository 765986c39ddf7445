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

/** The linears with a bias: Qwen2's query, key and value projections (the others have none). */
const BIASED: readonly Linear[] = ["q_proj", "k_proj", "v_proj"];

/** A decoder layer's two RMSNorm weights: before the attention and before the MLP. */
const LAYER_NORMS = ["input_layernorm", "post_attention_layernorm"] as const;

/** Module paths outside the decoder layers: the embedding, the final norm, an untied LM head. */
export const EMBED_TOKENS = "model.embed_tokens";
export const FINAL_NORM = "model.norm";
export const LM_HEAD = "lm_head";

/** Checkpoint name of `path` inside decoder layer `l`: `model.layers.{l}.{path}`. */
export function layerTensor(l: number, path: string): string {
  return `model.layers.${l}.${path}`;
}

/** One tensor of a checkpoint, before any storage format applies. */
export interface ModelTensor {
  name: string;
  shape: number[];
  kind: "linear" | "embedding" | "norm" | "bias";
}

/** Every tensor of the model in Hugging Face state-dict order (`Qwen2ForCausalLM`'s module order). */
export function modelTensors(cfg: ModelConfig): ModelTensor[] {
  const d = cfg.hiddenSize;
  const out: ModelTensor[] = [{
    name: `${EMBED_TOKENS}.weight`,
    shape: [cfg.vocabSize, d],
    kind: "embedding",
  }];
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const linear of LINEARS) {
      const base = layerTensor(l, LINEAR_PREFIX[linear]), shape = linearShape(cfg, linear);
      out.push({ name: `${base}.weight`, shape, kind: "linear" });
      if (BIASED.includes(linear)) out.push({ name: `${base}.bias`, shape: [shape[0]], kind: "bias" });
    }
    for (const norm of LAYER_NORMS) {
      out.push({ name: `${layerTensor(l, norm)}.weight`, shape: [d], kind: "norm" });
    }
  }
  out.push({ name: `${FINAL_NORM}.weight`, shape: [d], kind: "norm" });
  if (!cfg.tieWordEmbeddings) {
    out.push({ name: `${LM_HEAD}.weight`, shape: [cfg.vocabSize, d], kind: "linear" });
  }
  return out;
}
