// Root cause 1: non-finite values. Every tensor read from a file is checked (norms and biases too); a
// non-finite loss or update stops the run at that step with an error saying where and what to try; no
// non-finite adapter or training state is written; bounds that cannot work (β = 1, ε = 0) are refused up
// front.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  allFinite,
  assertFails,
  assertUnchanged,
  copyCase,
  f32Bytes,
  idsData,
  mesp,
  patchTensor,
  snapshot,
} from "./_robust.ts";
import { assertFinite, assertFiniteHalf, firstNonFinite } from "../src/model/finite.ts";
import { encodeSafetensors, readSafetensorsHeader, readTensorF32 } from "../src/model/safetensors.ts";
import { bytesSource } from "../src/io/source.ts";
import { checkHyperparameters } from "../src/run/train.ts";
import { decodeTrainingState, trainingStateStream, writeTrainingState } from "../src/run/training_state.ts";

const tmp = await Deno.makeTempDir({ prefix: "mesp-finite-" });
const data = await idsData(`${tmp}/train.jsonl`);
const common = ["--data", data, "--seq-len", "24", "--threads", "1"];
const base = ["--weights", "f32", ...common, "--rank", "2", "--json"];

Deno.test("finite: firstNonFinite / assertFinite find the first NaN or ±∞ and say where", async () => {
  const x = new Float32Array(12);
  assertEquals(firstNonFinite(x), -1);
  x[7] = Infinity;
  x[9] = NaN;
  assertEquals(firstNonFinite(x), 7);
  await assertRejects(() => assertFinite(x, "w", 4, 10), "w: non-finite value Infinity at row 11, column 3");
  await assertRejects(() => assertFinite([1, -Infinity], "v"), "v: non-finite value -Infinity at element 1");
  assertFinite(new Float32Array([3.4e38, -3.4e38, 1e-45]), "extremes are finite");
  // bf16 0x7f80 = +∞, 0xffc0 = NaN; f16 0x7c00 = +∞; 0x7f7f is bf16's largest finite value
  assertFiniteHalf(new Uint16Array([0x7f7f, 0x3f80]), "bf16", "ok");
  await assertRejects(() => assertFiniteHalf(new Uint16Array([0, 0xffc0]), "bf16", "s"), "at element 1");
  await assertRejects(() => assertFiniteHalf(new Uint16Array([0x7c00]), "f16", "s"), "non-finite f16");
});

Deno.test("finite: readTensorF32 refuses NaN in F32, BF16 and F16 tensors, naming the tensor", async () => {
  const bytes = encodeSafetensors([
    { name: "norm", dtype: "F32", shape: [3], data: new Float32Array([1, NaN, 2]) },
    { name: "half", dtype: "BF16", shape: [2, 2], data: new Uint16Array([0x3f80, 0, 0, 0x7f80]) },
    { name: "f16", dtype: "F16", shape: [2], data: new Uint16Array([0x7e00, 0]) },
    { name: "ok", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
  ]);
  const st = await readSafetensorsHeader(bytesSource(bytes, "x.safetensors"));
  await assertRejects(() => readTensorF32(st, "norm"), 'tensor "norm": non-finite value NaN at element 1');
  await assertRejects(() => readTensorF32(st, "half"), "Infinity at row 1, column 1");
  await assertRejects(() => readTensorF32(st, "f16"), "NaN at element 0");
  assertEquals([...await readTensorF32(st, "ok")], [1, 2]);
});

Deno.test("finite: impossible hyper-parameters are refused by the library", async () => {
  const adamw = { name: "adamw" as const, lr: 1e-3 };
  checkHyperparameters(adamw, 1e-3, 0);
  const cases: [Parameters<typeof checkHyperparameters>, string][] = [
    [[{ ...adamw, beta1: 1 }, 1e-3, 0], "β1 must be in [0, 1), got 1"],
    [[{ ...adamw, beta2: 1 }, 1e-3, 0], "β2 must be in [0, 1), got 1"],
    [[{ ...adamw, eps: 0 }, 1e-3, 0], "AdamW ε must be"],
    [[{ ...adamw, lr: Infinity }, 1e-3, 0], "learning rate must be a finite number"],
    [[{ ...adamw, lr: NaN }, 1e-3, 0], "learning rate"],
    [[{ name: "sgd", lr: 1, weightDecay: -1 }, 1e-3, 0], "weight decay"],
    [[{ name: "sgd", lr: 1 }, 0, 0], "MeZO's ε must be a finite number > 0, got 0"],
    [[{ name: "sgd", lr: 1 }, 1e-3, NaN], "clipping norm"],
  ];
  for (const [args, message] of cases) await assertRejects(() => checkHyperparameters(...args), message);
  // β = 1 matters only to AdamW
  checkHyperparameters({ name: "sgd", lr: 1, beta2: 1 }, 1e-3, 0);
});

Deno.test("finite: a training state with a NaN is never written, and never read", async () => {
  const state = {
    step: 1,
    epoch: 0,
    cursor: 1,
    seed: 0,
    params: new Float32Array([0, 1, NaN]),
    lora: { rank: 1, alpha: 2, rslora: false, targets: ["q_proj"] },
    optimizer: "sgd",
  };
  let wrote = 0;
  const sink = { write: (c: Uint8Array) => (wrote += c.length, Promise.resolve()) };
  await assertRejects(() => writeTrainingState(sink, state), "LoRA parameters: non-finite value NaN");
  assertEquals(wrote, 0, "nothing reached the sink");
  // the stream is refused before it exists: a store never receives part of a diverged state
  await assertRejects(() => trainingStateStream(state), "LoRA parameters: non-finite value NaN");
  const chunks: Uint8Array[] = [];
  state.params[2] = 2;
  await writeTrainingState({ write: (c) => (chunks.push(c.slice()), Promise.resolve()) }, state);
  const good = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (good.set(c, at), at + c.length), 0);
  // flip the last parameter to +∞ in the file: decoding refuses it
  good.set(f32Bytes(Infinity), good.length - 4);
  await assertRejects(() => decodeTrainingState(good, "ck.safetensors"), "non-finite value Infinity");
});

const cases: {
  name: string;
  tensor: string;
  at: number;
  value: Uint8Array;
  weights: string;
  want: RegExp;
}[] = [
  {
    name: "a NaN in a norm weight",
    tensor: "model.layers.1.post_attention_layernorm.weight",
    at: 4 * 5,
    value: f32Bytes(NaN),
    weights: "f32",
    want: /model\.layers\.1\.post_attention_layernorm\.weight.*non-finite value NaN at element 5/,
  },
  {
    name: "+∞ in an attention bias",
    tensor: "model.layers.0.self_attn.k_proj.bias",
    at: 0,
    value: f32Bytes(Infinity),
    weights: "bf16",
    want: /model\.layers\.0\.self_attn\.k_proj\.bias.*non-finite value Infinity at element 0/,
  },
  {
    name: "a NaN in the final norm",
    tensor: "model.norm.weight",
    at: 4 * 63,
    value: f32Bytes(NaN),
    weights: "bf16",
    want: /model\.norm\.weight.*element 63/,
  },
  {
    name: "−∞ in a matrix packed as f16",
    tensor: "model.layers.1.mlp.down_proj.weight",
    at: 4 * (96 * 3 + 17),
    value: f32Bytes(-Infinity),
    weights: "f16",
    want: /down_proj\.weight.*-Infinity at row 3, column 17/,
  },
];
for (const c of cases) {
  Deno.test(`finite: ${c.name} stops train before any step, touching nothing`, async () => {
    const dir = `${tmp}/${c.name.replace(/\W+/g, "_")}`;
    const model = await copyCase("gqa_tied_f32", `${dir}/model`);
    await patchTensor(`${model}/model.safetensors`, c.tensor, c.at, c.value);
    const out = `${dir}/run`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(`${out}/notes.txt`, "mine");
    const before = await snapshot(dir);
    const r = await mesp(
      `${dir}/cache`,
      "train",
      "--model",
      model,
      ...common,
      "--weights",
      c.weights,
      "--out",
      out,
    );
    assertFails(r, 1, c.want, c.name);
    await assertUnchanged(before, c.name);
    assert(!(await Deno.stat(`${out}/adapter_model.safetensors`).catch(() => false)), "no adapter written");
  });
}

Deno.test("finite: a NaN in an MLX bf16 scale is named (the pack copies scales as they are)", async () => {
  const dir = `${tmp}/mlx`;
  const model = await copyCase("mlx_q4", `${dir}/model`);
  await patchTensor(
    `${model}/model.safetensors`,
    "model.layers.0.self_attn.o_proj.scales",
    2,
    new Uint8Array([0xc0, 0x7f]),
  );
  const before = await snapshot(dir);
  const r = await mesp(
    `${dir}/cache`,
    "eval",
    "--model",
    model,
    "--weights",
    "q4",
    "--data",
    data,
    "--seq-len",
    "24",
  );
  assertFails(r, 1, /o_proj\.scales .*non-finite bf16 value \(bits 0x7fc0\) at element 1/, "mlx scale");
  await assertUnchanged(before, "mlx scale");
});

Deno.test("finite: a NaN in an adapter tensor is refused with its name", async () => {
  const dir = `${tmp}/adapter`;
  const model = await copyCase("gqa_tied_f32", `${dir}/model`);
  const adapterFile = `${model}/adapter/adapter_model.safetensors`;
  const st = await readSafetensorsHeader(bytesSource(await Deno.readFile(adapterFile)));
  const name = [...st.tensors.keys()].find((n) => n.endsWith("lora_B.weight"))!;
  await patchTensor(adapterFile, name, 8, f32Bytes(NaN));
  const before = await snapshot(dir);
  for (const cmd of [["eval"], ["train", "--out", `${dir}/run`]]) {
    const r = await mesp(
      `${dir}/cache`,
      ...cmd,
      "--model",
      model,
      "--weights",
      "f32",
      ...common,
      "--adapter",
      `${model}/adapter`,
    );
    assertFails(
      r,
      1,
      new RegExp(`${name.replaceAll(".", "\\.")}.*non-finite value NaN at (row|element)`),
      cmd[0],
    );
  }
  await assertUnchanged(before, "adapter");
});

Deno.test("finite: an exploding learning rate stops at that step; the last good training state survives", async () => {
  const dir = `${tmp}/explode`;
  const model = await copyCase("gqa_tied_f32", `${dir}/model`);
  const out = `${dir}/run`;
  const args = ["train", "--model", model, ...base, "--out", out, "--optimizer", "sgd", "--save-every", "1"];
  const r = await mesp(`${dir}/cache`, ...args, "--steps", "6", "--lr", "1e30", "--schedule", "constant");
  assertFails(
    r,
    1,
    /step 2: the loss is NaN \(sequence \d of the training data\); nothing after step 1 was saved\. Try a lower learning rate/,
    "lr 1e30",
  );
  const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assertEquals(ck.state.step, 1, "the training state of step 1 stays");
  assert(await allFinite(`${out}/adapter_model.safetensors`), "the adapter on disk is finite");
  const metrics = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assertEquals(metrics.map((m) => m.step), [1], "no row for the failed step");
  assert(metrics.every((m) => Number.isFinite(m.loss)), "no null loss in the metrics");
});

Deno.test("finite: AdamW updates that overflow stop at once (lr 1e38), nothing is written", async () => {
  const dir = `${tmp}/adamw`;
  const model = await copyCase("gqa_tied_f32", `${dir}/model`);
  const out = `${dir}/run`;
  const r = await mesp(
    `${dir}/cache`,
    "train",
    "--model",
    model,
    ...base,
    "--out",
    out,
    "--steps",
    "3",
    "--lr",
    "3e38",
    "--schedule",
    "constant",
  );
  assertFails(
    r,
    1,
    /step [12]: the (update made LoRA parameters non-finite|loss is NaN).*nothing after step 0 was saved/,
    "adamw",
  );
  for (const f of ["adapter_model.safetensors", "checkpoint.safetensors"]) {
    assert(!(await Deno.stat(`${out}/${f}`).catch(() => false)), `${f} must not be written`);
  }
});

Deno.test("finite: --beta1 1, --beta2 1, --zo-eps 0 are refused before anything is read or made", async () => {
  const dir = `${tmp}/bounds`;
  const model = await copyCase("gqa_tied_f32", `${dir}/model`);
  const out = `${dir}/run`;
  await Deno.mkdir(out);
  await Deno.writeTextFile(`${out}/keep.txt`, "untouched");
  const before = await snapshot(dir);
  const bad: [string[], RegExp][] = [
    [["--beta1", "1"], /--beta1: must be < 1, got 1/],
    [["--beta2", "1"], /--beta2: must be < 1, got 1/],
    [["--beta2", "1.5"], /--beta2: must be < 1, got 1\.5/],
    [["--zo-eps", "0", "--method", "mezo"], /--zo-eps: must be > 0, got 0/],
    [["--lr", "-1"], /--lr: must be > 0, got -1/],
  ];
  for (const [flags, want] of bad) {
    const r = await mesp(`${dir}/cache`, "train", "--model", model, ...base, "--out", out, ...flags);
    assertFails(r, 1, want, flags.join(" "));
  }
  await assertUnchanged(before, "bounds");
  assert(!(await Deno.stat(`${dir}/cache`).catch(() => false)), "nothing was packed");
});

Deno.test("finite: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
