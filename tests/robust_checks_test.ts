// Root cause 6: checks that came too late or not at all. --max-memory is refused from config.json and the
// flags before anything is packed or tokenized; max_position_embeddings bounds eval, grad, plan and
// generate; layers config.json does not have are refused, other unknown tensors and ignored flags or
// adapter fields are warned about.
import { assert, assertEquals } from "./_assert.ts";
import { assertFails, assertUnchanged, copyCase, idsData, mesp, snapshot } from "./_robust.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { encodeSafetensors, readSafetensorsHeader, readTensorBytes } from "../src/model/safetensors.ts";

const tmp = await Deno.makeTempDir({ prefix: "mesp-checks-" });
const model = await copyCase("gqa_tied_f32", `${tmp}/model`); // 128 positions
const data = await idsData(`${tmp}/train.jsonl`);
const long = await idsData(`${tmp}/long.jsonl`, 2, 150);
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

// a tokenizer model with 40 positions, for generate
const tiny = `${tmp}/tiny40`;
{
  const r = await mesp(`${tmp}/cache-tiny`, "make-model", "--preset", "tiny", "--out", tiny);
  if (r.code !== 0) throw new Error(r.stderr);
  const cfg = JSON.parse(await Deno.readTextFile(`${tiny}/config.json`));
  cfg.max_position_embeddings = 40;
  await Deno.writeTextFile(`${tiny}/config.json`, JSON.stringify(cfg));
}

Deno.test("checks: --max-memory is refused before packing or tokenizing, showing the plan", async () => {
  const cache = `${tmp}/cache-mm`;
  // the runtime alone is 72 MB: the GEMM scratch (0.6 MB) no longer fits
  const m = ["--model", model, "--weights", "f32", "--max-memory", "72.5MB", "--threads", "1"];
  const cases: [string, string[]][] = [
    ["train", ["train", ...m, "--data", data, "--seq-len", "64", "--out", `${tmp}/mm-run`]],
    ["eval", ["eval", ...m, "--data", data]],
    ["grad", ["grad", ...m, "--data", data, "--seq-len", "64", "--out", `${tmp}/mm.safetensors`]],
    ["generate", [
      "generate",
      "--model",
      tiny,
      "--weights",
      "f32",
      "--max-memory",
      "72.5MB",
      "--threads",
      "1",
      "--prompt",
      "hi",
    ]],
  ];
  for (const [what, args] of cases) {
    const r = await mesp(cache, ...args);
    assertFails(
      r,
      1,
      /memory plan needs [\d.]+ MB but the budget is [\d.]+ MB \(--max-memory\), refused before packing or tokenizing \(the least any data needs[^\n]*:\n.*\n[^]*runtime/,
      what,
    );
    // a spilled training saves every input in its file: --ckpt bf16 or --ckpt-every would end the spill
    if (what === "train") {
      assert(r.stderr.includes("(smaller: --seq-len, --threads 1, a smaller --vocab-chunk)"), r.stderr);
    }
    assert(!(await exists(cache)), `${what}: nothing was packed or tokenized`);
  }
  assert(!(await exists(`${tmp}/mm-run`)) && !(await exists(`${tmp}/mm.safetensors`)), "nothing was written");
  // a size without a unit is bytes, and the error says so (it once read "--max-memory 0.0 MB is below …")
  const bare = await mesp(cache, "eval", "--model", model, "--data", data, "--max-memory", "100");
  assertFails(
    bare,
    1,
    /the budget is 0\.0 MB \(100 bytes: a size without a unit is bytes; 100MB\?\)/,
    "bare",
  );
});

Deno.test("checks: a --seq-len beyond max_position_embeddings is refused by eval, grad, plan and train", async () => {
  const cache = `${tmp}/cache-pos`;
  const m = ["--model", model, "--weights", "f32", "--seq-len", "200"];
  for (
    const args of [
      ["eval", ...m, "--data", data],
      ["grad", ...m, "--data", data, "--out", `${tmp}/pos.safetensors`],
      ["plan", ...m],
      ["train", ...m, "--data", data, "--out", `${tmp}/pos-run`],
    ]
  ) {
    assertFails(
      await mesp(cache, ...args),
      1,
      /--seq-len 200 is longer than the model allows \(128 positions\)/,
      args[0],
    );
  }
  // the defaults (eval 1024, grad 256) are lowered to the model's 128: a 150-token sequence scores 127 targets
  const r = await mesp(cache, "eval", "--model", model, "--weights", "f32", "--data", long, "--json");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(JSON.parse(r.stdout).tokens, 2 * 127);
});

Deno.test("checks: generate stops at the model's positions; a prompt without room is refused", async () => {
  const cache = `${tmp}/cache-gen`;
  const g = ["generate", "--model", tiny, "--weights", "f32", "--temperature", "0", "--raw"];
  const r = await mesp(cache, ...g, "--prompt", "one two three", "--max-tokens", "100000");
  assertEquals(r.code, 0, r.stderr);
  const m =
    /--max-tokens 100000: the model has 40 positions and the prompt (\d+) tokens, so at most (\d+) new tokens/
      .exec(r.stderr);
  assert(m && +m[1] + +m[2] === 40, r.stderr);
  const full = await mesp(cache, ...g, "--prompt", "word ".repeat(60));
  assertFails(full, 1, /the prompt is \d+ tokens: no room left in the model's 40 positions/, "long prompt");
});

Deno.test("checks: a layer config.json does not have, or one it has but the weights lack, is refused; unknown tensors are warned about", async () => {
  const cache = `${tmp}/cache-names`;
  // one layer fewer in the config than in the weights
  const fewer = await copyCase("gqa_tied_f32", `${tmp}/fewer`);
  const cfg = JSON.parse(await Deno.readTextFile(`${fewer}/config.json`));
  cfg.num_hidden_layers = 1;
  await Deno.writeTextFile(`${fewer}/config.json`, JSON.stringify(cfg));
  const before = await snapshot(fewer);
  const r = await mesp(cache, "eval", "--model", fewer, "--weights", "f32", "--data", data);
  assertFails(
    r,
    1,
    /has layer 1 \(model\.layers\.1\.[a-z_.]+\) but config\.json says num_hidden_layers 1/,
    "fewer",
  );
  await assertUnchanged(before, "fewer");
  // one layer more in the config than in the weights: refused before packing, naming the missing layer
  const more = await copyCase("gqa_tied_f32", `${tmp}/more`);
  cfg.num_hidden_layers = 3;
  await Deno.writeTextFile(`${more}/config.json`, JSON.stringify(cfg));
  const moreBefore = await snapshot(more);
  const m = await mesp(cache, "eval", "--model", more, "--weights", "f32", "--data", data);
  assertFails(
    m,
    1,
    /has no model\.layers\.2\.[a-z_.]+ \(and \d+ more missing\): config\.json says num_hidden_layers 3, but the weights have no layer 2/,
    "more",
  );
  await assertUnchanged(moreBefore, "more");
  // the weights plus a tensor Qwen2 has no use for
  const extra = await copyCase("gqa_tied_f32", `${tmp}/extra`);
  const st = await readSafetensorsHeader(fileSource(`${extra}/model.safetensors`));
  const entries = [];
  for (const info of st.tensors.values()) {
    entries.push({
      name: info.name,
      dtype: info.dtype,
      shape: info.shape,
      data: await readTensorBytes(st, info.name),
    });
  }
  entries.push({
    name: "model.layers.0.self_attn.o_proj.bias",
    dtype: "F32" as const,
    shape: [64],
    data: new Float32Array(64),
  });
  await Deno.writeFile(`${extra}/model.safetensors`, encodeSafetensors(entries));
  const w = await mesp(cache, "eval", "--model", extra, "--weights", "f32", "--data", data);
  assertEquals(w.code, 0, w.stderr);
  assert(
    w.stderr.includes(
      "1 tensor(s) are not used by a Qwen2 model and are ignored: model.layers.0.self_attn.o_proj.bias",
    ),
    w.stderr,
  );
});

Deno.test("checks: flags and adapter fields that have no effect are warned about", async () => {
  const cache = `${tmp}/cache-warn`;
  const adapter = `${tmp}/dropout-adapter`;
  await copyCase("gqa_tied_f32", `${tmp}/with-adapter`);
  await Deno.rename(`${tmp}/with-adapter/adapter`, adapter);
  const cfg = JSON.parse(await Deno.readTextFile(`${adapter}/adapter_config.json`));
  cfg.lora_dropout = 0.05;
  await Deno.writeTextFile(`${adapter}/adapter_config.json`, JSON.stringify(cfg));
  const t = [
    "train",
    "--model",
    model,
    "--weights",
    "f32",
    "--data",
    data,
    "--seq-len",
    "24",
    "--steps",
    "1",
  ];
  const r = await mesp(
    cache,
    ...t,
    "--out",
    `${tmp}/w1`,
    "--adapter",
    adapter,
    "--rank",
    "4",
    "--optimizer",
    "sgd",
    "--beta2",
    "0.99",
    "--val-every",
    "5",
    "--zo-eps",
    "0.01",
  );
  assertEquals(r.code, 0, r.stderr);
  for (
    const w of [
      "--rank is ignored: the adapter layout comes from --adapter",
      "--beta2 is ignored: β2 is AdamW's; this run uses SGD",
      "--val-every is ignored: there is no --val set",
      "--zo-eps is ignored: ε is MeZO's perturbation",
      `${adapter}/adapter_config.json: lora_dropout 0.05 is ignored (mesp uses no dropout)`,
    ]
  ) assert(r.stderr.includes(`warning: ${w}`), `missing "${w}":\n${r.stderr}`);
  // flags that have an effect, but not the one asked for
  const odd = await mesp(cache, ...t, "--out", `${tmp}/w3`, "--warmup", "5", "--rank", "40");
  assertEquals(odd.code, 0, odd.stderr);
  for (
    const w of [
      "--warmup 5 is not below the run's 1 steps: the learning rate rises the whole run and never reaches --lr",
      "--rank 40 is above the narrowest target's width (k_proj: 64 in, 32 out)",
    ]
  ) assert(odd.stderr.includes(`warning: ${w}`), `missing "${w}":\n${odd.stderr}`);
  const resumed = await mesp(cache, ...t, "--out", `${tmp}/w3`, "--resume", "--adapter", adapter);
  assert(
    resumed.stderr.includes("warning: --adapter is ignored: the resumed training state holds the adapter's"),
    resumed.stderr,
  );
  const both = await mesp(cache, ...t, "--out", `${tmp}/w2`, "--epochs", "2");
  assertFails(both, 1, /give --steps or --epochs, not both/, "steps and epochs");
  const chat = await mesp(cache, "generate", "--model", tiny, "--weights", "f32", "--chat", "--prompt", "hi");
  assertEquals(chat.code, 0, chat.stderr);
  assert(
    chat.stderr.includes("warning: --prompt is ignored: --chat reads the conversation from stdin"),
    chat.stderr,
  );
  const raw = await mesp(
    cache,
    "generate",
    "--model",
    tiny,
    "--weights",
    "f32",
    "--raw",
    "--prompt",
    "Once",
    "--system",
    "a pirate",
    "--max-tokens",
    "1",
  );
  assertEquals(raw.code, 0, raw.stderr);
  assert(
    raw.stderr.includes("warning: --system is ignored: --raw sends the prompt as plain text"),
    raw.stderr,
  );
});

Deno.test("checks: a plan WebAssembly memory cannot hold is refused naming --seq-len; the run's --out stays usable", async () => {
  const cache = `${tmp}/cache-wasm32`;
  const full = `${tmp}/tiny-full`; // 32768 positions
  const made = await mesp(cache, "make-model", "--preset", "tiny", "--out", full);
  assertEquals(made.code, 0, made.stderr);
  const plan = await mesp(cache, "plan", "--model", full, "--seq-len", "32768");
  assertEquals(plan.code, 1, plan.stderr);
  assert(
    plan.stdout.includes("does NOT fit: WebAssembly's 32-bit memory holds at most 4295.0 MB"),
    plan.stdout,
  );
  // every input is saved (in the spill file), so the hint does not say "saves few inputs"
  assert(
    /out of reach here by the plan's prediction \([\d.]+ MB, which errs high\) \(with every input in the spill, what stays in memory exceeds it/
      .test(plan.stdout),
    plan.stdout,
  );
  // over 4 GiB but within a budget: only the first says no
  const budgeted = ["plan", "--model", full, "--seq-len", "32768", "--max-memory", "20GB"];
  const json = await mesp(cache, ...budgeted, "--json");
  assertEquals(json.code, 1, json.stderr);
  const p = JSON.parse(json.stdout);
  assertEquals([p.addressable, p.fits], [false, false]);
  const text = await mesp(cache, ...budgeted);
  assert(text.stdout.includes("fits in --max-memory 20000.0 MB"), text.stdout);
  // memory is planned for the longest sequence (cut to --seq-len), so the data must be that long
  const huge = await idsData(`${tmp}/huge.jsonl`, 1, 32768);
  const run = ["train", "--model", full, "--out", `${tmp}/wasm32-run`, "--steps", "1"];
  assertFails(
    await mesp(cache, ...run, "--data", huge, "--seq-len", "32768"),
    1,
    /memory plan needs [\d.]+ MB, more than WebAssembly's 32-bit memory holds \(4295\.0 MB\): it holds 32768 positions, for the longest sequence once cut to seqLen: cut them shorter \(seqLen, --seq-len\)/,
    "train",
  );
  // a learning rate of 0 would train an adapter that stays the base model
  assertFails(await mesp(cache, ...run, "--data", data, "--lr", "0"), 1, /--lr: must be > 0, got 0/, "lr 0");
  // what the failed run left does not block the same --out
  const again = await mesp(cache, ...run, "--data", data, "--seq-len", "64");
  assertEquals(again.code, 0, again.stderr);
});

Deno.test("checks: --max-memory is checked for the longest sequence once cut, not for --seq-len itself", async () => {
  const cache = `${tmp}/cache-longest`;
  const f = ["--model", model, "--weights", "f32", "--threads", "1"];
  const plan = (seqLen: number, ...more: string[]) =>
    mesp(cache, "plan", ...f, "--seq-len", String(seqLen), "--json", ...more);
  // the data's sequences are 24 tokens: a budget that the plan for 24 positions fits and that for 128 does not
  const budget = String(JSON.parse((await plan(24)).stdout).predicted_peak_bytes);
  assertEquals((await plan(24, "--max-memory", budget)).code, 0);
  assertEquals((await plan(128, "--max-memory", budget)).code, 1, "the budget fits 128 positions too");
  const run = ["train", ...f, "--seq-len", "128", "--max-memory", budget, "--steps", "1"];
  const fits = await mesp(cache, ...run, "--data", data, "--out", `${tmp}/longest-1`);
  assertEquals(fits.code, 0, fits.stderr);
  assertFails(
    await mesp(cache, ...run, "--data", long, "--out", `${tmp}/longest-2`),
    1,
    /\(--max-memory\), for the longest sequence \(128 tokens once cut to --seq-len 128\):/,
    "long data",
  );
});

Deno.test("checks: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
