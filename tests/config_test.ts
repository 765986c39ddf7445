import assert from "node:assert/strict";
import {
  configToJson,
  type ModelConfig,
  paramCounts,
  parseModelConfig,
  PRESETS,
} from "../src/model/config.ts";

// Qwen2.5-0.5B-Instruct config.json as published (published values, key set of transformers 4.43).
const QWEN25_05B_INSTRUCT = `{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 21,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
}`;

// The same model as printed by transformers ≥ 5 (new key generation).
const QWEN25_15B_NEW_KEYS = {
  architectures: ["Qwen2ForCausalLM"],
  bos_token_id: 151643,
  dtype: "bfloat16",
  eos_token_id: [151645, 151643],
  hidden_size: 1536,
  intermediate_size: 8960,
  layer_types: Array(28).fill("full_attention"),
  max_position_embeddings: 131072,
  model_type: "qwen2",
  num_attention_heads: 12,
  num_hidden_layers: 28,
  num_key_value_heads: 2,
  pad_token_id: 151643,
  rms_norm_eps: 1e-6,
  rope_parameters: { rope_theta: 1000000.0, rope_type: "default" },
  sliding_window: null,
  tie_word_embeddings: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

Deno.test("parseModelConfig: Qwen2.5-0.5B-Instruct (old keys)", () => {
  const cfg = parseModelConfig(JSON.parse(QWEN25_05B_INSTRUCT));
  const want: ModelConfig = {
    architecture: "Qwen2ForCausalLM",
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headDim: 64,
    vocabSize: 151936,
    ropeTheta: 1e6,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 32768,
    bosTokenId: 151643,
    eosTokenIds: [151645],
    dtype: "bfloat16",
  };
  assert.deepEqual(cfg, want);
});

Deno.test("parseModelConfig: new key generation (rope_parameters, dtype, layer_types, eos list)", () => {
  const cfg = parseModelConfig(QWEN25_15B_NEW_KEYS);
  assert.equal(cfg.ropeTheta, 1e6);
  assert.equal(cfg.dtype, "bfloat16");
  assert.equal(cfg.headDim, 128);
  assert.equal(cfg.maxPositionEmbeddings, 131072);
  assert.deepEqual(cfg.eosTokenIds, [151645, 151643]);
  assert.equal(cfg.padTokenId, 151643);
  assert.equal(cfg.quantization, undefined);
  // Both generations present and agreeing is fine too.
  assert.equal(
    parseModelConfig({ ...QWEN25_15B_NEW_KEYS, rope_theta: 1e6, torch_dtype: "bfloat16" }).ropeTheta,
    1e6,
  );
});

Deno.test("parseModelConfig: defaults follow HF Qwen2Config", () => {
  const cfg = parseModelConfig({
    model_type: "qwen2",
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    vocab_size: 100,
  });
  assert.equal(cfg.numKvHeads, 4);
  assert.equal(cfg.ropeTheta, 10000);
  assert.equal(cfg.rmsNormEps, 1e-6);
  assert.equal(cfg.tieWordEmbeddings, false);
  assert.equal(cfg.maxPositionEmbeddings, 32768);
  assert.equal(cfg.architecture, "Qwen2ForCausalLM");
  assert.deepEqual(cfg.eosTokenIds, []);
  assert.equal(cfg.bosTokenId, undefined);
  assert.equal(cfg.dtype, undefined);
  // An explicit head_dim wins over hidden/heads.
  assert.equal(parseModelConfig({ ...QWEN25_15B_NEW_KEYS, head_dim: 64 }).headDim, 64);
});

Deno.test("parseModelConfig: MLX quantization block", () => {
  const mlx = { ...JSON.parse(QWEN25_05B_INSTRUCT), quantization: { group_size: 64, bits: 4 } };
  assert.deepEqual(parseModelConfig(mlx).quantization, { groupSize: 64, bits: 4 });
  const both = {
    ...mlx,
    quantization: { group_size: 64, bits: 8 },
    quantization_config: { group_size: 64, bits: 8 },
  };
  assert.deepEqual(parseModelConfig(both).quantization, { groupSize: 64, bits: 8 });
  const affine = { ...mlx, quantization: { group_size: 64, bits: 4, mode: "affine" } };
  assert.deepEqual(parseModelConfig(affine).quantization, { groupSize: 64, bits: 4 });
});

Deno.test("parseModelConfig: each rejection names its field", () => {
  const base = JSON.parse(QWEN25_05B_INSTRUCT);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ model_type: "llama" }, /model_type: unsupported model type "llama"/],
    [{ model_type: undefined }, /model_type: unsupported model type undefined/],
    [{ architectures: ["Qwen2ForSequenceClassification"] }, /architectures: unsupported architecture/],
    [{ hidden_size: undefined }, /hidden_size: missing required field/],
    [{ vocab_size: "151936" }, /vocab_size: expected an integer ≥ 1, got "151936"/],
    [{ num_hidden_layers: 2.5 }, /num_hidden_layers: expected an integer/],
    [{ intermediate_size: 0 }, /intermediate_size: expected an integer ≥ 1, got 0/],
    [{ hidden_size: 900 }, /num_attention_heads: 14 does not divide hidden_size 900/],
    [{ num_key_value_heads: 3 }, /num_key_value_heads: 3 does not divide num_attention_heads 14/],
    [{ head_dim: 63 }, /head_dim: rotary embedding needs an even head dimension/],
    [{ rope_scaling: { type: "linear", factor: 2.0 } }, /rope_scaling: RoPE scaling is unsupported/],
    [{ rope_scaling: { rope_type: "yarn", factor: 4.0 } }, /rope_scaling: RoPE scaling is unsupported/],
    [
      { rope_parameters: { rope_type: "yarn", rope_theta: 1e6 } },
      /rope_parameters\.rope_type: unsupported RoPE type "yarn"/,
    ],
    [
      { rope_parameters: { rope_theta: 1e6, factor: 2 } },
      /rope_parameters\.factor: RoPE scaling is unsupported/,
    ],
    [
      { rope_parameters: { rope_theta: 1e4 } },
      /rope_theta: 1000000 conflicts with rope_parameters\.rope_theta 10000/,
    ],
    [{ rope_theta: -1 }, /rope_theta: expected a positive number/],
    [{ rms_norm_eps: "1e-6" }, /rms_norm_eps: expected a positive number/],
    [{ use_sliding_window: true }, /use_sliding_window: sliding-window attention is unsupported/],
    [
      { layer_types: [...Array(23).fill("full_attention"), "sliding_attention"] },
      /layer_types\[23\]: unsupported layer type/,
    ],
    [{ hidden_act: "gelu" }, /hidden_act: unsupported activation "gelu"/],
    [{ tie_word_embeddings: "yes" }, /tie_word_embeddings: expected true or false/],
    [{ eos_token_id: [151645, "x"] }, /eos_token_id: expected a token id or a list of token ids/],
    [{ torch_dtype: 16 }, /torch_dtype: expected a string/],
    [
      { quantization: { group_size: 64, bits: 3 } },
      /quantization\.bits: unsupported bits 3; expected 4 or 8/,
    ],
    [{ quantization: { group_size: 32, bits: 4 } }, /quantization\.group_size: unsupported group size 32/],
    [
      { quantization: { group_size: 64, bits: 4, mode: "mxfp4" } },
      /quantization\.mode: unsupported quantization mode/,
    ],
    [
      { quantization: { group_size: 64, bits: 4, "model.embed_tokens": { group_size: 64, bits: 8 } } },
      /quantization\.model\.embed_tokens: unsupported per-layer quantization/,
    ],
    [
      { quantization_config: { quant_method: "gptq", bits: 4 } },
      /quantization_config\.quant_method: unsupported quantization "gptq"/,
    ],
  ];
  for (const [patch, pattern] of cases) {
    assert.throws(() => parseModelConfig({ ...base, ...patch }, { file: "m/config.json" }), (err: Error) => {
      assert.match(err.message, /^m\/config\.json: /, JSON.stringify(patch));
      assert.match(err.message, pattern, JSON.stringify(patch));
      return true;
    });
  }
  assert.throws(() => parseModelConfig([1]), /config\.json: \(top level\): expected a JSON object/);
  // A rope_scaling that only says "default" is no scaling.
  assert.equal(parseModelConfig({ ...base, rope_scaling: { rope_type: "default" } }).ropeTheta, 1e6);
});

Deno.test("paramCounts match the published counts (docs/qwen2.md)", () => {
  const c05 = paramCounts(PRESETS["qwen2.5-0.5b"]);
  assert.deepEqual(c05, {
    perLayer: 14_912_384,
    embedding: 136_134_656,
    lmHead: 0,
    finalNorm: 896,
    total: 494_032_768,
    nonEmbedding: 357_898_112,
  });
  const c15 = paramCounts(PRESETS["qwen2.5-1.5b"]);
  assert.equal(c15.perLayer, 46_797_824);
  assert.equal(c15.embedding, 233_373_696);
  assert.equal(c15.total, 1_543_714_304);
  assert.equal(c15.nonEmbedding, 1_310_340_608);
  assert.equal(c15.total * 2, 3_087_428_608);
  const c3 = paramCounts(PRESETS["qwen2.5-3b"]);
  assert.equal(c3.perLayer, 77_076_992);
  assert.equal(c3.embedding, 311_164_928);
  assert.equal(c3.total, 3_085_938_688);
  assert.equal(c3.nonEmbedding, 2_774_773_760);
  // Untied Qwen2.5-7B: model card 7.61B total, 6.53B non-embedding.
  const c7 = paramCounts({
    ...PRESETS["qwen2.5-0.5b"],
    hiddenSize: 3584,
    intermediateSize: 18944,
    numLayers: 28,
    numHeads: 28,
    numKvHeads: 4,
    headDim: 128,
    vocabSize: 152064,
    tieWordEmbeddings: false,
  });
  assert.equal(c7.total, 7_615_616_512);
  assert.equal(c7.nonEmbedding, 6_525_621_760);
});

Deno.test("PRESETS: values, frozen, tiny works with the real tokenizer", () => {
  const p = PRESETS["qwen2.5-3b"];
  assert.deepEqual(
    [p.hiddenSize, p.intermediateSize, p.numLayers, p.numHeads, p.numKvHeads, p.headDim],
    [2048, 11008, 36, 16, 2, 128],
  );
  assert.deepEqual(p.eosTokenIds, [151645, 151643]);
  assert.throws(() => {
    (PRESETS["qwen2.5-0.5b"] as { numLayers: number }).numLayers = 1;
  }, TypeError);
  assert.throws(() => PRESETS.tiny.eosTokenIds.push(1), TypeError);
  const tiny = PRESETS.tiny;
  assert.deepEqual(
    [tiny.hiddenSize, tiny.intermediateSize, tiny.numLayers, tiny.numHeads, tiny.numKvHeads, tiny.headDim],
    [64, 256, 4, 4, 2, 16],
  );
  assert.ok(tiny.vocabSize > 151664, "covers every Qwen token id");
  assert.equal(tiny.tieWordEmbeddings, true);
  // A modified copy is an ordinary object.
  const copy = { ...tiny, numLayers: 2 };
  copy.numLayers = 3;
  assert.equal(copy.numLayers, 3);
});

Deno.test("configToJson writes HF-style keys and parses back to the same config", () => {
  const json = configToJson(PRESETS["qwen2.5-0.5b"]);
  const want = JSON.parse(QWEN25_05B_INSTRUCT);
  delete want.transformers_version;
  want.eos_token_id = [151645, 151643];
  want.max_window_layers = 24;
  want.rope_scaling = null;
  assert.deepEqual(json, want);
  assert.deepEqual(Object.keys(json), Object.keys(json).toSorted(), "transformers writes keys sorted");

  for (const preset of Object.values(PRESETS)) {
    assert.deepEqual(parseModelConfig(JSON.parse(JSON.stringify(configToJson(preset)))), preset);
  }
  const quantized: ModelConfig = { ...PRESETS.tiny, headDim: 32, quantization: { groupSize: 64, bits: 4 } };
  const qjson = configToJson(quantized, { transformersVersion: "4.43.1" });
  assert.equal(qjson.head_dim, 32);
  assert.deepEqual(qjson.quantization, { group_size: 64, bits: 4 });
  assert.equal(qjson.transformers_version, "4.43.1");
  assert.deepEqual(parseModelConfig(qjson), quantized);
});
