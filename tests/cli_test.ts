// The commands end to end, as a user runs them: eval and grad against the PyTorch golden values, a short
// training run with resume, plan, and every bad input failing before training with a clear message while
// leaving an existing run untouched.
import { assert, assertEquals } from "./_assert.ts";
import { caseDir, compare } from "./_golden.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { readSafetensorsHeader, readTensorBytes } from "../src/model/safetensors.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "mesp-cli-" });
const cache = `${tmp}/cache`;

async function mesp(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { MESP_CACHE: cache, NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function expected(name: string) {
  const f = await readSafetensorsHeader(fileSource(`${caseDir(name)}/expected.safetensors`));
  const ids = [...new Int32Array((await readTensorBytes(f, "input_ids")).buffer)];
  const targets = [...await readTensorBytes(f, "targets")];
  const f64 = async (t: string) => new Float64Array((await readTensorBytes(f, t)).buffer);
  return { f, ids, targets, f64 };
}

/** A JSONL file with the case's sequence as input_ids (and its mask as labels). */
async function idsFile(name: string): Promise<string> {
  const { ids, targets } = await expected(name);
  const labels = ids.map((id, t) => (targets[t] || t === 0 ? id : -100));
  const path = `${tmp}/${name}.jsonl`;
  await Deno.writeTextFile(path, JSON.stringify({ input_ids: ids, labels }) + "\n");
  return path;
}

for (const name of ["gqa_tied_f32", "mqa_f16_sharded", "new_keys"]) {
  Deno.test(`eval CLI ${name}: NLL equals PyTorch's loss (≤ 1e-4 relative), base and with adapter`, async () => {
    const data = await idsFile(name);
    const { f64 } = await expected(name);
    for (const adapter of [false, true]) {
      const args = ["eval", "--model", caseDir(name), "--data", data, "--weights", "f32", "--json"];
      if (adapter) args.push("--adapter", `${caseDir(name)}/adapter`);
      const r = await mesp(...args);
      assertEquals(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout);
      const want = (await f64(adapter ? "loss" : "loss_base"))[0];
      assert(Math.abs(got.nll - want) <= 1e-4 * want, `${name}: nll ${got.nll} vs ${want}`);
      assertEquals(got.tokens, (await expected(name)).ids.length - 1);
      assert(got.peak_mb > 0);
    }
  });
}

Deno.test("grad CLI: writes every LoRA gradient under its PEFT name, equal to PyTorch's", async () => {
  const name = "mha_untied_bf16"; // masked prompt: the first 5 targets are not trained
  const out = `${tmp}/grads.safetensors`;
  const r = await mesp(
    "grad",
    "--model",
    caseDir(name),
    "--data",
    await idsFile(name),
    "--adapter",
    `${caseDir(name)}/adapter`,
    "--weights",
    "f32",
    "--out",
    out,
    "--rank",
    "16",
  );
  assertEquals(r.code, 0, r.stderr);
  // the adapter's layout is the one used: a layout flag beside it is named as ignored
  assert(r.stderr.includes("warning: --rank is ignored: the adapter layout comes from --adapter"), r.stderr);
  const got = await readSafetensorsHeader(fileSource(out));
  const { f, f64 } = await expected(name);
  let n = 0;
  for (const t of f.tensors.keys()) {
    if (!t.startsWith("grad.")) continue;
    const g = new Float32Array((await readTensorBytes(got, t.slice(5))).buffer);
    const { cos, rel } = compare(g, await f64(t));
    assert(cos >= 0.99999 && rel <= 1e-4, `${t}: cos ${cos} rel ${rel}`);
    n++;
  }
  assert(n === 8, `${n} gradient tensors compared`); // q and v, 2 layers, A and B
  const loss = new Float32Array((await readTensorBytes(got, "loss")).buffer)[0];
  const want = (await f64("loss"))[0];
  assert(Math.abs(loss - want) <= 1e-5 * want, `loss ${loss} vs ${want}`);
});

Deno.test("train CLI: a short run writes adapter, training state, metrics and curve; --resume continues it", async () => {
  const data = await idsFile("gqa_tied_f32");
  const out = `${tmp}/run`;
  const common = [
    "--model",
    caseDir("gqa_tied_f32"),
    "--weights",
    "f32",
    "--data",
    data,
    "--out",
    out,
    "--rank",
    "4",
  ];
  common.push("--seq-len", "32", "--json");
  let r = await mesp("train", ...common, "--steps", "3");
  assertEquals(r.code, 0, r.stderr);
  for (
    const f of [
      "adapter_config.json",
      "adapter_model.safetensors",
      "checkpoint.safetensors",
      "metrics.jsonl",
      "loss.svg",
    ]
  ) {
    assert((await Deno.stat(`${out}/${f}`)).size > 0, f);
  }
  assertEquals(JSON.parse(await Deno.readTextFile(`${out}/adapter_config.json`)).r, 4);
  assert(
    /peak memory [\d.]+ MB/.test(r.stderr.trim().split("\n").at(-1)!),
    "the last line reports the peak memory",
  );
  r = await mesp("train", ...common, "--steps", "5", "--resume", "--allow-change", "steps");
  assertEquals(r.code, 0, r.stderr);
  const steps = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l))
    .filter((m) => m.loss !== undefined).map((m) => m.step);
  assertEquals(steps, [1, 2, 3, 4, 5]);
});

Deno.test("train CLI: bad inputs fail before training, with a clear message, touching nothing", async () => {
  const model = caseDir("gqa_tied_f32");
  const data = await idsFile("gqa_tied_f32");
  const out = `${tmp}/guarded`;
  await Deno.mkdir(out, { recursive: true });
  const sentinel = new TextEncoder().encode("an earlier adapter");
  await Deno.writeFile(`${out}/adapter_model.safetensors`, sentinel);
  const empty = `${tmp}/empty.jsonl`;
  await Deno.writeTextFile(empty, "\n\n");
  const bad = `${tmp}/bad.jsonl`;
  await Deno.writeTextFile(bad, '{"input_ids": [1, 2, 3]}\n{"input_ids": [1, "x"]}\n');
  const lateTarget = `${tmp}/late_target.jsonl`;
  await Deno.writeTextFile(lateTarget, '{"input_ids": [1, 2, 3, 4], "labels": [-100, -100, -100, 4]}\n');
  const cases: [string[], RegExp][] = [
    [["--data", data, "--out", out], /already holds a run/],
    [["--data", empty, "--out", `${tmp}/e1`], /empty|no usable/i],
    [["--data", bad, "--out", `${tmp}/e2`], /bad\.jsonl:2/],
    [["--data", data, "--out", `${tmp}/e3`, "--seq-len", "100000"], /longer than the model allows/],
    [["--data", data, "--out", `${tmp}/e4`, "--targets", "q,qq"], /unknown LoRA target "qq"/],
    [["--data", data, "--out", `${tmp}/e4b`, "--epochs", "0"], /--epochs: must be > 0, got 0/],
    [["--data", data, "--out", `${tmp}/e4c`, "--alpha", "0"], /--alpha: must be > 0, got 0/],
    [["--data", data, "--out", `${tmp}/e4d`, "--threads", "256"], /--threads: must be ≤ 255, got 256/],
    [
      ["--data", data, "--out", `${tmp}/e5`, "--adapter", `${caseDir("odd_sizes")}/adapter`],
      /adapter|shape/i,
    ],
    [
      ["--data", data, "--out", `${tmp}/e6`, "--max-memory", "73MB", "--threads", "1"],
      /memory plan needs .* but the budget is/,
    ],
    // a second thread is a worker with its own V8 heap: the runtime alone no longer fits
    [
      ["--data", data, "--out", `${tmp}/e7`, "--max-memory", "73MB", "--threads", "2"],
      /runtime alone needs with 2 threads/,
    ],
    [
      ["--data", lateTarget, "--out", `${tmp}/e8`, "--seq-len", "3"],
      /late_target\.jsonl: no example has a training target within the first 3 tokens \(--seq-len\)/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const seqLen = args.includes("--seq-len") ? [] : ["--seq-len", "32"];
    const r = await mesp("train", "--model", model, "--weights", "f32", ...seqLen, ...args);
    assertEquals(r.code, 1, `${args.join(" ")} should fail:\n${r.stderr}`);
    assert(pattern.test(r.stderr), `${args.join(" ")}: ${r.stderr}`);
    assert(!r.stderr.includes("    at "), "no stack trace for a user error");
  }
  const none = await mesp("eval", "--model", `${tmp}/no-such-model`, "--data", data);
  assert(/no-such-model: no such model directory/.test(none.stderr), none.stderr);
  assertEquals(await Deno.readFile(`${out}/adapter_model.safetensors`), sentinel);
  for (const e of ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"]) {
    const made = await Deno.stat(`${tmp}/${e}/adapter_model.safetensors`).then(() => true, () => false);
    assert(!made, `${e} must not have written an adapter`);
  }
});

Deno.test("plan CLI: prints the regions and the predicted peak; exit 1 over --max-memory", async () => {
  const r = await mesp("plan", "--model", caseDir("gqa_tied_f32"), "--weights", "f32", "--seq-len", "64");
  assertEquals(r.code, 0, r.stderr);
  assert(r.stdout.includes("saved") && r.stdout.includes("predicted whole-process peak"), r.stdout);
  // MeZO saves no layer inputs: the flags that choose them are named as ignored, and change nothing
  const plan = (...more: string[]) =>
    mesp(
      "plan",
      "--model",
      caseDir("gqa_tied_f32"),
      "--weights",
      "f32",
      "--seq-len",
      "64",
      "--method",
      "mezo",
      ...more,
    );
  const [plain, flagged] = [await plan(), await plan("--ckpt", "bf16", "--saved-inputs", "2")];
  assertEquals(flagged.stdout, plain.stdout);
  for (const f of ["--ckpt", "--saved-inputs"]) {
    assert(flagged.stderr.includes(`warning: ${f} is ignored: MeZO runs no backward`), flagged.stderr);
  }
  const over = await mesp(
    "plan",
    "--model",
    caseDir("gqa_tied_f32"),
    "--weights",
    "f32",
    "--max-memory",
    "73MB",
    "--threads",
    "1",
  );
  assertEquals(over.code, 1);
  assert(over.stdout.includes("does NOT fit"), over.stdout);
});

Deno.test("plan CLI: the default spills and meets the 100 MB aim; in memory the aim is out of reach, and said so", async () => {
  // Qwen2.5-0.5B's shapes (its config.json; plan needs no weights): in memory no exact schedule fits 100 MB
  const dir = `${tmp}/cfg05`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      hidden_size: 896,
      intermediate_size: 4864,
      num_attention_heads: 14,
      num_hidden_layers: 24,
      num_key_value_heads: 2,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      torch_dtype: "bfloat16",
      vocab_size: 151936,
      quantization: { group_size: 64, bits: 4 },
    }),
  );
  const plan = (...a: string[]) => mesp("plan", "--model", dir, "--optimizer", "sgd", ...a);
  const hint = "the default aims at 100.0 MB, out of reach here";
  // spilled (the default) every input is saved within the aim; in memory the aim is out of reach
  const byDefault = await plan();
  assertEquals(byDefault.code, 0, byDefault.stderr);
  assert(!byDefault.stdout.includes(hint), byDefault.stdout);
  assert(byDefault.stdout.includes("schedule: every layer's input saved"), byDefault.stdout);
  assert(byDefault.stdout.includes("spill (--spill off keeps it in memory): 39.6 MB"), byDefault.stdout);
  const inMemory = await plan("--spill", "off");
  assertEquals(inMemory.code, 0, inMemory.stderr);
  assert(inMemory.stdout.includes(hint), inMemory.stdout);
  assert(inMemory.stdout.includes("schedule: 6 of 24 layer inputs saved"), inMemory.stdout);
  assert(!inMemory.stdout.includes("spill ("), inMemory.stdout);
  for (const a of [["--max-memory", "1GB"], ["--ckpt-every", "1"], ["--saved-inputs", "4"]]) {
    const r = await plan("--spill", "off", ...a);
    assertEquals(r.code, 0, r.stderr);
    assert(!r.stdout.includes(hint), `${a.join(" ")}:\n${r.stdout}`);
  }
});

Deno.test("deno task from another folder: relative paths mean the folder it was typed in, not the checkout", async () => {
  const sub = `${tmp}/elsewhere`;
  await Deno.mkdir(`${sub}/my-model`, { recursive: true });
  await Deno.copyFile(`${caseDir("gqa_tied_f32")}/config.json`, `${sub}/my-model/config.json`);
  const config = new URL("../deno.json", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--config", config, "plan", "--model", "my-model", "--json"],
    cwd: sub,
    // a fresh environment: `deno task` keeps an INIT_CWD it inherits (this test's own task set one)
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      MESP_CACHE: cache,
      NO_COLOR: "1",
    },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, `plan --model my-model from ${sub} failed:\n${stderr}`);
  const plan = JSON.parse(new TextDecoder().decode(out.stdout));
  assert(plan.regions?.length > 0, JSON.stringify(plan).slice(0, 200));
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
