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
 * Checks a checkpoint's tensor names against the config: throws for a layer the config does not have, or a
 * weight it needs that is absent (before any packing, rather than at that layer); returns the other tensors
 * that are not used (for a warning).
 */
export function unusedTensors(cfg: ModelConfig, names: Iterable<string>, where: string): string[] {
  const expected = expectedTensors(cfg);
  const present = new Set(names);
  // a quantized tensor's scales and biases are checked with its data by the packer
  const missing = [...expected].filter((n) => !present.has(n) && !/\.(scales|biases)$/.test(n));
  if (missing.length) {
    const layerOf = (n: string) => /^model\.layers\.(\d+)\./.exec(n)?.[1];
    const presentLayers = new Set([...present].map(layerOf));
    const layers = new Set(missing.map(layerOf));
    // whole layers absent (and nothing else): config.json counts more layers than the weights hold
    const lacksLayers = [...layers].every((l) => l !== undefined && !presentLayers.has(l));
    throw new Error(
      `${where} has no ${missing[0]}${
        missing.length > 1 ? ` (and ${missing.length - 1} more missing)` : ""
      }` +
        (lacksLayers
          ? `: config.json says num_hidden_layers ${cfg.numLayers}, but the weights have no layer ` +
            `${[...layers].join(", ")}: config.json does not describe these weights`
          : ": not a complete Qwen2 checkpoint for this config.json"),
    );
  }
  const unused: string[] = [];
  for (const name of present) {
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
