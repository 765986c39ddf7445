import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { type ModelConfig, paramCounts, parseModelConfig, PRESETS } from "../src/model/config.ts";
import {
  DEFAULT_SHARD_SIZE,
  makeModel,
  type MakeModelProgress,
  memoryModelSink,
  planModel,
} from "../src/model/make_model.ts";
import {
  openCheckpoint,
  readSafetensorsHeader,
  readTensorBytes,
  readTensorF32,
  type TensorInfo,
} from "../src/model/safetensors.ts";
import { bytesSource } from "../src/io/source.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { dequantize, fromMlxU32 } from "../src/model/quantize.ts";
import { bf16BitsToF32 } from "../src/model/dtype.ts";
import { run } from "../src/cli/make_model.ts";

/** Expected tensors of a Qwen2 checkpoint, written out from HF's module tree (docs/qwen2.md), not the code. */
function expectedHf(c: {
  h: number;
  q: number;
  kv: number;
  inter: number;
  layers: number;
  vocab: number;
  tied: boolean;
}): Map<string, number[]> {
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [c.vocab, c.h]]]);
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + "input_layernorm.weight", [c.h]);
    m.set(p + "self_attn.q_proj.weight", [c.q, c.h]);
    m.set(p + "self_attn.q_proj.bias", [c.q]);
    m.set(p + "self_attn.k_proj.weight", [c.kv, c.h]);
    m.set(p + "self_attn.k_proj.bias", [c.kv]);
    m.set(p + "self_attn.v_proj.weight", [c.kv, c.h]);
    m.set(p + "self_attn.v_proj.bias", [c.kv]);
    m.set(p + "self_attn.o_proj.weight", [c.h, c.q]);
    m.set(p + "post_attention_layernorm.weight", [c.h]);
    m.set(p + "mlp.gate_proj.weight", [c.inter, c.h]);
    m.set(p + "mlp.up_proj.weight", [c.inter, c.h]);
    m.set(p + "mlp.down_proj.weight", [c.h, c.inter]);
  }
  m.set("model.norm.weight", [c.h]);
  if (!c.tied) m.set("lm_head.weight", [c.vocab, c.h]);
  return m;
}

const TINY = { h: 64, q: 64, kv: 32, inter: 256, layers: 4, vocab: 151936, tied: true };
const HALF_B = { h: 896, q: 896, kv: 128, inter: 4864, layers: 24, vocab: 151936, tied: true };

/** MLX layout: each Linear and the embedding become X.weight U32 [out, in/8] + X.scales/X.biases [out, in/64]. */
function expectedMlx(hf: Map<string, number[]>, half: string): Map<string, [string, number[]]> {
  const m = new Map<string, [string, number[]]>();
  for (const [name, shape] of hf) {
    if (shape.length === 2) {
      const base = name.replace(/\.weight$/, "");
      m.set(`${base}.weight`, ["U32", [shape[0], shape[1] / 8]]);
      m.set(`${base}.scales`, [half, [shape[0], shape[1] / 64]]);
      m.set(`${base}.biases`, [half, [shape[0], shape[1] / 64]]);
    } else m.set(name, [half, shape]);
  }
  return m;
}

function sorted<T>(m: Map<string, T>): [string, T][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : 1));
}

/** Sorted `[name, [dtype, shape]]` of tensors. */
function layout(
  tensors: Iterable<{ name: string; dtype: string; shape: number[] }>,
): [string, [string, number[]]][] {
  return sorted(new Map([...tensors].map((t) => [t.name, [t.dtype as string, t.shape]])));
}

Deno.test("planModel: Qwen2.5-0.5B hf bf16 has 290 tensors of Qwen2's shapes and 988,065,536 bytes", () => {
  const plan = planModel(PRESETS["qwen2.5-0.5b"]);
  assertEquals(plan.dtype, "bf16");
  assertEquals(plan.tensors.length, 290);
  assertEquals(
    layout(plan.tensors),
    sorted(new Map([...expectedHf(HALF_B)].map(([n, s]) => [n, ["BF16", s]]))),
  );
  assertEquals(plan.totalBytes, 988_065_536); // the published table
  assertEquals(plan.totalBytes, 2 * paramCounts(PRESETS["qwen2.5-0.5b"]).total);
  assertEquals(plan.parameters, 494_032_768);
  assertEquals(plan.files.map((f) => f.name), ["model.safetensors"]);
  assert(!plan.textFiles.includes("model.safetensors.index.json"));
  // the file size is the data plus a header padded to 8 bytes
  const header = plan.files[0].fileSize - plan.totalBytes;
  assert(header > 8 && header % 8 === 0 && header < 40_000, `header bytes ${header}`);
});

Deno.test("planModel: 1.5B has 338 tensors, 3B 434 in two greedy 5 GB shards (6,171,877,376 bytes)", () => {
  assertEquals(planModel(PRESETS["qwen2.5-1.5b"]).tensors.length, 338);
  assertEquals(planModel(PRESETS["qwen2.5-1.5b"]).totalBytes, 3_087_428_608);
  const plan = planModel(PRESETS["qwen2.5-3b"]);
  assertEquals(plan.tensors.length, 434);
  assertEquals(plan.totalBytes, 6_171_877_376);
  assertEquals(plan.files.map((f) => f.name), [
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
  ]);
  const [a, b] = plan.files;
  assert(a.tensorBytes <= DEFAULT_SHARD_SIZE, "shard 1 within 5 GB");
  assert(a.tensorBytes + b.tensors[0].byteLength > DEFAULT_SHARD_SIZE, "shard 1 is full: greedy split");
  assertEquals(a.tensors[0].name, "model.embed_tokens.weight"); // state-dict order
  assertEquals(b.tensors[b.tensors.length - 1].name, "model.norm.weight");
  assertEquals(plan.textFiles[0], "model.safetensors.index.json");
});

Deno.test("planModel: Qwen2.5-0.5B mlx-q4 quantizes every Linear and the embedding", () => {
  const plan = planModel(PRESETS["qwen2.5-0.5b"], { format: "mlx-q4" });
  const want = expectedMlx(expectedHf(HALF_B), "BF16");
  assertEquals(plan.tensors.length, 290 + 2 * (7 * 24 + 1));
  assertEquals(layout(plan.tensors), sorted(want));
  // bytes: ½ byte per quantized element + 4 bytes (bf16 scale + bias) per 64 of them + 2 per other element
  const c = paramCounts(PRESETS["qwen2.5-0.5b"]);
  const unquantized = 24 * (896 + 128 + 128 + 2 * 896) + 896;
  const quantized = c.total - unquantized;
  assertEquals(plan.totalBytes, quantized / 2 + (quantized / 64) * 4 + unquantized * 2);
  assertEquals(plan.config.quantization, { groupSize: 64, bits: 4 });
  assertEquals(plan.config.dtype, "bfloat16");
  const q8 = planModel(PRESETS["qwen2.5-0.5b"], { format: "mlx-q8", dtype: "f16" });
  assertEquals(q8.tensors.find((t) => t.name === "model.layers.0.mlp.down_proj.weight")!.shape, [
    896,
    4864 / 4,
  ]);
  assertEquals(q8.tensors.find((t) => t.name === "model.layers.0.mlp.down_proj.scales")!.dtype, "F16");
});

Deno.test("planModel: a tensor above the shard size gets its own shard, then greedy filling", () => {
  // tiny bf16 layer = 123,392 bytes; limit 250,000 → [embedding], [layers 0-1], [layers 2-3 + norm]
  const plan = planModel(PRESETS.tiny, { dtype: "bf16", shardSize: 250_000 });
  assertEquals(plan.files.length, 3);
  assertEquals(plan.files[0].tensors.map((t) => t.name), ["model.embed_tokens.weight"]);
  assertEquals(plan.files[1].tensorBytes, 2 * 123_392);
  assertEquals(plan.files[2].tensorBytes, 2 * 123_392 + 128);
  assert(plan.files[1].tensors.every((t) => /^model\.layers\.[01]\./.test(t.name)));
  assertEquals(plan.files[2].name, "model-00003-of-00003.safetensors");
});

Deno.test("planModel: errors name the problem", async () => {
  await assertRejects(
    () => planModel(PRESETS.tiny, { format: "mlx-q4", dtype: "f32" }),
    "bf16 or f16, not f32",
  );
  await assertRejects(
    () => planModel({ ...PRESETS.tiny, intermediateSize: 100 }, { format: "mlx-q4" }),
    "model.layers.0.mlp.down_proj.weight has 100 input columns, not a multiple of 64",
  );
  await assertRejects(() => planModel(PRESETS.tiny, { shardSize: 0 }), "shard size must be a positive");
  await assertRejects(
    () => planModel({ ...PRESETS.tiny, numKvHeads: 3 }),
    "make-model config: num_key_value_heads: 3 does not divide",
  );
  await assertRejects(
    () => makeModel(PRESETS.tiny, memoryModelSink(), { seed: 0.5 }),
    "seed must be a safe integer",
  );
});

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "mesp_make_model_" });
}

function moments(v: Float32Array): { mean: number; std: number; within1: number } {
  let s = 0, s2 = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
  }
  const mean = s / v.length;
  const std = Math.sqrt(s2 / v.length - mean * mean);
  let within = 0;
  for (const x of v) if (Math.abs(x - mean) <= std) within++;
  return { mean, std, within1: within / v.length };
}

Deno.test("make-model CLI: tiny hf writes a checkpoint that reads back with the expected tensors and values", async () => {
  const dir = await tempDir();
  try {
    assertEquals(await run(["--preset", "tiny", "--out", dir, "--seed", "7"]), 0);
    const files = dirFiles(dir);
    assertEquals(await files.list!(), [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const cfg = parseModelConfig(JSON.parse((await files.readText("config.json"))!));
    const want: ModelConfig = { ...PRESETS.tiny };
    assertEquals(cfg, want);
    const gen = JSON.parse((await files.readText("generation_config.json"))!);
    assertEquals(gen, { bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643 });
    const tok = JSON.parse((await files.readText("tokenizer.json"))!);
    assertEquals(tok.model.type, "BPE");
    const tokCfg = JSON.parse((await files.readText("tokenizer_config.json"))!);
    assertEquals(tokCfg.eos_token, "<|im_end|>");

    const ck = await openCheckpoint(files);
    try {
      const got = new Map(ck.names().map((n) => [n, ck.get(n).info] as [string, TensorInfo]));
      assertEquals(got.size, 12 * 4 + 2); // tied: no lm_head.weight
      assertEquals(
        layout(got.values()),
        sorted(new Map([...expectedHf(TINY)].map(([n, s]) => [n, ["F32", s]]))),
      );
      assertEquals(ck.files.get("model.safetensors")!.metadata, { format: "pt" });
      // values: weights N(0, 0.02²) (checked on 9.7M embedding values), norms 1 + N(0, 0.02²), biases N(0, 0.02²)
      const loc = ck.get("model.embed_tokens.weight");
      const emb = moments(await readTensorF32(loc.file, loc.info.name));
      assert(Math.abs(emb.mean) < 1e-4, `embedding mean ${emb.mean}`);
      assert(Math.abs(emb.std - 0.02) < 1e-4, `embedding std ${emb.std}`);
      assert(Math.abs(emb.within1 - 0.6827) < 0.002, `embedding P(|x| < σ) ${emb.within1}`);
      const norms: number[] = [];
      const biases: number[] = [];
      for (const n of ck.names()) {
        const l = ck.get(n);
        if (/norm\.weight$/.test(n)) norms.push(...await readTensorF32(l.file, n));
        if (/\.bias$/.test(n)) biases.push(...await readTensorF32(l.file, n));
      }
      const nm = moments(Float32Array.from(norms)), bm = moments(Float32Array.from(biases));
      assert(Math.abs(nm.mean - 1) < 0.005 && Math.abs(nm.std - 0.02) < 0.003, `norms ${JSON.stringify(nm)}`);
      assert(Math.abs(bm.mean) < 0.005 && Math.abs(bm.std - 0.02) < 0.003, `biases ${JSON.stringify(bm)}`);
    } finally {
      ck.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("make-model CLI: tiny mlx-q4 reads back; dequantized weights are the hf f32 weights within scale/2", async () => {
  const dir = await tempDir();
  try {
    assertEquals(await run(["--preset", "tiny", "--out", dir, "--format", "mlx-q4", "--seed", "7"]), 0);
    const files = dirFiles(dir);
    const json = JSON.parse((await files.readText("config.json"))!);
    assertEquals(json.quantization, { group_size: 64, bits: 4 });
    assertEquals(json.quantization_config, { group_size: 64, bits: 4 });
    const cfg = parseModelConfig(json);
    assertEquals(cfg.quantization, { groupSize: 64, bits: 4 });
    assertEquals(cfg.dtype, "bfloat16");
    const ck = await openCheckpoint(files);
    try {
      const want = expectedMlx(expectedHf(TINY), "BF16");
      assertEquals(ck.names().length, 50 + 2 * (7 * 4 + 1));
      assertEquals(
        layout(ck.names().map((n) => ck.get(n).info)),
        sorted(want),
      );
      assertEquals(ck.files.get("model.safetensors")!.metadata, { format: "mlx" });

      // The same seed in hf f32 gives the float weights that were quantized.
      const hf = memoryModelSink();
      await makeModel(PRESETS.tiny, hf, { seed: 7, dtype: "f32" });
      const hfFile = await readSafetensorsHeader(bytesSource(hf.files.get("model.safetensors")!));
      for (
        const base of [
          "model.layers.2.mlp.down_proj",
          "model.layers.0.self_attn.k_proj",
          "model.embed_tokens",
        ]
      ) {
        const w = await readTensorF32(hfFile, `${base}.weight`);
        const u32 = await readTensorBytes(ck.get(`${base}.weight`).file, `${base}.weight`);
        const half = async (n: string) => {
          const b = await readTensorBytes(ck.get(n).file, n);
          return new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
        };
        const scales = await half(`${base}.scales`);
        const biases = await half(`${base}.biases`);
        const cols = ck.get(`${base}.weight`).info.shape[1] * 8;
        const d = dequantize(
          { q: fromMlxU32(new Uint32Array(u32.buffer, u32.byteOffset, u32.length / 4)), scales, biases },
          cols,
          { scaleDtype: "bf16" },
        );
        let worst = 0;
        for (let i = 0; i < w.length; i++) {
          const g = Math.floor(i / 64);
          const s = bf16BitsToF32(scales[g]);
          // scale/2 from the code, plus bf16 rounding of the scale (×15) and of the bias (|bias| ≤ 0.15)
          const bound = s / 2 + 15 * s * 2 ** -8 + 0.15 * 2 ** -8;
          worst = Math.max(worst, Math.abs(d[i] - w[i]) / bound);
        }
        assert(worst <= 1, `${base}: worst error ${worst} of the bound`);
      }
    } finally {
      ck.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function bytesOf(format: "hf" | "mlx-q4", seed: number, chunkElements?: number): Promise<Uint8Array> {
  const sink = memoryModelSink();
  const small = { ...PRESETS.tiny, vocabSize: 4096 }; // fast: the real vocabulary adds nothing here
  await makeModel(small, sink, { format, seed, dtype: "bf16", chunkElements });
  return sink.files.get("model.safetensors")!;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("makeModel: same seed → identical bytes (any chunk size), different seed → different", async () => {
  for (const format of ["hf", "mlx-q4"] as const) {
    const a = await bytesOf(format, 1);
    assert(same(a, await bytesOf(format, 1)), `${format}: same seed, same bytes`);
    assert(same(a, await bytesOf(format, 1, 1000)), `${format}: chunk size does not change the bytes`);
    const b = await bytesOf(format, 2);
    assertEquals(b.length, a.length);
    assert(!same(a, b), `${format}: another seed gives other bytes`);
  }
});

Deno.test("makeModel: sharded output with index; progress reaches the total", async () => {
  const sink = memoryModelSink();
  const seen: MakeModelProgress[] = [];
  const plan = await makeModel(PRESETS.tiny, sink, {
    dtype: "bf16",
    shardSize: 250_000,
    onProgress: (p) => seen.push(p),
  });
  assertEquals([...sink.files.keys()], [
    "model-00001-of-00003.safetensors",
    "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
    "model.safetensors.index.json",
    "generation_config.json",
    "config.json",
  ]);
  const index = JSON.parse(new TextDecoder().decode(sink.files.get("model.safetensors.index.json")));
  assertEquals(index.metadata, { total_size: plan.totalBytes });
  assertEquals(Object.keys(index.weight_map).length, 50);
  assertEquals(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());
  assertEquals(index.weight_map["model.embed_tokens.weight"], "model-00001-of-00003.safetensors");
  assertEquals(index.weight_map["model.norm.weight"], "model-00003-of-00003.safetensors");
  for (const f of plan.files) assertEquals(sink.files.get(f.name)!.length, f.fileSize, f.name);
  // progress: bytes never decrease and end at the total; every tensor is reported
  for (let i = 1; i < seen.length; i++) assert(seen[i].bytes >= seen[i - 1].bytes, "monotonic bytes");
  assertEquals(seen[seen.length - 1].bytes, plan.totalBytes);
  assertEquals(new Set(seen.map((p) => p.tensor)).size, 50);
  for (let i = 1; i < seen.length; i++) {
    assert(seen[i].tensor >= seen[i - 1].tensor, "tensors in write order");
  }
  assertEquals(seen.at(-1)!.tensor, 50);
  assertEquals(seen[0].tensors, 50);
});

Deno.test("make-model CLI: a sharded dir reads back; refuses a non-empty dir; --force replaces stale shards", async () => {
  const dir = await tempDir();
  try {
    assertEquals(
      await run(["--preset", "tiny", "--out", dir, "--dtype", "bf16", "--shard-size", "250KB"]),
      0,
    );
    const ck = await openCheckpoint(dirFiles(dir));
    assertEquals(ck.names().length, 50);
    assertEquals(ck.files.size, 3);
    ck.close();
    await assertRejects(() => run(["--preset", "tiny", "--out", dir]), "is not empty");
    assertEquals(await run(["--preset", "tiny", "--out", dir, "--force"]), 0);
    const names = await dirFiles(dir).list!();
    assert(!names.some((n) => /model-\d+-of-|index/.test(n)), `stale shards removed: ${names}`);
    const ck2 = await openCheckpoint(dirFiles(dir));
    assertEquals(ck2.get("model.norm.weight").info.dtype, "F32");
    ck2.close();
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assertRejects(
      () => run(["--preset", "tiny", "--out", `${dir}/file`]),
      "exists and is not a directory",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
