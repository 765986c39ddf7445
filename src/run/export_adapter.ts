/**
 * A trained LoRA adapter in the formats other runtimes load, from the engine's flat parameter region (the
 * same values the PEFT adapter holds; `y = x Wᵀ + b + s·(x Aᵀ) Bᵀ`, A `[r, in]`, B `[out, r]`):
 *
 * - MLX-LM (`mlx_lm.generate --adapter-path`, `mlx_lm.fuse`): `adapters.safetensors` with
 *   `model.layers.{i}.{self_attn|mlp}.{x}_proj.lora_a` `[in, r]` (= Aᵀ) and `.lora_b` `[r, out]` (= Bᵀ), and
 *   `adapter_config.json` with `fine_tune_type`, `num_layers` and `lora_parameters {rank, scale, dropout,
 *   keys}`; MLX applies `y + scale · (x lora_a) lora_b`, so `scale` is PEFT's `s`.
 * - llama.cpp (`llama-cli --lora`): a GGUF adapter as its `convert_lora_to_gguf.py` writes it:
 *   `general.type = "adapter"`, `general.architecture = "qwen2"`, `adapter.type = "lora"`,
 *   `adapter.lora.alpha`, and per linear `blk.{i}.{attn_q|…|ffn_down}.weight.lora_a` (ggml `ne [in, r]`, the
 *   bytes of A) and `.lora_b` (`ne [r, out]`, the bytes of B). llama.cpp scales by `alpha / r`, so an
 *   rsLoRA adapter is written with `alpha = s · r`.
 *
 * @module
 */
import type { ModelConfig } from "../model/config.ts";
import { type Linear, LINEAR_PREFIX } from "../model/qwen2.ts";
import type { TensorEntry } from "../model/safetensors.ts";
import type { GgufTensor, GgufValue } from "../model/gguf.ts";
import type { LoraLayout, LoraPair } from "../engine/lora.ts";

/** MLX-LM's adapter file names. */
export const MLX_ADAPTER_CONFIG = "adapter_config.json";
export const MLX_ADAPTER_WEIGHTS = "adapters.safetensors";

/** llama.cpp's tensor name of each linear (`LLM_TENSOR_*` names of the qwen2 architecture). */
export const GGUF_LINEAR: Record<Linear, string> = {
  q_proj: "attn_q",
  k_proj: "attn_k",
  v_proj: "attn_v",
  o_proj: "attn_output",
  gate_proj: "ffn_gate",
  up_proj: "ffn_up",
  down_proj: "ffn_down",
};

function views(
  layout: LoraLayout,
  pair: LoraPair,
  params: Float32Array,
): { a: Float32Array; b: Float32Array } {
  const r = layout.rank;
  return {
    a: params.subarray(pair.a, pair.a + r * pair.inDim),
    b: params.subarray(pair.b, pair.b + r * pair.outDim),
  };
}

/** `rows × cols` row-major → its transpose. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j];
  return t;
}

/** The tensors of MLX-LM's `adapters.safetensors` (copies, transposed). */
export function mlxAdapterTensors(layout: LoraLayout, params: Float32Array): TensorEntry[] {
  const out: TensorEntry[] = [];
  const r = layout.rank;
  for (const row of layout.pairs) {
    for (const pair of row) {
      const { a, b } = views(layout, pair, params);
      const base = `model.layers.${pair.layer}.${LINEAR_PREFIX[pair.target]}`;
      out.push(
        { name: `${base}.lora_a`, dtype: "F32", shape: [pair.inDim, r], data: transpose(a, r, pair.inDim) },
        { name: `${base}.lora_b`, dtype: "F32", shape: [r, pair.outDim], data: transpose(b, pair.outDim, r) },
      );
    }
  }
  return out;
}

/** MLX-LM's `adapter_config.json` (keys sorted and indented by 4, as `mlx_lm.lora` saves it). */
export function mlxAdapterConfigJson(layout: LoraLayout, cfg: ModelConfig, baseModel?: string): string {
  const config = {
    fine_tune_type: "lora",
    lora_parameters: {
      dropout: 0.0,
      keys: layout.targets.map((t) => LINEAR_PREFIX[t]),
      rank: layout.rank,
      scale: layout.scale,
    },
    model: baseModel ?? null,
    num_layers: cfg.numLayers,
  };
  return JSON.stringify(config, null, 4) + "\n";
}

/** Metadata of a llama.cpp LoRA adapter for a Qwen2 base. */
export function ggufAdapterMetadata(
  layout: LoraLayout,
  name = "mesp LoRA adapter",
): Record<string, GgufValue> {
  return {
    "general.architecture": { type: "string", value: "qwen2" },
    "general.type": { type: "string", value: "adapter" },
    "general.name": { type: "string", value: name },
    "adapter.type": { type: "string", value: "lora" },
    // llama.cpp multiplies by alpha / rank: this alpha gives PEFT's scale for LoRA and rsLoRA alike
    "adapter.lora.alpha": { type: "f32", value: layout.scale * layout.rank },
  };
}

/** The tensors of a llama.cpp LoRA adapter (views of `params`, no copies). */
export function ggufAdapterTensors(layout: LoraLayout, params: Float32Array): GgufTensor[] {
  const out: GgufTensor[] = [];
  const bytes = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  for (const row of layout.pairs) {
    for (const pair of row) {
      const { a, b } = views(layout, pair, params);
      const base = `blk.${pair.layer}.${GGUF_LINEAR[pair.target]}.weight`;
      out.push(
        { name: `${base}.lora_a`, type: "F32", shape: [layout.rank, pair.inDim], data: bytes(a) },
        { name: `${base}.lora_b`, type: "F32", shape: [pair.outDim, layout.rank], data: bytes(b) },
      );
    }
  }
  return out;
}
