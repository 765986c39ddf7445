/**
 * A Qwen2 checkpoint, optionally with a LoRA adapter merged in (`W + s·B·A`, as {@linkcode mergeAdapter}),
 * as a GGUF model llama.cpp loads (`llama-cli -m`), laid out as its `convert_hf_to_gguf.py` writes Qwen2:
 * architecture `qwen2` with its hyperparameter keys, the tokenizer as `tokenizer.*` metadata, and tensors
 * named `token_embd`, `blk.{i}.attn_{q,k,v}` (weights and biases), `attn_output`, `ffn_{gate,up,down}`,
 * `attn_norm`, `ffn_norm`, `output_norm` and, when untied, `output`. Matrices keep the base's float dtype
 * (an MLX-quantized base is dequantized to its scales' dtype) unless another is asked for; norms and biases
 * are f32, as the converter writes every 1-D tensor. Qwen2's rotary embedding is NeoX-style in llama.cpp,
 * the same as Hugging Face's, so q and k are written unpermuted.
 *
 * @module
 */
import type { ByteSink } from "../io/source.ts";
import type { ModelConfig } from "../model/config.ts";
import { GGML_TYPE, type GgmlType, type GgufTensor, type GgufValue, writeGguf } from "../model/gguf.ts";
import type { Checkpoint, SafetensorsFile } from "../model/safetensors.ts";
import type { LoraLayout, LoraPair } from "../engine/lora.ts";
import { type FloatDtype, pairsByWeight, planMergedFile, type Planned, writePlanned } from "./merge.ts";
import { GGUF_LINEAR } from "./export_adapter.ts";
import { LINEAR_PREFIX, LINEARS } from "../model/qwen2.ts";

/** llama.cpp's `general.file_type` (`enum llama_ftype`) of an all-float model. */
const FILE_TYPE: Record<FloatDtype, number> = { F32: 0, F16: 1, BF16: 32 };

/** Module path inside a decoder layer → llama.cpp's tensor name. */
const LAYER_TENSOR: Record<string, string> = {
  input_layernorm: "attn_norm",
  post_attention_layernorm: "ffn_norm",
  ...Object.fromEntries(LINEARS.map((l) => [LINEAR_PREFIX[l], GGUF_LINEAR[l]])),
};

/**
 * llama.cpp's name of a Hugging Face Qwen2 tensor, or `undefined` for a tensor llama.cpp does not use (the
 * tied copy of the embedding some checkpoints carry as `lm_head.weight`).
 */
function ggufTensorName(name: string, cfg: ModelConfig): string | undefined {
  if (name === "model.embed_tokens.weight") return "token_embd.weight";
  if (name === "model.norm.weight") return "output_norm.weight";
  if (name === "lm_head.weight") return cfg.tieWordEmbeddings ? undefined : "output.weight";
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  const mapped = m && LAYER_TENSOR[m[2]];
  if (!m || !mapped) throw new Error(`gguf: no llama.cpp name for tensor ${JSON.stringify(name)}`);
  return `blk.${m[1]}.${mapped}.${m[3]}`;
}

/** Hyperparameter keys of llama.cpp's `qwen2` architecture. */
function ggufQwen2Metadata(
  cfg: ModelConfig,
  dtype: FloatDtype,
  name: string,
): Record<string, GgufValue> {
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const out: Record<string, GgufValue> = {
    "general.architecture": { type: "string", value: "qwen2" },
    "general.type": { type: "string", value: "model" },
    "general.name": { type: "string", value: name },
    "general.file_type": u32(FILE_TYPE[dtype]),
    "qwen2.context_length": u32(cfg.maxPositionEmbeddings),
    "qwen2.embedding_length": u32(cfg.hiddenSize),
    "qwen2.block_count": u32(cfg.numLayers),
    "qwen2.feed_forward_length": u32(cfg.intermediateSize),
    "qwen2.attention.head_count": u32(cfg.numHeads),
    "qwen2.attention.head_count_kv": u32(cfg.numKvHeads),
    "qwen2.rope.freq_base": { type: "f32", value: cfg.ropeTheta },
    "qwen2.attention.layer_norm_rms_epsilon": { type: "f32", value: cfg.rmsNormEps },
  };
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) {
    // llama.cpp assumes hidden / heads otherwise
    out["qwen2.attention.key_length"] = u32(cfg.headDim);
    out["qwen2.attention.value_length"] = u32(cfg.headDim);
  }
  return out;
}

/** Options of {@linkcode writeGgufModel}. */
export interface GgufModelOptions {
  /** The `tokenizer.*` metadata (see `ggufVocabMetadata`). */
  vocab: Readonly<Record<string, GgufValue>>;
  /** Merge this adapter into the weights. */
  adapter?: { layout: LoraLayout; params: Float32Array };
  /** Matrices' dtype (default: the base's float dtype). */
  dtype?: FloatDtype;
  /** `general.name`. */
  name?: string;
}

/** What {@linkcode writeGgufModel} wrote. */
export interface GgufModelResult {
  tensors: number;
  /** Linears that received `s·B·A`. */
  merged: number;
  /** Quantized tensors written dequantized. */
  dequantized: number;
  dtype: FloatDtype;
  fileSize: number;
}

/** Streams the checkpoint (with the adapter merged, if given) into `sink` as one GGUF file. */
export async function writeGgufModel(
  base: Checkpoint,
  cfg: ModelConfig,
  sink: ByteSink,
  options: GgufModelOptions,
): Promise<GgufModelResult> {
  const { adapter } = options;
  const pairs = adapter ? pairsByWeight(base, adapter.layout) : new Map<string, LoraPair>();
  const planned: { file: SafetensorsFile; t: Planned; name: string }[] = [];
  for (const file of base.files.values()) {
    for (const t of planMergedFile(file, cfg, pairs)) {
      const name = ggufTensorName(t.spec.name, cfg);
      if (name !== undefined) planned.push({ file, t, name });
    }
  }
  const embedding = planned.find((p) => p.name === "token_embd.weight");
  if (!embedding) throw new Error(`gguf: the base ${base.name} has no model.embed_tokens.weight`);
  const baseDtype = embedding.t.spec.dtype;
  if (baseDtype !== "F32" && baseDtype !== "F16" && baseDtype !== "BF16") {
    throw new Error(`gguf: the base's embedding is ${baseDtype}; expected F32, F16 or BF16`);
  }
  const dtype = options.dtype ?? baseDtype;
  // llama.cpp's order: the embedding, the layers in order, the final norm and head
  const rank = (n: string) => {
    const m = /^blk\.(\d+)\./.exec(n);
    return n === "token_embd.weight" ? -1 : m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
  };
  planned.sort((a, b) => rank(a.name) - rank(b.name));
  let merged = 0, dequantized = 0;
  const tensors: GgufTensor[] = planned.map(({ file, t, name }) => {
    const type: GgmlType = t.spec.shape.length === 1 ? "F32" : dtype;
    if (!(type in GGML_TYPE)) throw new Error(`gguf: cannot write ${name} as ${type}`);
    return {
      name,
      type,
      shape: t.spec.shape,
      data: async (write) => {
        await writePlanned({ write }, file, t, adapter?.layout, adapter?.params, type);
        if (t.pair) merged++;
        if (t.quant) dequantized++;
      },
    };
  });
  const metadata = {
    ...ggufQwen2Metadata(
      cfg,
      dtype,
      options.name ?? base.name.split(/[\\/]/).filter(Boolean).at(-1) ?? "model",
    ),
    ...options.vocab,
  };
  const fileSize = await writeGguf(sink, metadata, tensors);
  if (merged !== pairs.size) {
    throw new Error(`gguf: internal error: merged ${merged} of ${pairs.size} linears`);
  }
  return { tensors: tensors.length, merged, dequantized, dtype, fileSize };
}
