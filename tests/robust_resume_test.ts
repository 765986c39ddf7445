// Root cause 2: --resume believed anything. Now the recorded run config is compared and every difference
// listed; --allow-change changes what may safely change; a resume without flags continues to the run's own
// target and ends where an uninterrupted run ends, byte for byte; a damaged training state is refused.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  assertFails,
  assertUnchanged,
  copyCase,
  f32Bytes,
  idsData,
  mesp,
  mespCommand,
  mespIn,
  patchTensor,
  snapshot,
} from "./_robust.ts";
import { decodeTrainingState, openTrainingState, writeTrainingState } from "../src/run/training_state.ts";
import { encodeSafetensors } from "../src/model/safetensors.ts";
import type { TrainState } from "../src/run/train.ts";
import { bytesSource } from "../src/io/source.ts";

const tmp = await Deno.makeTempDir({ prefix: "mesp-resume-" });
const cache = `${tmp}/cache`;
const model = await copyCase("gqa_tied_f32", `${tmp}/model`);
const data = await idsData(`${tmp}/train.jsonl`);
const base = (out: string, d = data, m = model) => [
  "train",
  "--model",
  m,
  "--data",
  d,
  "--out",
  out,
  "--threads",
  "1",
  "--json",
];
const runFlags = ["--weights", "f32", "--seq-len", "24", "--rank", "2", "--lr", "0.003", "--seed", "4"];

const done = `${tmp}/done`;
const first = await mesp(cache, ...base(done), ...runFlags, "--steps", "3");
if (first.code !== 0) throw new Error(first.stderr);

Deno.test("resume: every flag that differs from the recorded run is listed, nothing is touched", async () => {
  const before = await snapshot(done);
  const r = await mesp(
    cache,
    ...base(done),
    "--resume",
    "--lr",
    "0.01",
    "--seed",
    "5",
    "--seq-len",
    "20",
    "--rank",
    "4",
    "--targets",
    "q,v",
    "--weights",
    "bf16",
    "--optimizer",
    "sgd",
    "--steps",
    "9",
  );
  assertFails(r, 1, /--resume: this is not the run recorded in/, "many");
  for (
    const line of [
      "--weights: recorded f32, now bf16",
      "--seq-len: recorded 24, now 20",
      "--optimizer: recorded adamw, now sgd",
      "--lr: recorded 0.003, now 0.01",
      "--seed: recorded 4, now 5",
      "--rank: recorded 2, now 4",
      "--targets: recorded q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, now q_proj,v_proj",
      "--steps: recorded 3, now 9",
      "--allow-change steps,lr,clip,weight-decay,warmup,schedule lets those change",
    ]
  ) assert(r.stderr.includes(line), `missing "${line}":\n${r.stderr}`);
  await assertUnchanged(before, "many");
  // the same values written differently are not differences
  const same = await mesp(
    cache,
    ...base(done),
    "--resume",
    "--targets",
    "all",
    "--alpha",
    "4",
    "--lr",
    "3e-3",
  );
  assertFails(same, 1, /is complete \(step 3 of 3\)/, "same values");
});

Deno.test("resume: other data or other weights of the same shapes are refused", async () => {
  const before = await snapshot(done);
  const other = await idsData(`${tmp}/other.jsonl`, 4, 23);
  const r = await mesp(cache, ...base(done, other), "--resume", "--allow-change", "steps", "--steps", "5");
  assertFails(
    r,
    1,
    /--data \(its contents\): recorded fingerprint [0-9a-f]{16}, now fingerprint [0-9a-f]{16}/,
    "data",
  );
  const otherModel = await copyCase("gqa_tied_f32", `${tmp}/other-model`);
  await patchTensor(
    `${otherModel}/model.safetensors`,
    "model.layers.0.mlp.up_proj.weight",
    4 * 1000,
    f32Bytes(0.5),
  );
  const m = await mesp(
    cache,
    ...base(done, data, otherModel),
    "--resume",
    "--allow-change",
    "steps",
    "--steps",
    "5",
  );
  assertFails(m, 1, /--model \(its weights\): recorded fingerprint/, "model");
  await assertUnchanged(before, "data/model");
  // the run's adapter applied to those other weights: it works, and says it was trained on another base
  // (generate takes the same check; this model has no tokenizer to generate text with)
  const train = (out: string) => ["train", "--data", data, "--out", out, "--steps", "1", "--seq-len", "24"];
  for (
    const [cmd, again] of [[["eval", "--data", data]], [
      train(`${tmp}/from-other`),
      train(`${tmp}/from-same`),
    ]]
  ) {
    const r = await mesp(cache, ...cmd, "--model", otherModel, "--adapter", done, "--weights", "f32");
    assertEquals(r.code, 0, r.stderr);
    assert(
      r.stderr.includes(`warning: the adapter was trained on other weights than --model ${otherModel}`),
      r.stderr,
    );
    const same = await mesp(
      cache,
      ...(again ?? cmd),
      "--model",
      model,
      "--adapter",
      done,
      "--weights",
      "f32",
    );
    assert(!same.stderr.includes("trained on other weights"), same.stderr);
  }
  // merge and export (which bake the adapter into files for elsewhere) take the same check
  for (const [base, warned] of [[otherModel, true], [model, false]] as const) {
    for (
      const cmd of [["merge", "--out", `${tmp}/merged-${warned}`], [
        "export",
        "--format",
        "mlx",
        "--out",
        `${tmp}/mlx-${warned}`,
      ]]
    ) {
      const r = await mesp(cache, ...cmd, "--adapter", done, "--model", base);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stderr.includes("warning: the adapter was trained on other weights"), warned, r.stderr);
    }
  }
});

Deno.test("resume: a run started from --adapter records that adapter's layout, so it resumes", async () => {
  const out = `${tmp}/from-adapter`;
  // done's adapter is rank 2 over every target; this run's flags leave the layout at the defaults
  const flags = ["--weights", "f32", "--seq-len", "24", "--seed", "4"];
  const r = await mesp(cache, ...base(out), ...flags, "--adapter", done, "--steps", "1");
  assertEquals(r.code, 0, r.stderr);
  const again = await mesp(
    cache,
    ...base(out),
    "--resume",
    "--allow-change",
    "steps",
    "--steps",
    "2",
    "--rank",
    "2",
  );
  assertEquals(again.code, 0, again.stderr);
  assert(!again.stderr.includes("--rank: recorded"), again.stderr);
});

Deno.test("resume: --allow-change steps trains a complete run further; lr may change too", async () => {
  const out = `${tmp}/longer`;
  assertEquals((await mesp(cache, ...base(out), ...runFlags, "--steps", "2")).code, 0);
  const r = await mesp(
    cache,
    ...base(out),
    "--resume",
    "--allow-change",
    "steps,lr",
    "--steps",
    "4",
    "--lr",
    "1e-3",
  );
  assertEquals(r.code, 0, r.stderr);
  const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assertEquals(ck.state.step, 4);
  const cfg = ck.run.config as Record<string, unknown>;
  assertEquals(
    [cfg.steps, cfg.lr, cfg.seed, cfg.weights],
    [4, 1e-3, 4, "f32"],
    "the new values are recorded",
  );
});

Deno.test("resume: --save-every and --val-every not given are the recorded ones (a resume once saved only at the end)", async () => {
  const out = `${tmp}/cadence`;
  const every = ["--val", data, "--val-every", "1", "--save-every", "1"];
  assertEquals((await mesp(cache, ...base(out), ...runFlags, ...every, "--steps", "2")).code, 0);
  const r = await mesp(
    cache,
    ...base(out),
    "--val",
    data,
    "--resume",
    "--allow-change",
    "steps",
    "--steps",
    "4",
  );
  assertEquals(r.code, 0, r.stderr);
  const rows = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  const validated = rows.filter((row) => row.val_loss !== undefined).map((row) => row.step);
  assertEquals(validated, [1, 2, 3, 4]);
  const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  const cfg = ck.run.config as Record<string, unknown>;
  assertEquals([cfg.saveEvery, cfg.valEvery], [1, 1]);
  // given on a resume, they change without --allow-change: they shape no result
  const r2 = await mesp(
    cache,
    ...base(out),
    "--resume",
    "--allow-change",
    "steps",
    "--steps",
    "5",
    "--val-every",
    "0",
  );
  assertEquals(r2.code, 0, r2.stderr);
  const ck2 = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assertEquals((ck2.run.config as Record<string, unknown>).valEvery, 0);
  // and a resumed run saves as the run did: killed after step 8, it has saved step 7 at least (it once
  // saved only at its end, so a kill lost every step since the resume: the state stayed at 5)
  const child = mespCommand(
    Deno.cwd(),
    cache,
    ...base(out),
    "--resume",
    "--allow-change",
    "steps",
    "--steps",
    "400",
  )
    .spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let buffer = "", step = 0;
  while (step < 8) {
    const next = await lines.next();
    if (next.done) break;
    buffer += next.value;
    for (const m of buffer.matchAll(/"step":(\d+)/g)) step = Math.max(step, Number(m[1]));
  }
  child.kill("SIGKILL");
  await child.status;
  await child.stderr.cancel();
  const killed = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assert(step >= 8 && killed.state.step >= 7, `saw step ${step}, the state is at ${killed.state.step}`);
});

Deno.test("resume: --out with no training state is refused before anything is made (the demo model once was)", async () => {
  const fresh = `${tmp}/fresh-cache`, out = `${tmp}/no-state`;
  await Deno.mkdir(out);
  const r = await mesp(fresh, "train", "--out", out, "--resume", "--threads", "1");
  assertEquals(r.code, 1, r.stderr);
  assert(
    r.stderr.includes(`--resume: ${out}/checkpoint.safetensors not found: the run is not there`),
    r.stderr,
  );
  assert(!r.stderr.includes("making the demo model"), r.stderr);
  await assertRejects(() => Deno.stat(`${fresh}/models`), "No such file");
});

Deno.test("eval of a run that stopped early says which step its adapter is; of one that never saved, says that", async () => {
  const out = `${tmp}/early`;
  assertEquals((await mesp(cache, ...base(out), ...runFlags, "--steps", "2")).code, 0);
  // the same state, as a run of 10 steps leaves it when stopped after step 2
  const file = `${out}/checkpoint.safetensors`;
  const { state, run } = await decodeTrainingState(await Deno.readFile(file));
  const config = { ...(run.config as Record<string, unknown>), steps: 10 };
  const parts: Uint8Array[] = [];
  await writeTrainingState({ write: (c) => (parts.push(c.slice()), Promise.resolve()) }, state, {
    ...run,
    config,
  });
  await Deno.writeFile(file, new Uint8Array(parts.flatMap((p) => [...p])));
  const r = await mesp(cache, "eval", "--model", model, "--data", data, "--adapter", out, "--threads", "1");
  assertEquals(r.code, 0, r.stderr);
  assert(r.stderr.includes(`notice: --adapter ${out} is its run's state at step 2 of 10`), r.stderr);
  const empty = `${tmp}/unsaved`;
  await Deno.mkdir(empty);
  await Deno.writeTextFile(`${empty}/metrics.jsonl`, "");
  const e = await mesp(cache, "eval", "--model", model, "--data", data, "--adapter", empty);
  assertFails(e, 1, /--adapter .*unsaved holds a training run that has not saved an adapter yet/, "eval");
});

Deno.test("resume: messages say what was given (--epochs as its steps, a target not above the step, paths)", async () => {
  const before = await snapshot(done);
  const epochs = await mesp(cache, ...base(done), "--resume", "--epochs", "5");
  assertFails(epochs, 1, /--steps: recorded 3, now \d+ \(from --epochs 5\)/, "epochs");
  const lower = await mesp(cache, ...base(done), "--resume", "--allow-change", "steps", "--steps", "2");
  assertFails(
    lower,
    1,
    /the run in .* is at step 3, and --steps 2 is not above it: nothing to train/,
    "lower",
  );
  const half = await mesp(cache, "train", "--data", data, "--out", done, "--resume");
  assertFails(half, 1, /with --resume, neither: --out R --resume takes the run's recorded ones/, "paths");
  await assertUnchanged(before, "done");
});

Deno.test("a relative --model is recorded as its absolute path, in the adapter too (usable from any folder)", async () => {
  const r = await mespIn(
    tmp,
    cache,
    ...base(`${tmp}/relative`).map((a) => a === model ? "model" : a),
    ...runFlags,
    "--steps",
    "1",
  );
  assertEquals(r.code, 0, r.stderr);
  const config = JSON.parse(await Deno.readTextFile(`${tmp}/relative/adapter_config.json`));
  assertEquals(config.base_model_name_or_path, model);
  // and so from another folder, eval finds the base the adapter names
  const e = await mespIn(
    "/",
    cache,
    "eval",
    "--data",
    data,
    "--adapter",
    `${tmp}/relative`,
    "--threads",
    "1",
  );
  assertEquals(e.code, 0, e.stderr);
});

Deno.test("resume: without flags it continues to the run's own target, byte-identical to an uninterrupted run", async () => {
  const straight = `${tmp}/straight`, cut = `${tmp}/cut`;
  assertEquals((await mesp(cache, ...base(straight), ...runFlags, "--steps", "200")).code, 0);
  // the same run stopped by SIGTERM after its second step
  const child = mespCommand(tmp, cache, ...base(cut), ...runFlags, "--steps", "200").spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes('"step":2,')) seen += (await reader.read()).value ?? "";
  child.kill("SIGTERM");
  while (!(await reader.read()).done) { /* drain */ }
  await child.stderr.cancel();
  assertEquals((await child.status).code, 143);
  const stoppedAt =
    (await decodeTrainingState(await Deno.readFile(`${cut}/checkpoint.safetensors`))).state.step;
  assert(stoppedAt < 200, `stopped early (step ${stoppedAt})`);
  // only the required flags: everything else comes from the saved training state
  const r = await mesp(cache, ...base(cut), "--resume");
  assertEquals(r.code, 0, r.stderr);
  assert(r.stderr.includes("done: 200 steps"), r.stderr);
  assertEquals(
    await Deno.readFile(`${cut}/adapter_model.safetensors`),
    await Deno.readFile(`${straight}/adapter_model.safetensors`),
    "the resumed adapter equals the uninterrupted one",
  );
  const steps = (await Deno.readTextFile(`${cut}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).step
  );
  assertEquals(steps, Array.from({ length: 200 }, (_, i) => i + 1));
});

Deno.test("resume: a damaged training state (flipped bit, truncated, edited) is refused, nothing touched", async () => {
  const ckPath = `${done}/checkpoint.safetensors`;
  const good = await Deno.readFile(ckPath);
  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ["a flipped bit in the parameters", (b) => (b[b.length - 5] ^= 0x10, b), /checksum mismatch/],
    ["truncated", (b) => b.slice(0, b.length - 100), /checkpoint\.safetensors.*(truncated|short|bytes)/i],
    [
      "the step edited",
      (b) => {
        const s = new TextDecoder().decode(b);
        const at = s.indexOf('\\"step\\":3');
        b[at + 9] = "9".charCodeAt(0);
        return b;
      },
      /checksum mismatch/,
    ],
  ];
  for (const [what, damage, want] of cases) {
    await Deno.writeFile(ckPath, damage(good.slice()));
    const before = await snapshot(done);
    const r = await mesp(cache, ...base(done), "--resume", "--allow-change", "steps", "--steps", "5");
    assertFails(r, 1, want, what);
    await assertUnchanged(before, what);
  }
  await Deno.writeFile(ckPath, good);
});

Deno.test("resume: training state fields are validated (types, ranges, lengths, tensors), in memory or in a file", async () => {
  const state = {
    step: 2,
    epoch: 0,
    cursor: 2,
    seed: 0,
    params: new Float32Array([1, 2, 3]),
    m: new Float32Array(3),
    v: new Float32Array(3),
    lora: { rank: 1, alpha: 2, rslora: false, targets: ["q_proj"] },
    optimizer: "adamw",
  };
  const encode = async (s: typeof state) => {
    const parts: Uint8Array[] = [];
    await writeTrainingState({ write: (c) => (parts.push(c.slice()), Promise.resolve()) }, s);
    return new Uint8Array(parts.flatMap((p) => [...p]));
  };
  // decoded whole, or opened as a file (what the CLI does): the same checks, the same messages
  const openBytes = (b: Uint8Array) => openTrainingState(bytesSource(b, "ck.safetensors"));
  assertEquals((await decodeTrainingState(await encode(state))).state.step, 2);
  assertEquals((await openBytes(await encode(state))).state.step, 2);
  const bad: [Partial<typeof state> & Record<string, unknown>, string][] = [
    [{ step: -1 }, "state field step is -1, expected an integer ≥ 0"],
    [{ cursor: 1.5 }, "state field cursor is 1.5"],
    [{ optimizer: "adam" }, 'state field optimizer is "adam"'],
    [{ lora: { rank: 0, alpha: 2, rslora: false, targets: ["q_proj"] } }, "lora.rank is 0"],
    [{ lora: { rank: 1, alpha: 2, rslora: false, targets: [] } }, "lora.targets is []"],
    [{ m: new Float32Array(2) }, "adam_m has 2 elements, params 3"],
    [{ v: new Float32Array([0, -1, 0]) }, "negative second moment"],
    [{ m: undefined }, "an AdamW training state without moments"],
  ];
  for (const [change, message] of bad) {
    const bytes = await encode({ ...state, ...change } as typeof state);
    for (
      const e of [
        await assertRejects(() => decodeTrainingState(bytes, "ck.safetensors"), message),
        await assertRejects(() => openBytes(bytes), message),
      ]
    ) {
      assert(e.message.startsWith("ck.safetensors: "), `names the file: ${e.message}`);
    }
  }
  const extra = encodeSafetensors(
    [{ name: "params", dtype: "F32", shape: [1], data: new Float32Array(1) }, {
      name: "bonus",
      dtype: "F32",
      shape: [1],
      data: new Float32Array(1),
    }],
    { format: "mesp-checkpoint", state: JSON.stringify({ ...state, params: undefined }) },
  );
  await assertRejects(() => decodeTrainingState(extra), "unexpected tensor bonus");
  await assertRejects(() => openBytes(extra), "unexpected tensor bonus");
  const noSum = encodeSafetensors([{ name: "params", dtype: "F32", shape: [1], data: new Float32Array(1) }], {
    format: "mesp-checkpoint",
    state: JSON.stringify({ ...state, optimizer: "sgd", params: undefined }),
  });
  await assertRejects(() => decodeTrainingState(noSum), "no checksum");
  await assertRejects(() => openBytes(noSum), "no checksum");
  // the bytes' buffer is taken too; a Promise of them is named (it blamed bytesSource, not called by the user)
  const bytes = await encode(state);
  const copy = bytes.slice().buffer;
  assertEquals((await decodeTrainingState(copy as unknown as Uint8Array)).state.step, 2);
  await assertRejects(
    () => decodeTrainingState(Promise.resolve(bytes) as unknown as Uint8Array),
    "decodeTrainingState: expected the state file's bytes (a Uint8Array), got a Promise (a forgotten await?)",
  );
});

Deno.test("resume: a state that records no run (the library's, the web page's) resumes with its own seed", async () => {
  const out = `${tmp}/no-run`;
  const r1 = await mesp(cache, ...base(out), ...runFlags, "--steps", "2");
  assertEquals(r1.code, 0, r1.stderr);
  // the same state, written as a library caller does: no run metadata (so no recorded --seed 4)
  const { state } = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assertEquals(state.seed, 4);
  const parts: Uint8Array[] = [];
  await writeTrainingState({ write: (c) => (parts.push(c.slice()), Promise.resolve()) }, state);
  await Deno.writeFile(`${out}/checkpoint.safetensors`, new Uint8Array(parts.flatMap((p) => [...p])));
  const flags = runFlags.filter((_, i) => runFlags[i] !== "--seed" && runFlags[i - 1] !== "--seed");
  const r2 = await mesp(cache, ...base(out), ...flags, "--steps", "3", "--resume", "--allow-change", "steps");
  assertEquals(r2.code, 0, r2.stderr);
  assert(
    r2.stderr.includes("was saved by the library (or the web page): flags not given take its options"),
    r2.stderr,
  );
  assert(r2.stderr.includes("done: 3 steps"), r2.stderr);
  // the loss summary is the whole run's (metrics.jsonl), not only the step this invocation trained
  assert(/done: 3 steps; mean loss [\d.]+ \(steps 1–3\)/.test(r2.stderr), r2.stderr);
  // with no run flags at all: they are the state's own options (once --seq-len 256, --lr 2e-4 were sent,
  // and refused in the library's words, or silently taken)
  const rewrite = async (strip: (s: TrainState) => TrainState) => {
    const { state } = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
    const bytes: Uint8Array[] = [];
    await writeTrainingState({ write: (c) => (bytes.push(c.slice()), Promise.resolve()) }, strip(state));
    await Deno.writeFile(`${out}/checkpoint.safetensors`, new Uint8Array(bytes.flatMap((p) => [...p])));
  };
  await rewrite((s) => s);
  const r3 = await mesp(cache, ...base(out), "--resume", "--allow-change", "steps", "--steps", "4");
  assertEquals(r3.code, 0, r3.stderr);
  const after = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assertEquals([after.state.step, after.state.config?.seqLen, after.state.config?.optimizer.lr], [
    4,
    24,
    0.003,
  ]);
  // a state from before either was recorded: warned about, the flags given are used
  await rewrite((s) => ({ ...s, config: undefined }));
  const r4 = await mesp(cache, ...base(out), ...flags, "--resume", "--allow-change", "steps", "--steps", "5");
  assertEquals(r4.code, 0, r4.stderr);
  assert(r4.stderr.includes("records no run configuration; the flags cannot be checked"), r4.stderr);
});

Deno.test("resume: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
