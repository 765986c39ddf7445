// Honest defaults about weights (every command says which weights it runs on; eval and generate use the
// checkpoint's own precision; a shape q4 cannot group falls back with a notice) and a lean `generate`
// (weights streamed, tokenizer in a child process) whose text equals the in-process reference.
import { assert, assertEquals } from "./_assert.ts";
import { caseDir } from "./_golden.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { readSafetensorsHeader, readTensorBytes } from "../src/model/safetensors.ts";
import { PRESETS } from "../src/model/config.ts";
import { makeModel } from "../src/model/make_model.ts";
import { writeFileAtomic } from "../src/io/deno_files.ts";
import { qwenTokenizerFiles } from "../src/text/qwen_tokenizer_files.ts";
import { createStreamDecoder, loadTokenizer } from "../src/text/tokenizer.ts";
import { renderChat } from "../src/text/chat.ts";
import { loadOrBuildPack, readModelConfig } from "../src/model/pack_files.ts";
import { generate } from "../src/run/generate.ts";
import { checkpointFormat, chooseWeights } from "../src/cli/weights.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "mesp-weights-" });
const cache = `${tmp}/cache`;

async function mesp(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--max-semi-space-size=1", MAIN, ...args],
    env: { MESP_CACHE: cache, NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function idsFile(name: string): Promise<string> {
  const f = await readSafetensorsHeader(fileSource(`${caseDir(name)}/expected.safetensors`));
  const ids = [...new Int32Array((await readTensorBytes(f, "input_ids")).buffer)];
  const path = `${tmp}/${name}.jsonl`;
  await Deno.writeTextFile(path, JSON.stringify({ input_ids: ids }) + "\n");
  return path;
}

Deno.test("weights: the checkpoint's own precision is read from its config", async () => {
  const want = { gqa_tied_f32: "f32", mha_untied_bf16: "bf16", mqa_f16_sharded: "f16", mlx_q4: "q4" };
  for (const [name, format] of Object.entries(want)) {
    assertEquals(checkpointFormat(await readModelConfig(caseDir(name))), format, name);
  }
  const odd = await readModelConfig(caseDir("odd_sizes")); // hidden 48: not a multiple of 64
  const w = chooseWeights(odd, undefined, "q4");
  assertEquals(w.format, "f32");
  assert(w.line.includes("q4 needs input dimensions that are multiples of 64 and this model has 48"), w.line);
  assertEquals(chooseWeights(odd, "q8", "q4").format, "f32");
  const q4 = await readModelConfig(caseDir("mlx_q4")); // every input dimension a multiple of 64
  assertEquals(chooseWeights(q4, undefined, "q4").format, "q4");
  assertEquals(chooseWeights(q4, undefined, "checkpoint").format, "q4");
  const bf16 = await readModelConfig(caseDir("mha_untied_bf16")); // intermediate 96: q4 cannot group it
  assertEquals(chooseWeights(bf16, undefined, "q4").format, "bf16");
  // an adapter's recorded weights are the default; a typed --weights still wins
  const trainedOn = { format: "f32", recordedIn: "runs/a/checkpoint.safetensors" } as const;
  const fromRun = chooseWeights(bf16, undefined, trainedOn);
  assertEquals(fromRun.format, "f32");
  assert(
    fromRun.line.includes("what the adapter was trained on, recorded in runs/a/checkpoint"),
    fromRun.line,
  );
  assertEquals(chooseWeights(bf16, "bf16", trainedOn).format, "bf16");
  assertEquals(
    chooseWeights(await readModelConfig(caseDir("mha_untied_bf16")), "f32", "checkpoint").format,
    "f32",
  );
});

Deno.test("eval with no --weights runs on a bf16 checkpoint's own weights: PyTorch's loss, and says so", async () => {
  const name = "mha_untied_bf16";
  const r = await mesp("eval", "--model", caseDir(name), "--data", await idsFile(name), "--json");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(JSON.parse(r.stdout).weights, "bf16");
  const f = await readSafetensorsHeader(fileSource(`${caseDir(name)}/expected.safetensors`));
  // expected.safetensors' loss_base is over the masked targets; eval predicts every position, so compare
  // with PyTorch's logits: the mean NLL of every next token
  const logits = new Float32Array((await readTensorBytes(f, "logits_base")).buffer);
  const ids = new Int32Array((await readTensorBytes(f, "input_ids")).buffer);
  const V = logits.length / ids.length;
  let nll = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    const max = Math.max(...row);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    nll += max + Math.log(sum) - row[ids[t + 1]];
  }
  nll /= ids.length - 1;
  const got = JSON.parse(r.stdout).nll;
  assert(Math.abs(got - nll) <= 1e-4 * nll, `eval ${got} vs PyTorch ${nll}`);
});

Deno.test("train on a shape q4 cannot group: falls back to the checkpoint's float format, with a notice", async () => {
  const name = "odd_sizes";
  const r = await mesp(
    "train",
    "--model",
    caseDir(name),
    "--data",
    await idsFile(name),
    "--steps",
    "1",
    "--seq-len",
    "64",
    "--json",
    "--threads",
    "1",
    "--out",
    `${tmp}/odd-run`,
  );
  assertEquals(r.code, 0, r.stderr);
  const first = r.stderr.split("\n").find((l) => l.startsWith("weights: "));
  assert(first?.includes("weights: f32 — q4 needs input dimensions that are multiples of 64"), r.stderr);
});

Deno.test("generate: streamed weights, tokenizer in a child; same text as the in-process reference, lean peak", async () => {
  const dir = `${tmp}/tiny`;
  await Deno.mkdir(dir);
  const files = await qwenTokenizerFiles();
  await makeModel(PRESETS.tiny, {
    writeText: (n, t) => writeFileAtomic(`${dir}/${n}`, new TextEncoder().encode(t)),
    writeFile: (n, w) => writeFileAtomic(`${dir}/${n}`, w),
  }, { tokenizer: files, dtype: "bf16", seed: 3 });
  const prompt = "How long is the warranty? 你好";
  const r = await mesp(
    "generate",
    "--model",
    dir,
    "--prompt",
    prompt,
    "--temperature",
    "0",
    "--max-tokens",
    "12",
    "--threads",
    "1",
  );
  assertEquals(r.code, 0, r.stderr);
  assert(r.stderr.includes("weights: bf16 (the checkpoint's own precision"), r.stderr);
  // the reference: the library's generator with the tokenizer in this process, on the same bf16 pack
  const tok = await loadTokenizer(files);
  const { pack } = await loadOrBuildPack(dir, { format: "bf16", cacheDir: `${cache}/packs` });
  const ids = tok.encode(renderChat([{ role: "user", content: prompt }], { addGenerationPrompt: true }));
  const dec = createStreamDecoder(tok, { skipSpecialTokens: true });
  let want = "";
  const eos = new Set(tok.eosTokenIds);
  for await (const id of generate(pack, ids, { maxTokens: 12, temperature: 0, eosTokenIds: [...eos] })) {
    if (eos.has(id)) break;
    want += dec.push(id);
  }
  want += dec.flush();
  assertEquals(r.stdout, want + "\n");
  // loading the Qwen tokenizer alone takes the process past 180 MB; streamed, the whole process stays lean
  const peak = Number(/peak memory ([\d.]+) MB/.exec(r.stderr)?.[1]);
  assert(peak > 0 && peak < 150, `generate peak ${peak} MB`);
  pack.source.close?.();
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
