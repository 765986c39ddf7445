// `merge --format gguf` and `export --format gguf --base`, read back with an independent GGUF parser (npm
// @huggingface/gguf): llama.cpp's qwen2 keys with the config's values, its tensor names, ne shapes and types
// (norms and biases f32, matrices in the base's dtype), the tokenizer as tokenizer.* metadata, and every
// tensor's values equal to the safetensors `merge` writes (checked against PyTorch in export_test.ts) or to the
// base's own. The golden cases have no tokenizer, so each gets a small synthetic BPE tokenizer.json here.
// deno-lint-ignore no-import-prefix -- a pinned npm: reader used only by tests
import { gguf } from "npm:@huggingface/gguf@0.4.6";
import { assert, assertEquals } from "./_assert.ts";
import { caseDir } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { openCheckpoint, readTensorBytes } from "../src/model/safetensors.ts";
import { bf16BitsToF32, f16BitsToF32 } from "../src/model/dtype.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "mesp-gguf-" });

async function mesp(...args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { MESP_CACHE: `${tmp}/cache`, NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** A 256-token BPE tokenizer: 254 plain tokens, two special ones, merges in both of HF's spellings. */
function tokenizerJson(): string {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < 254; i++) vocab[`t${i}`] = i;
  return JSON.stringify({
    model: { type: "BPE", vocab, merges: [["t1", "t2"], "t3 t4"] },
    added_tokens: [
      { id: 254, content: "<|endoftext|>", special: true },
      { id: 255, content: "<|im_end|>", special: true },
    ],
  });
}
const TOKENIZER_CONFIG = JSON.stringify({
  add_bos_token: false,
  eos_token: "<|im_end|>",
  pad_token: "<|endoftext|>",
  chat_template: "{{ messages }}",
});

/** The case directory with the synthetic tokenizer files added. */
async function withTokenizer(name: string): Promise<string> {
  const dir = `${tmp}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  for (const e of Deno.readDirSync(caseDir(name))) {
    if (e.isFile) await Deno.copyFile(`${caseDir(name)}/${e.name}`, `${dir}/${e.name}`);
  }
  await Deno.writeTextFile(`${dir}/tokenizer.json`, tokenizerJson());
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, TOKENIZER_CONFIG);
  return dir;
}

/** llama.cpp's names for a Qwen2 checkpoint's tensors (LLM_TENSOR_* of the qwen2 architecture), by hand. */
function llamaName(hf: string): string | undefined {
  const fixed: Record<string, string | undefined> = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
  };
  if (hf in fixed) return fixed[hf];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf)!;
  const local: Record<string, string> = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
  };
  return `blk.${m[1]}.${local[m[2]]}`;
}

function toF32(dtype: string, raw: Uint8Array): Float32Array {
  if (dtype === "F32") return new Float32Array(raw.slice().buffer);
  const half = new Uint16Array(raw.slice().buffer);
  return Float32Array.from(half, dtype === "BF16" ? bf16BitsToF32 : f16BitsToF32);
}

const GGML = { F32: 0, F16: 1, BF16: 30 } as Record<string, number>;
const bigint = (_k: string, v: unknown) => (typeof v === "bigint" ? Number(v) : v);

/** Checks `file` against the safetensors checkpoint `reference` (same values, llama.cpp's layout). */
async function checkGguf(file: string, reference: string, cfg: Record<string, unknown>, dtype: string) {
  const parsed = await gguf(file, { allowLocalFile: true });
  const meta = JSON.parse(JSON.stringify(parsed.metadata, bigint));
  assertEquals(meta["general.architecture"], "qwen2");
  assertEquals(meta["general.type"], "model");
  assertEquals(meta["general.file_type"], { F32: 0, F16: 1, BF16: 32 }[dtype]);
  assertEquals(meta["qwen2.embedding_length"], cfg.hidden_size);
  assertEquals(meta["qwen2.block_count"], cfg.num_hidden_layers);
  assertEquals(meta["qwen2.feed_forward_length"], cfg.intermediate_size);
  assertEquals(meta["qwen2.attention.head_count"], cfg.num_attention_heads);
  assertEquals(meta["qwen2.attention.head_count_kv"], cfg.num_key_value_heads);
  assertEquals(meta["qwen2.context_length"], cfg.max_position_embeddings);
  assertEquals(meta["qwen2.rope.freq_base"], Math.fround((cfg.rope_theta as number) ?? 10000));
  assertEquals(meta["qwen2.attention.layer_norm_rms_epsilon"], Math.fround(cfg.rms_norm_eps as number));
  if (cfg.head_dim !== undefined) assertEquals(meta["qwen2.attention.key_length"], cfg.head_dim);
  else assert(!("qwen2.attention.key_length" in meta), "no key_length when head_dim = hidden / heads");
  // the tokenizer, by id
  assertEquals(meta["tokenizer.ggml.model"], "gpt2");
  assertEquals(meta["tokenizer.ggml.pre"], "qwen2");
  const tokens = meta["tokenizer.ggml.tokens"] as string[];
  assertEquals(tokens.length, cfg.vocab_size);
  assertEquals([tokens[0], tokens[253], tokens[254], tokens[255]], [
    "t0",
    "t253",
    "<|endoftext|>",
    "<|im_end|>",
  ]);
  const types = meta["tokenizer.ggml.token_type"] as number[];
  assertEquals([types[0], types[253], types[254], types[255]], [1, 1, 3, 3]); // NORMAL, CONTROL
  assertEquals(meta["tokenizer.ggml.merges"], ["t1 t2", "t3 t4"]);
  assertEquals(meta["tokenizer.ggml.eos_token_id"], 255);
  assertEquals(meta["tokenizer.ggml.padding_token_id"], 254);
  assertEquals(meta["tokenizer.ggml.bos_token_id"], cfg.bos_token_id);
  assertEquals(meta["tokenizer.ggml.add_bos_token"], false);
  assertEquals(meta["tokenizer.chat_template"], "{{ messages }}");

  const ref = await openCheckpoint(dirFiles(reference));
  const handle = await Deno.open(file);
  try {
    const infos = new Map(parsed.tensorInfos.map((t) => [t.name, t]));
    const expected = ref.names().filter((n) => !(n === "lm_head.weight" && cfg.tie_word_embeddings));
    assertEquals([...infos.keys()].sort(), expected.map((n) => llamaName(n)!).sort());
    for (const name of expected) {
      const { info } = ref.get(name);
      const t = infos.get(llamaName(name)!)!;
      assertEquals(t.shape.map(Number), [...info.shape].reverse(), `${name}: ne is the shape reversed`);
      const type = info.shape.length === 1 ? "F32" : dtype;
      assertEquals(t.dtype, GGML[type], `${name} is ${type}`);
      const bytes = new Uint8Array(info.shape.reduce((a, b) => a * b, 1) * (type === "F32" ? 4 : 2));
      await handle.seek(parsed.tensorDataOffset + t.offset, Deno.SeekMode.Start);
      for (let got = 0; got < bytes.length;) got += (await handle.read(bytes.subarray(got)))!;
      const want = await readTensorBytes(ref.get(name).file, name);
      if (type === info.dtype) assertEquals(bytes, want, `${name}: the reference's bytes`);
      else assertEquals(toF32(type, bytes), toF32(info.dtype, want), `${name}: the reference's values`);
    }
  } finally {
    handle.close();
    ref.close();
  }
  return meta;
}

for (const name of ["gqa_tied_f32", "mha_untied_bf16", "mqa_f16_sharded", "head_dim_explicit", "mlx_q4"]) {
  Deno.test(`merge --format gguf ${name}: llama.cpp's layout, the merged safetensors' values`, async () => {
    const dir = await withTokenizer(name);
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const merged = `${tmp}/${name}-merged`;
    const st = await mesp("merge", "--adapter", `${caseDir(name)}/adapter`, "--model", dir, "--out", merged);
    assertEquals(st.code, 0, st.stderr);
    const file = `${tmp}/${name}.gguf`;
    const r = await mesp(
      "merge",
      "--adapter",
      `${caseDir(name)}/adapter`,
      "--model",
      dir,
      "--format",
      "gguf",
      "--out",
      file,
    );
    assertEquals(r.code, 0, r.stderr);
    const embed = (await openCheckpoint(dirFiles(merged))).get("model.embed_tokens.weight").info.dtype;
    await checkGguf(file, merged, cfg, embed);
  });
}

Deno.test("export --format gguf --base: the base unmerged, in --dtype; nothing overwritten without --force", async () => {
  const name = "mha_untied_bf16";
  const dir = await withTokenizer(name);
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  const base = `${tmp}/base-bf16.gguf`, lora = `${tmp}/lora.gguf`;
  const r = await mesp(
    "export",
    "--adapter",
    `${caseDir(name)}/adapter`,
    "--model",
    dir,
    "--format",
    "gguf",
    "--out",
    lora,
    "--base",
    base,
  );
  assertEquals(r.code, 0, r.stderr);
  await checkGguf(base, dir, cfg, "BF16");
  // --dtype f32: every value of the bf16 base, widened exactly
  const f32 = `${tmp}/base-f32.gguf`;
  const w = await mesp(
    "export",
    "--adapter",
    `${caseDir(name)}/adapter`,
    "--model",
    dir,
    "--format",
    "gguf",
    "--out",
    `${tmp}/lora2.gguf`,
    "--base",
    f32,
    "--dtype",
    "f32",
  );
  assertEquals(w.code, 0, w.stderr);
  await checkGguf(f32, dir, cfg, "F32");
  // an existing base file is refused before anything is written
  const before = await Deno.readFile(base);
  const again = await mesp(
    "export",
    "--adapter",
    `${caseDir(name)}/adapter`,
    "--model",
    dir,
    "--format",
    "gguf",
    "--out",
    `${tmp}/lora3.gguf`,
    "--base",
    base,
  );
  assertEquals(again.code, 1);
  assert(again.stderr.includes("already exists; use --force"), again.stderr);
  assertEquals(await Deno.readFile(base), before);
  await Deno.stat(`${tmp}/lora3.gguf`).then(() => assert(false, "the adapter was written"), () => {});
});

Deno.test("merge --format gguf: a base without tokenizer.json is refused, naming the file", async () => {
  const r = await mesp(
    "merge",
    "--adapter",
    `${caseDir("gqa_tied_f32")}/adapter`,
    "--model",
    caseDir("gqa_tied_f32"),
    "--format",
    "gguf",
    "--out",
    `${tmp}/none.gguf`,
  );
  assertEquals(r.code, 1);
  assert(r.stderr.includes("gqa_tied_f32/tokenizer.json is missing"), r.stderr);
  await Deno.stat(`${tmp}/none.gguf`).then(() => assert(false, "a file was written"), () => {});
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
