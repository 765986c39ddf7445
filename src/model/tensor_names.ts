/**
 * Which tensors of a checkpoint a Qwen2 model reads, so that the rest is not silently ignored: layers beyond
 * `num_hidden_layers` mean config.json does not describe the checkpoint (refused); other unknown tensors
 * are reported.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

const LAYER_MATRICES = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
];
const LAYER_VECTORS = [
  "self_attn.q_proj.bias",
  "self_attn.k_proj.bias",
  "self_attn.v_proj.bias",
  "input_layernorm.weight",
  "post_attention_layernorm.weight",
];
/** Buffers some exporters save that are recomputed anyway. */
const HARMLESS = /\.rotary_emb\.inv_freq$/;

/** The checkpoint tensors this model reads. */
function expectedTensors(cfg: ModelConfig): Set<string> {
  const names = new Set<string>();
  const matrix = (base: string) => {
    names.add(`${base}.weight`);
    if (cfg.quantization) names.add(`${base}.scales`).add(`${base}.biases`);
  };
  matrix("model.embed_tokens");
  if (!cfg.tieWordEmbeddings) matrix("lm_head");
  names.add("model.norm.weight");
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const m of LAYER_MATRICES) matrix(`model.layers.${l}.${m}`);
    for (const v of LAYER_VECTORS) names.add(`model.layers.${l}.${v}`);
  }
  return names;
}

/**
 * Checks a checkpoint's tensor names against the config: throws for a layer the config does not have;
 * returns the other tensors that are not used (for a warning).
 */
export function unusedTensors(cfg: ModelConfig, names: Iterable<string>, where: string): string[] {
  const expected = expectedTensors(cfg);
  const unused: string[] = [];
  for (const name of names) {
    if (expected.has(name) || HARMLESS.test(name)) continue;
    const layer = /^model\.layers\.(\d+)\./.exec(name);
    if (layer && +layer[1] >= cfg.numLayers) {
      throw new Error(
        `${where} has layer ${layer[1]} (${name}) but config.json says num_hidden_layers ${cfg.numLayers}: ` +
          `config.json does not describe these weights`,
      );
    }
    unused.push(name);
  }
  return unused;
}
