// Adapters out: `export --format gguf` read back by an independent GGUF parser (npm @huggingface/gguf) and
// checked against llama.cpp's adapter layout, `export --format mlx` against MLX-LM's LoRALinear layout, and
// `merge` against a PyTorch-made reference (tests/fixtures/merged/, written by make_merged.py): the merged
// weights, and the merged model's loss equal to the loss of base + adapter.
// deno-lint-ignore no-import-prefix -- a pinned npm: reader used only by this test
import { gguf } from "npm:@huggingface/gguf@0.4.6";
import { assert, assertEquals } from "./_assert.ts";
import { caseDir } from "./_golden.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { readSafetensorsHeader, readTensorBytes, readTensorF32 } from "../src/model/safetensors.ts";
import { bf16BitsToF32, f16BitsToF32 } from "../src/model/dtype.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "mesp-export-" });
const cache = `${tmp}/cache`;

async function mesp(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { MESP_CACHE: cache, NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The golden cases' adapters, as their README documents them (written by hand, not derived). */
const CASES = {
  gqa_tied_f32: { layers: 2, rank: 8, scale: 2, targets: ["q", "k", "v", "o", "gate", "up", "down"] },
  mqa_f16_sharded: { layers: 2, rank: 1, scale: 4, targets: ["o", "gate", "down"] },
  new_keys: { layers: 2, rank: 4, scale: 4, targets: ["k", "up", "down"] }, // rsLoRA: 8 / √4
} as const;

/** HF module path, llama.cpp tensor name (llama.cpp's LLM_TENSOR names for qwen2), [out, in] of each case. */
const MODULES: Record<string, { hf: string; gguf: string; shape: Record<string, [number, number]> }> = {
  q: { hf: "self_attn.q_proj", gguf: "attn_q", shape: { gqa_tied_f32: [64, 64] } },
  k: { hf: "self_attn.k_proj", gguf: "attn_k", shape: { gqa_tied_f32: [32, 64], new_keys: [32, 64] } },
  v: { hf: "self_attn.v_proj", gguf: "attn_v", shape: { gqa_tied_f32: [32, 64] } },
  o: {
    hf: "self_attn.o_proj",
    gguf: "attn_output",
    shape: { gqa_tied_f32: [64, 64], mqa_f16_sharded: [64, 64] },
  },
  gate: {
    hf: "mlp.gate_proj",
    gguf: "ffn_gate",
    shape: { gqa_tied_f32: [96, 64], mqa_f16_sharded: [96, 64] },
  },
  up: { hf: "mlp.up_proj", gguf: "ffn_up", shape: { gqa_tied_f32: [96, 64], new_keys: [96, 64] } },
  down: {
    hf: "mlp.down_proj",
    gguf: "ffn_down",
    shape: { gqa_tied_f32: [64, 96], mqa_f16_sharded: [64, 96], new_keys: [64, 96] },
  },
};

async function peft(name: string) {
  const f = await readSafetensorsHeader(fileSource(`${caseDir(name)}/adapter/adapter_model.safetensors`));
  return (layer: number, mod: string, which: "A" | "B") =>
    readTensorF32(f, `base_model.model.model.layers.${layer}.${mod}.lora_${which}.weight`);
}

const bigint = (_k: string, v: unknown) => (typeof v === "bigint" ? Number(v) : v);

for (const [name, c] of Object.entries(CASES)) {
  Deno.test(`export gguf ${name}: llama.cpp's adapter keys, tensor names, ne shapes and the PEFT values`, async () => {
    const out = `${tmp}/${name}/adapter.gguf`;
    const r = await mesp(
      "export",
      "--adapter",
      `${caseDir(name)}/adapter`,
      "--model",
      caseDir(name),
      "--format",
      "gguf",
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const parsed = await gguf(out, { allowLocalFile: true });
    const meta = JSON.parse(JSON.stringify(parsed.metadata, bigint));
    assertEquals(meta.version, 3);
    assertEquals(meta["general.architecture"], "qwen2");
    assertEquals(meta["general.type"], "adapter");
    assertEquals(meta["adapter.type"], "lora");
    // llama.cpp scales by alpha / rank (rank = lora_b's ne[0]); it must give PEFT's scale
    assertEquals(meta["adapter.lora.alpha"], c.scale * c.rank);
    const infos = new Map(parsed.tensorInfos.map((t) => [t.name, t]));
    assertEquals(infos.size, 2 * c.layers * c.targets.length);
    const read = await peft(name);
    const file = await Deno.open(out);
    try {
      for (let l = 0; l < c.layers; l++) {
        for (const t of c.targets) {
          const [outDim, inDim] = MODULES[t].shape[name];
          for (const [which, ne] of [["A", [inDim, c.rank]], ["B", [c.rank, outDim]]] as const) {
            const info = infos.get(`blk.${l}.${MODULES[t].gguf}.weight.lora_${which.toLowerCase()}`);
            assert(info, `${name}: no ${MODULES[t].gguf} lora_${which} in layer ${l}`);
            assertEquals(info.shape.map(Number), [...ne]);
            assertEquals(info.dtype, 0); // GGML_TYPE_F32
            const bytes = new Uint8Array(ne[0] * ne[1] * 4);
            await file.seek(parsed.tensorDataOffset + info.offset, Deno.SeekMode.Start);
            let got = 0;
            while (got < bytes.length) got += (await file.read(bytes.subarray(got)))!;
            // ggml ne [in, r] is the row-major [r, in] of PEFT's A (and [r, out] of B's [out, r])
            assertEquals(new Float32Array(bytes.buffer), await read(l, MODULES[t].hf, which));
          }
        }
      }
    } finally {
      file.close();
    }
  });

  Deno.test(`export mlx ${name}: MLX-LM's adapter_config and lora_a [in, r] / lora_b [r, out]`, async () => {
    const out = `${tmp}/${name}/mlx`;
    const r = await mesp(
      "export",
      "--adapter",
      `${caseDir(name)}/adapter`,
      "--model",
      caseDir(name),
      "--format",
      "mlx",
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const cfg = JSON.parse(await Deno.readTextFile(`${out}/adapter_config.json`));
    assertEquals(cfg.fine_tune_type, "lora");
    assertEquals(cfg.num_layers, c.layers); // MLX-LM adapts the last num_layers layers: all of them
    assertEquals(cfg.lora_parameters.rank, c.rank);
    assertEquals(cfg.lora_parameters.scale, c.scale);
    assertEquals(cfg.lora_parameters.dropout, 0);
    assertEquals(cfg.lora_parameters.keys, c.targets.map((t) => MODULES[t].hf));
    const f = await readSafetensorsHeader(fileSource(`${out}/adapters.safetensors`));
    assertEquals(f.tensors.size, 2 * c.layers * c.targets.length);
    const read = await peft(name);
    for (let l = 0; l < c.layers; l++) {
      for (const t of c.targets) {
        const [outDim, inDim] = MODULES[t].shape[name];
        const base = `model.layers.${l}.${MODULES[t].hf}`;
        assertEquals(f.tensors.get(`${base}.lora_a`)?.shape, [inDim, c.rank]);
        assertEquals(f.tensors.get(`${base}.lora_b`)?.shape, [c.rank, outDim]);
        // MLX-LM's LoRALinear adds scale · (x @ lora_a) @ lora_b; PEFT adds s · (x Aᵀ) Bᵀ: equal for any x
        const la = await readTensorF32(f, `${base}.lora_a`), lb = await readTensorF32(f, `${base}.lora_b`);
        const A = await read(l, MODULES[t].hf, "A"), B = await read(l, MODULES[t].hf, "B");
        const x = Float64Array.from({ length: inDim }, (_, i) => Math.sin(i + 1));
        for (let o = 0; o < outDim; o++) {
          let mlx = 0, ref = 0;
          for (let k = 0; k < c.rank; k++) {
            let xa = 0, xA = 0;
            for (let i = 0; i < inDim; i++) {
              xa += x[i] * la[i * c.rank + k];
              xA += x[i] * A[k * inDim + i];
            }
            mlx += xa * lb[k * outDim + o];
            ref += xA * B[o * c.rank + k];
          }
          assert(
            Math.abs(mlx - ref) <= 1e-6 * (Math.abs(ref) + 1e-3),
            `${base} output ${o}: ${mlx} vs ${ref}`,
          );
        }
      }
    }
  });
}

/** Half bits → f32 by dtype. */
function decode(dtype: string, raw: Uint8Array): Float32Array {
  if (dtype === "F32") return new Float32Array(raw.slice().buffer);
  const half = new Uint16Array(raw.slice().buffer);
  return Float32Array.from(half, dtype === "BF16" ? bf16BitsToF32 : f16BitsToF32);
}

/** Distance in units in the last place of `dtype` (f32, bf16: 7 mantissa bits, f16: 10). */
function ulps(a: number, b: number, dtype: string): number {
  const bits = dtype === "F32" ? 23 : dtype === "BF16" ? 7 : 10;
  const e = Math.floor(Math.log2(Math.max(Math.abs(a), Math.abs(b), dtype === "F16" ? 2 ** -14 : 2 ** -126)));
  return Math.abs(a - b) / 2 ** (e - bits);
}

async function idsFile(name: string): Promise<string> {
  const f = await readSafetensorsHeader(fileSource(`${caseDir(name)}/expected.safetensors`));
  const ids = [...new Int32Array((await readTensorBytes(f, "input_ids")).buffer)];
  const targets = [...await readTensorBytes(f, "targets")];
  const labels = ids.map((id, t) => (targets[t] || t === 0 ? id : -100));
  const path = `${tmp}/${name}.jsonl`;
  await Deno.writeTextFile(path, JSON.stringify({ input_ids: ids, labels }) + "\n");
  return path;
}

for (const name of ["gqa_tied_f32", "mha_untied_bf16", "mqa_f16_sharded", "new_keys"]) {
  Deno.test(`merge ${name}: PyTorch's merged weights; the merged model's loss is base + adapter's`, async () => {
    const out = `${tmp}/${name}-merged`;
    const r = await mesp(
      "merge",
      "--adapter",
      `${caseDir(name)}/adapter`,
      "--model",
      caseDir(name),
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const ref = await readSafetensorsHeader(
      fileSource(new URL(`./fixtures/merged/${name}.safetensors`, import.meta.url).pathname),
    );
    const base = [...Deno.readDirSync(caseDir(name))].map((e) => e.name).filter((n) =>
      n.endsWith(".safetensors") && n.startsWith("model")
    ).sort();
    const written = [...Deno.readDirSync(out)].map((e) => e.name).filter((n) => n.endsWith(".safetensors"))
      .sort();
    assertEquals(written, base, "the base's file names (shards too)");
    let merged = 0;
    for (const file of base) {
      const b = await readSafetensorsHeader(fileSource(`${caseDir(name)}/${file}`));
      const m = await readSafetensorsHeader(fileSource(`${out}/${file}`));
      assertEquals([...m.tensors.keys()].sort(), [...b.tensors.keys()].sort());
      for (const [tensor, info] of b.tensors) {
        const got = await readTensorBytes(m, tensor);
        assertEquals(m.tensors.get(tensor)!.dtype, info.dtype);
        if (!ref.tensors.has(tensor)) {
          assertEquals(got, await readTensorBytes(b, tensor), `${tensor} is copied unchanged`);
          continue;
        }
        merged++;
        const want = decode(info.dtype, await readTensorBytes(ref, tensor));
        const have = decode(info.dtype, got);
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, ulps(have[i], want[i], info.dtype));
        // f64 sum rounded to f32 then to the dtype: at most one ulp from PyTorch's single rounding
        assert(worst <= 1, `${tensor}: ${worst} ulp from PyTorch's merged weight`);
      }
    }
    assertEquals(merged, ref.tensors.size - 2);
    // the loss over the case's trained positions (its mask too): `grad` reports it, with a fresh adapter (B = 0)
    const g = await mesp(
      "grad",
      "--model",
      out,
      "--data",
      await idsFile(name),
      "--weights",
      "f32",
      "--out",
      `${out}-g.safetensors`,
    );
    assertEquals(g.code, 0, g.stderr);
    const grads = await readSafetensorsHeader(fileSource(`${out}-g.safetensors`));
    const nll = new Float32Array((await readTensorBytes(grads, "loss")).buffer)[0];
    const f64 = async (t: string) => new Float64Array((await readTensorBytes(ref, t)).buffer)[0];
    const lossMerged = await f64("loss_merged"), lossAdapter = await f64("loss_adapter");
    assert(
      Math.abs(nll - lossMerged) <= 1e-5 * lossMerged,
      `${name}: merged nll ${nll} vs PyTorch ${lossMerged}`,
    );
    // and merging changed the loss only by the rounding of W + s·B·A to the base's dtype
    const rounding = name === "gqa_tied_f32" ? 1e-6 : 1e-3; // measured: 1e-8 and ≤ 2.1e-4
    assert(
      Math.abs(lossMerged - lossAdapter) <= rounding * lossAdapter,
      `${name}: ${lossMerged} vs ${lossAdapter}`,
    );
  });
}

Deno.test("export/merge: bad inputs are refused with a clear message, nothing overwritten", async () => {
  const name = "gqa_tied_f32";
  const out = `${tmp}/bad/adapter.gguf`;
  await Deno.mkdir(`${tmp}/bad`, { recursive: true });
  await Deno.writeTextFile(out, "mine");
  const again = await mesp(
    "export",
    "--adapter",
    `${caseDir(name)}/adapter`,
    "--model",
    caseDir(name),
    "--format",
    "gguf",
    "--out",
    out,
  );
  assertEquals(again.code, 1);
  assert(again.stderr.includes("already exists; use --force"), again.stderr);
  assertEquals(await Deno.readTextFile(out), "mine");
  // an adapter naming no base model, and no --model
  const bare = `${tmp}/bad/bare`;
  await Deno.mkdir(bare);
  const cfg = JSON.parse(await Deno.readTextFile(`${caseDir(name)}/adapter/adapter_config.json`));
  await Deno.writeTextFile(
    `${bare}/adapter_config.json`,
    JSON.stringify({ ...cfg, base_model_name_or_path: null }),
  );
  await Deno.copyFile(
    `${caseDir(name)}/adapter/adapter_model.safetensors`,
    `${bare}/adapter_model.safetensors`,
  );
  const noBase = await mesp("export", "--adapter", bare, "--format", "mlx");
  assertEquals(noBase.code, 1);
  assert(noBase.stderr.includes("give --model"), noBase.stderr);
  // an adapter for another model
  const wrong = await mesp(
    "merge",
    "--adapter",
    `${caseDir("gqa_tied_f32")}/adapter`,
    "--model",
    caseDir("mqa_f16_sharded"),
    "--out",
    `${tmp}/bad/merged`,
  );
  assertEquals(wrong.code, 1);
  assert(/shape|has no tensor|unexpected tensor/.test(wrong.stderr), wrong.stderr);
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
