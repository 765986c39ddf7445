/**
 * The model configuration: Hugging Face `config.json` of a `Qwen2ForCausalLM` (`model_type: "qwen2"`),
 * normalized to camelCase and checked for what mesp can run. Also the Qwen2.5 presets and parameter counts.
 *
 * @module
 */

/** MLX affine quantization of the checkpoint's Linear and embedding weights (docs/formats.md, MLX). */
export interface Quantization {
  /** Elements per (scale, bias) group along the input dimension; 64 is the only supported value. */
  groupSize: number;
  /** Bits per quantized element: 4 or 8. */
  bits: number;
}

/** A Qwen2 model configuration in mesp's normalized form. */
export interface ModelConfig {
  /** `architectures[0]`: always `"Qwen2ForCausalLM"`. */
  architecture: string;
  /** Model width. */
  hiddenSize: number;
  /** MLP inner width. */
  intermediateSize: number;
  /** Number of decoder layers (`num_hidden_layers`). */
  numLayers: number;
  /** Query heads (`num_attention_heads`). */
  numHeads: number;
  /** Key/value heads (`num_key_value_heads`), dividing `numHeads`. */
  numKvHeads: number;
  /** Per-head width: `head_dim`, or `hidden_size / num_attention_heads`. */
  headDim: number;
  /** Rows of the embedding / LM head. */
  vocabSize: number;
  /** RoPE base θ. */
  ropeTheta: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** LM head shares the embedding matrix (no `lm_head.weight` in the checkpoint). */
  tieWordEmbeddings: boolean;
  /** Context length the model was configured for. */
  maxPositionEmbeddings: number;
  /** Beginning-of-sequence token id, if the config names one. */
  bosTokenId?: number;
  /** End-of-sequence token ids (config `eos_token_id`, a number or a list); may be empty. */
  eosTokenIds: number[];
  /** Padding token id, if the config names one. */
  padTokenId?: number;
  /** Stored weight dtype (`dtype` or `torch_dtype`, e.g. `"bfloat16"`), if the config names one. */
  dtype?: string;
  /** MLX quantization of the checkpoint, or `undefined` for a plain float checkpoint. */
  quantization?: Quantization;
}

/** Options for {@linkcode parseModelConfig}. */
export interface ParseModelConfigOptions {
  /** File name used in error messages (default `"config.json"`). */
  file?: string;
}

/** Default RoPE θ when a config has neither `rope_theta` nor `rope_parameters.rope_theta` (HF's default). */
const DEFAULT_ROPE_THETA = 10000;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates a `config.json` object of a Qwen2 model.
 *
 * Required: `hidden_size`, `intermediate_size`, `num_hidden_layers`, `num_attention_heads`, `vocab_size`
 * (HF's class defaults are a 7B model's, so guessing them would silently load the wrong shape). Defaults as
 * in HF `Qwen2Config`: `num_key_value_heads` = heads, `rms_norm_eps` 1e-6, `tie_word_embeddings` false,
 * `max_position_embeddings` 32768, `hidden_act` "silu", and RoPE θ {@linkcode DEFAULT_ROPE_THETA} when
 * neither `rope_theta` (older transformers) nor `rope_parameters.rope_theta` (transformers ≥ 5) is present.
 *
 * Rejects, with an Error naming the field: other architectures, RoPE scaling, sliding-window attention,
 * activations other than SiLU, non-MLX quantization, and MLX quantization other than 4/8 bits, group 64.
 *
 * @example
 * ```ts
 * const cfg = parseModelConfig(JSON.parse(text), { file: "Qwen2.5-0.5B/config.json" });
 * cfg.headDim; // 64
 * ```
 */
export function parseModelConfig(json: unknown, options: ParseModelConfigOptions = {}): ModelConfig {
  const file = options.file ?? "config.json";
  const fail = (field: string, why: string): never => {
    throw new Error(`${file}: ${field}: ${why}`);
  };
  if (!isObject(json)) return fail("(top level)", "expected a JSON object");
  const c = json;

  const int = (key: string, fallback?: number, min = 1, max = Number.MAX_SAFE_INTEGER): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) return fail(key, "missing required field");
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
      return fail(key, `expected an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    }
    if (v > max) return fail(key, `${v} is beyond what any model can hold here (at most ${max})`);
    return v;
  };
  // a dimension must keep every matrix under 2^31 elements (wasm addresses 4 GiB): bounds the sizes first
  const size = (key: string, fallback?: number) => int(key, fallback, 1, 1 << 24);
  const optInt = (
    key: string,
  ): number | undefined => (c[key] === undefined || c[key] === null ? undefined : int(key, undefined, 0));
  const positive = (key: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return fail(key, `expected a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key] ?? fallback;
    if (typeof v !== "boolean") return fail(key, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  };

  const modelType = c.model_type;
  if (modelType !== "qwen2") {
    fail(
      "model_type",
      `unsupported model type ${JSON.stringify(modelType)}; mesp supports "qwen2" (Qwen2 / Qwen2.5)`,
    );
  }
  let architecture = "Qwen2ForCausalLM";
  if (c.architectures !== undefined && c.architectures !== null) {
    const a = c.architectures;
    if (!Array.isArray(a) || a.length !== 1 || typeof a[0] !== "string") {
      fail("architectures", `expected ["Qwen2ForCausalLM"], got ${JSON.stringify(a)}`);
    }
    architecture = (a as string[])[0];
    if (architecture !== "Qwen2ForCausalLM") {
      fail(
        "architectures",
        `unsupported architecture ${JSON.stringify(architecture)}; expected "Qwen2ForCausalLM"`,
      );
    }
  }

  const hiddenSize = size("hidden_size");
  const intermediateSize = size("intermediate_size");
  const numLayers = size("num_hidden_layers");
  const numHeads = size("num_attention_heads");
  const numKvHeads = size("num_key_value_heads", numHeads);
  const vocabSize = size("vocab_size");
  for (const [key, n] of [["vocab_size", vocabSize], ["intermediate_size", intermediateSize]] as const) {
    if (n * hiddenSize > 2 ** 31) {
      fail(key, `${n} × hidden_size ${hiddenSize} is more than 2^31 weights in one matrix`);
    }
  }
  if (numHeads % numKvHeads !== 0) {
    fail("num_key_value_heads", `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  let headDim: number;
  if (c.head_dim !== undefined && c.head_dim !== null) {
    headDim = size("head_dim");
  } else {
    if (hiddenSize % numHeads !== 0) {
      fail(
        "num_attention_heads",
        `${numHeads} does not divide hidden_size ${hiddenSize} (and there is no head_dim)`,
      );
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) fail("head_dim", `rotary embedding needs an even head dimension, got ${headDim}`);

  const hiddenAct = c.hidden_act ?? "silu";
  if (hiddenAct !== "silu") {
    fail("hidden_act", `unsupported activation ${JSON.stringify(hiddenAct)}; expected "silu"`);
  }
  if (bool("use_sliding_window", false)) {
    fail("use_sliding_window", "sliding-window attention is unsupported");
  }
  if (c.layer_types !== undefined && c.layer_types !== null) {
    const lt = c.layer_types;
    if (!Array.isArray(lt) || lt.length !== numLayers) {
      fail("layer_types", `expected a list of ${numLayers} layer types`);
    }
    const other = (lt as unknown[]).findIndex((t) => t !== "full_attention");
    if (other >= 0) {
      fail(`layer_types[${other}]`, `unsupported layer type ${JSON.stringify((lt as unknown[])[other])}`);
    }
  }

  const ropeTheta = parseRope(c, fail);
  const rmsNormEps = positive("rms_norm_eps", c.rms_norm_eps ?? 1e-6);
  const tieWordEmbeddings = bool("tie_word_embeddings", false);
  const maxPositionEmbeddings = int("max_position_embeddings", 32768);
  const bosTokenId = optInt("bos_token_id");
  const padTokenId = optInt("pad_token_id");

  let eosTokenIds: number[] = [];
  const eos = c.eos_token_id;
  if (eos !== undefined && eos !== null) {
    const list = Array.isArray(eos) ? eos : [eos];
    if (!list.every((t) => typeof t === "number" && Number.isSafeInteger(t) && t >= 0)) {
      fail("eos_token_id", `expected a token id or a list of token ids, got ${JSON.stringify(eos)}`);
    }
    eosTokenIds = list as number[];
  }

  const dtypeValue = c.dtype ?? c.torch_dtype;
  if (dtypeValue !== undefined && dtypeValue !== null && typeof dtypeValue !== "string") {
    fail(
      c.dtype !== undefined ? "dtype" : "torch_dtype",
      `expected a string, got ${JSON.stringify(dtypeValue)}`,
    );
  }
  const dtype = typeof dtypeValue === "string" ? dtypeValue : undefined;

  const quantization = parseQuantization(c, fail);

  const cfg: ModelConfig = {
    architecture,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    ropeTheta,
    rmsNormEps,
    tieWordEmbeddings,
    maxPositionEmbeddings,
    eosTokenIds,
  };
  if (bosTokenId !== undefined) cfg.bosTokenId = bosTokenId;
  if (padTokenId !== undefined) cfg.padTokenId = padTokenId;
  if (dtype !== undefined) cfg.dtype = dtype;
  if (quantization !== undefined) cfg.quantization = quantization;
  return cfg;
}

type Fail = (field: string, why: string) => never;

/** RoPE θ from either key generation; rejects every RoPE variant except the default one. */
function parseRope(c: Json, fail: Fail): number {
  const theta = (field: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return fail(field, `expected a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const isDefaultType = (r: Json) => (r.rope_type ?? r.type ?? "default") === "default";

  const scaling = c.rope_scaling;
  if (scaling !== undefined && scaling !== null) {
    // A `{"rope_type": "default"}` block (written by some tools) means no scaling; anything else is scaling.
    const onlyDefault = isObject(scaling) && isDefaultType(scaling) &&
      Object.keys(scaling).every((k) => k === "rope_type" || k === "type" || k === "rope_theta");
    if (!onlyDefault) fail("rope_scaling", `RoPE scaling is unsupported, got ${JSON.stringify(scaling)}`);
  }
  let fromParams: number | undefined;
  const params = c.rope_parameters;
  if (params !== undefined && params !== null) {
    if (!isObject(params)) {
      return fail("rope_parameters", `expected an object, got ${JSON.stringify(params)}`);
    }
    if (!isDefaultType(params)) {
      fail(
        "rope_parameters.rope_type",
        `unsupported RoPE type ${JSON.stringify(params.rope_type ?? params.type)}`,
      );
    }
    const extra = Object.keys(params).find((k) => !["rope_type", "type", "rope_theta"].includes(k));
    if (extra !== undefined) fail(`rope_parameters.${extra}`, "RoPE scaling is unsupported");
    if (params.rope_theta !== undefined) fromParams = theta("rope_parameters.rope_theta", params.rope_theta);
  }
  const top = c.rope_theta === undefined || c.rope_theta === null
    ? undefined
    : theta("rope_theta", c.rope_theta);
  if (top !== undefined && fromParams !== undefined && top !== fromParams) {
    fail("rope_theta", `${top} conflicts with rope_parameters.rope_theta ${fromParams}`);
  }
  return fromParams ?? top ?? DEFAULT_ROPE_THETA;
}

/** MLX `quantization` (or a `quantization_config` without `quant_method`, MLX's duplicate of it). */
function parseQuantization(c: Json, fail: Fail): Quantization | undefined {
  const qc = c.quantization_config;
  if (isObject(qc) && qc.quant_method !== undefined) {
    fail("quantization_config.quant_method", `unsupported quantization ${JSON.stringify(qc.quant_method)}`);
  }
  const key = c.quantization !== undefined && c.quantization !== null
    ? "quantization"
    : "quantization_config";
  const q = c[key];
  if (q === undefined || q === null) return undefined;
  if (!isObject(q)) return fail(key, `expected an object, got ${JSON.stringify(q)}`);
  const bits = q.bits;
  const groupSize = q.group_size;
  if (bits !== 4 && bits !== 8) {
    fail(`${key}.bits`, `unsupported bits ${JSON.stringify(bits)}; expected 4 or 8`);
  }
  if (groupSize !== 64) {
    fail(`${key}.group_size`, `unsupported group size ${JSON.stringify(groupSize)}; expected 64`);
  }
  if (q.mode !== undefined && q.mode !== "affine") {
    fail(`${key}.mode`, `unsupported quantization mode ${JSON.stringify(q.mode)}; expected "affine"`);
  }
  // MLX records per-layer overrides (mixed precision, unquantized layers) as extra keys: unsupported.
  for (const [k, v] of Object.entries(q)) {
    if (k === "bits" || k === "group_size" || k === "mode") continue;
    const same = isObject(v) && v.bits === bits && v.group_size === groupSize;
    if (!same) fail(`${key}.${k}`, `unsupported per-layer quantization ${JSON.stringify(v)}`);
  }
  return { groupSize: groupSize as number, bits: bits as number };
}

/** Options for {@linkcode configToJson}. */
export interface ConfigToJsonOptions {
  /** Value of `transformers_version` to record (default: omitted). */
  transformersVersion?: string;
}

/**
 * Writes an HF-style `config.json` object (snake_case keys in transformers' sorted order) that
 * transformers, MLX-LM and llama.cpp's converter load as a `Qwen2ForCausalLM`; `parseModelConfig` of the
 * result gives `cfg` back.
 */
export function configToJson(cfg: ModelConfig, options: ConfigToJsonOptions = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: [cfg.architecture],
    attention_dropout: 0.0,
  };
  if (cfg.bosTokenId !== undefined) out.bos_token_id = cfg.bosTokenId;
  if (cfg.eosTokenIds.length > 0) {
    out.eos_token_id = cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : [...cfg.eosTokenIds];
  }
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) out.head_dim = cfg.headDim;
  Object.assign(out, {
    hidden_act: "silu",
    hidden_size: cfg.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediateSize,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    max_window_layers: cfg.numLayers,
    model_type: "qwen2",
    num_attention_heads: cfg.numHeads,
    num_hidden_layers: cfg.numLayers,
    num_key_value_heads: cfg.numKvHeads,
  });
  if (cfg.padTokenId !== undefined) out.pad_token_id = cfg.padTokenId;
  if (cfg.quantization) {
    const q = { group_size: cfg.quantization.groupSize, bits: cfg.quantization.bits };
    out.quantization = q;
    out.quantization_config = { ...q }; // MLX writes both
  }
  Object.assign(out, {
    rms_norm_eps: cfg.rmsNormEps,
    rope_scaling: null,
    rope_theta: cfg.ropeTheta,
    sliding_window: cfg.maxPositionEmbeddings, // inert: use_sliding_window is false
    tie_word_embeddings: cfg.tieWordEmbeddings,
  });
  if (cfg.dtype !== undefined) out.torch_dtype = cfg.dtype;
  if (options.transformersVersion !== undefined) out.transformers_version = options.transformersVersion;
  out.use_cache = true;
  out.use_sliding_window = false;
  out.vocab_size = cfg.vocabSize;
  return out;
}

/** Names of the built-in presets. */
export type PresetName = "qwen2.5-0.5b" | "qwen2.5-1.5b" | "qwen2.5-3b" | "tiny" | "demo";

function qwen25(
  hiddenSize: number,
  intermediateSize: number,
  numLayers: number,
  numHeads: number,
): ModelConfig {
  return Object.freeze({
    architecture: "Qwen2ForCausalLM",
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads: 2,
    headDim: hiddenSize / numHeads,
    vocabSize: 151936,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 32768,
    bosTokenId: 151643,
    eosTokenIds: Object.freeze([151645, 151643]) as number[],
    dtype: "bfloat16",
  });
}

/**
 * Frozen configs of Qwen2.5-{0.5B,1.5B,3B}-Instruct (docs/qwen2.md; eos = `<|im_end|>`,
 * `<|endoftext|>` as in their generation_config.json), `tiny`: a 4-layer, 64-wide Qwen2 for tests
 * that keeps the real vocabulary (151936 rows) so it works with the real Qwen tokenizer, and `demo`
 * (128 wide, untied, same vocabulary) for the demo of `train`. Copy one with spread syntax to change fields.
 */
export const PRESETS: Readonly<Record<PresetName, ModelConfig>> = Object.freeze({
  "qwen2.5-0.5b": qwen25(896, 4864, 24, 14),
  "qwen2.5-1.5b": qwen25(1536, 8960, 28, 12),
  "qwen2.5-3b": qwen25(2048, 11008, 36, 16),
  "tiny": Object.freeze({ ...qwen25(64, 256, 4, 4), dtype: "float32" }),
  // the demo of `train`: wide enough, and with an untied LM head, for LoRA to memorise a small dataset
  "demo": Object.freeze({ ...qwen25(128, 512, 4, 4), tieWordEmbeddings: false }),
});

/** Parameter counts of a config (see {@linkcode paramCounts}). */
export interface ParamCounts {
  /** Parameters of one decoder layer (projections, biases, two norms). */
  perLayer: number;
  /** `vocab × hidden` of `embed_tokens`. */
  embedding: number;
  /** `vocab × hidden` of a separate `lm_head`, or 0 when tied. */
  lmHead: number;
  /** The final norm (`hidden`). */
  finalNorm: number;
  /** Everything stored: embedding + layers + final norm + untied LM head. */
  total: number;
  /** `total` minus embedding and LM head (what model cards call non-embedding). */
  nonEmbedding: number;
}

/** Counts parameters; for Qwen2.5-0.5B `total` is 494,032,768 (docs/qwen2.md). */
export function paramCounts(cfg: ModelConfig): ParamCounts {
  const h = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const perLayer = (h * q + q) + 2 * (h * kv + kv) + q * h + 3 * h * cfg.intermediateSize + 2 * h;
  const embedding = cfg.vocabSize * h;
  const lmHead = cfg.tieWordEmbeddings ? 0 : embedding;
  const total = embedding + cfg.numLayers * perLayer + h + lmHead;
  return { perLayer, embedding, lmHead, finalNorm: h, total, nonEmbedding: total - embedding - lmHead };
}
