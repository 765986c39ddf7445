// The library's run options as a plain-JavaScript caller gets them wrong (the browser build has no types): a
// misspelled name, a value outside its choices, a number of the wrong kind, a sequence that cannot be
// trained, a layout that contradicts the resumed state. Each is an error naming it before any work; the lists
// of names are checked against the interfaces' source, so a new option cannot be refused by mistake.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { loadCase } from "./_golden.ts";
import {
  EVALUATE_OPTIONS,
  GENERATE_OPTIONS,
  GRAD_OPTIONS,
  LORA_OPTIONS,
  OPTIMIZER_OPTIONS,
  TRAIN_OPTIONS,
} from "../src/run/run_options.ts";
import { train, type TrainOptions, type TrainState } from "../src/run/train.ts";
import { evaluate } from "../src/run/evaluate.ts";
import { generate } from "../src/run/generate.ts";
import { computeGradients } from "../src/run/grad.ts";
import { SPEC as TRAIN_SPEC } from "../src/cli/train.ts";
import type { Sequence } from "../src/data/sequence.ts";
import { decodeTrainingState, openTrainingState, writeTrainingState } from "../src/run/training_state.ts";
import { bytesSource } from "../src/io/source.ts";
import { openPack } from "../src/model/pack.ts";
import { adapterConfigJson, encodeLoraTensors, openAdapter } from "../src/engine/adapter.ts";

/** The property names of `export interface NAME` in `file` (repository-relative). */
async function interfaceKeys(file: string, name: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(`../${file}`, import.meta.url));
  const start = text.indexOf(`export interface ${name} `);
  assert(start >= 0, `${file} has no interface ${name}`);
  const body = text.slice(text.indexOf("{", start) + 1, text.indexOf("\n}", start));
  return [...body.matchAll(/^ {2}(?:readonly )?(\w+)\??:/gm)].map((m) => m[1]).sort();
}

Deno.test("run options: each list of names is its interface's", async () => {
  const cases: [readonly string[], string, string, string[]][] = [
    [TRAIN_OPTIONS, "src/run/train.ts", "TrainOptions", []],
    [EVALUATE_OPTIONS, "src/run/evaluate.ts", "EvaluateOptions", []],
    [GENERATE_OPTIONS, "src/run/generate.ts", "GenerateOptions", []],
    [GRAD_OPTIONS, "src/run/grad.ts", "GradOptions", []],
    [OPTIMIZER_OPTIONS, "src/engine/optimizer.ts", "OptimizerOptions", ["totalSteps"]],
    [LORA_OPTIONS, "src/engine/lora.ts", "LoraOptions", []],
  ];
  for (const [list, file, name, notTheCallers] of cases) {
    const keys = (await interfaceKeys(file, name)).filter((k) => !notTheCallers.includes(k));
    assert(keys.length > 3, `${name}: only ${keys.length} names read`);
    assertEquals([...list].sort(), keys, name);
  }
});

const c = await loadCase("gqa_tied_f32");
const seq = (n: number, targets?: Uint8Array): Sequence => ({
  ids: Int32Array.from({ length: n }, (_, t) => c.ids[t % c.T]),
  targets,
});
const data = [seq(12), seq(12), seq(12)];
const base: TrainOptions = { seqLen: 12, steps: 1, lora: { rank: 2 }, optimizer: { name: "sgd", lr: 0.01 } };
/** train with `options` changed as a JavaScript caller might (no types). */
const trainWith = (options: Record<string, unknown>, sequences = data) => () =>
  train(c.pack, sequences, [], { ...base, ...options } as unknown as TrainOptions);

Deno.test("run options: train refuses unknown names, wrong kinds and choices before any work", async () => {
  await assertRejects(trainWith({ step: 2 }), 'train options: unknown option "step" (did you mean "steps"?)');
  await assertRejects(
    trainWith({ lr: 1e-3 }),
    'train options: unknown option "lr" (it belongs in optimizer: { lr })',
  );
  await assertRejects(
    trainWith({ rank: 4 }),
    'train options: unknown option "rank" (it belongs in lora: { rank })',
  );
  await assertRejects(trainWith({ lora: { targets: "q,v" } }), 'lora: targets must be an array, got "q,v"');
  await assertRejects(trainWith({ threads: 0 }), "train options: threads must be an integer ≥ 1, got 0");
  // seeds are 32-bit; a fractional one once trained and saved a state that could not be read back
  for (const seed of [1.5, -1, 2 ** 32]) {
    await assertRejects(
      trainWith({ seed }),
      `train options: seed must be an integer from 0 to 4294967295, got ${seed}`,
    );
  }
  await assertRejects(trainWith({ steps: 2, epochs: 3 }), "train options: give steps or epochs, not both");
  await assertRejects(
    trainWith({ method: "mesb" }),
    'train options: method must be one of "mesp", "mebp", "mezo"',
  );
  await assertRejects(trainWith({ steps: 1.5 }), "train options: steps must be an integer, got 1.5");
  await assertRejects(trainWith({ steps: "2" }), 'train options: steps must be an integer, got "2"');
  await assertRejects(trainWith({ budget: "10MB" }), 'train options: budget must be a number, got "10MB"');
  await assertRejects(trainWith({ budget: -5 }), "train options: budget must be a byte count ≥ 0, got -5");
  await assertRejects(trainWith({ onEvent: "log" }), "train options: onEvent must be a function");
  await assertRejects(
    trainWith({ lora: { r: 8 } }),
    'train options.lora: unknown option "r"',
  );
  // a misspelled optimizer once ran AdamW's update on moment pointers of 0 (writing at the arena's start)
  await assertRejects(
    trainWith({ optimizer: { name: "adam", lr: 1e-6 } }),
    'train options.optimizer: name must be one of "sgd", "adamw", got "adam"',
  );
  await assertRejects(
    trainWith({ optimizer: { name: "adamw", lr: "0.001" } }),
    'train options.optimizer: lr must be a number, got "0.001"',
  );
  await assertRejects(
    trainWith({ optimizer: { name: "sgd", lr: 0.01, schedual: "cosine" } }),
    'train options.optimizer: unknown option "schedual" (did you mean "schedule"?)',
  );
});

Deno.test("run options: a sequence that cannot be trained is named before the first step", async () => {
  await assertRejects(
    trainWith({}, [...data, seq(1)]),
    "training sequence 3: no trained token (it has 1 token)",
  );
  const masked = seq(12, new Uint8Array(12));
  masked.targets![11] = 1; // trained only past the sequence length below
  await assertRejects(
    trainWith({ seqLen: 8 }, [seq(12), masked]),
    "training sequence 1: no trained token in its first 8",
  );
  await assertRejects(
    trainWith({}, [seq(12), seq(10, new Uint8Array(3).fill(1))]),
    "training sequence 1: 3 targets for 10 tokens (one per token)",
  );
  await assertRejects(
    () => train(c.pack, data, [seq(10, new Uint8Array(50))], base),
    "validation sequence 0: 50 targets for 10 tokens",
  );
  const plain = (ids: number[], targets?: number[]) => ({ ids, targets }) as unknown as Sequence;
  await assertRejects(
    trainWith({}, [seq(12), plain([1, 2.5, 3])]),
    "training sequence 1: ids[1] is 2.5, not a token id (an integer from 0 to",
  );
  const vocab = c.pack.config.vocabSize;
  for (const [bad, got] of [[Int32Array.from([1, -3, 2]), -3], [Int32Array.from([1, vocab, 2]), vocab]]) {
    await assertRejects(
      trainWith({}, [{ ids: bad as Int32Array }]),
      `training sequence 0: ids[1] is ${got}, not a token id (an integer from 0 to ${vocab - 1})`,
    );
  }
  // Hugging Face's labels mark ignored positions -100; a 0/1 mask counted them as trained
  await assertRejects(
    trainWith({}, [plain([1, 2, 3, 4], [-100, -100, 3, 4])]),
    "training sequence 0: targets[0] is -100; targets is a 0/1 mask per token (1 = trained), not Hugging Face labels",
  );
  await assertRejects(
    () => train(c.pack, data, [seq(10, new Uint8Array(10))], base),
    "validation set: no sequence has a trained token within seqLen 12",
  );
  await assertRejects(
    () => train(c.pack, data, undefined as unknown as Sequence[], base),
    "data and val are arrays of sequences",
  );
});

Deno.test("run options: a resumed run's layout is its state's; a different lora is an error, the same is fine", async () => {
  let saved: TrainState | undefined;
  await train(c.pack, data, [], {
    ...base,
    steps: 2,
    shouldStop: () => saved !== undefined,
    saveState: (s) => {
      saved = structuredClone(s);
      return Promise.resolve();
    },
  });
  assert(saved, "no state saved");
  await assertRejects(
    trainWith({ steps: 3, resume: saved, lora: { rank: 4 } }),
    "train options.lora: rank 4 differs from the resumed state's 2",
  );
  await assertRejects(
    trainWith({ steps: 3, resume: saved, seed: 99 }),
    "train options: seed 99 differs from the resumed state's 0",
  );
  const r = await train(c.pack, data, [], { ...base, steps: 3, resume: saved, lora: { rank: 2 } });
  assertEquals(r.steps, 3);
});

Deno.test("run options: evaluate, generate and computeGradients check theirs too", async () => {
  await assertRejects(
    () => evaluate(c.pack, data, { seqLen: 1 }),
    "evaluate options: seqLen must be at least 2, got 1",
  );
  await assertRejects(
    () => evaluate(c.pack, data, { score: "trainedx" } as unknown as Record<string, never>),
    'evaluate options: score must be one of "all", "trained", got "trainedx"',
  );
  await assertRejects(async () => {
    for await (const _ of generate(c.pack, [1, 2], { maxToken: 2 } as Record<string, unknown>)) {
      /* drain */
    }
  }, 'generate options: unknown option "maxToken" (did you mean "maxTokens"?)');
  await assertRejects(
    () => computeGradients(c.pack, data[0], { lora: { rank: 2, target: ["q"] } } as Record<string, unknown>),
    'computeGradients options.lora: unknown option "target" (did you mean "targets"?)',
  );
});

Deno.test("run options: evaluate and computeGradients check their sequences and the model's positions", async () => {
  const plain = (ids: number[], targets?: number[]) => ({ ids, targets }) as unknown as Sequence;
  // each of these once returned a score, counting the bad id, the -100 or the missing targets
  await assertRejects(
    () => evaluate(c.pack, [plain([1, 2.5, 3])]),
    "evaluation sequence 0: ids[1] is 2.5, not a token id",
  );
  await assertRejects(
    () => evaluate(c.pack, [plain([1, 2, 3], [-100, 1, 1])], { score: "trained" }),
    "evaluation sequence 0: targets[0] is -100",
  );
  await assertRejects(
    () => evaluate(c.pack, [plain([1, 2, 3, 4], [0, 1])], { score: "trained" }),
    "evaluation sequence 0: 2 targets for 4 tokens",
  );
  await assertRejects(
    () => evaluate(c.pack, [{ input_ids: [1, 2, 3] } as unknown as Sequence]),
    "evaluation sequence 0: no ids (it has input_ids: a sequence's token ids are its ids)",
  );
  await assertRejects(
    () => evaluate(c.pack, { count: 1 } as unknown as Sequence[]),
    "evaluation sequences must be an array of { ids, targets? }",
  );
  // past the model's positions the rotary positions are ones it never saw
  const positions = c.pack.config.maxPositionEmbeddings, long = seq(positions + 1);
  await assertRejects(
    () => evaluate(c.pack, [long]),
    `evaluate: the longest sequence is ${
      positions + 1
    } tokens, longer than the model allows (${positions} positions`,
  );
  await assertRejects(
    () => computeGradients(c.pack, long),
    `computeGradients: the sequence is ${positions + 1} tokens, longer than the model allows`,
  );
  await assertRejects(
    () => computeGradients(c.pack, plain([1, 7.5])),
    "computeGradients sequence 0: ids[1] is 7.5",
  );
  // cut to the positions, the same sequence is scored
  const cut = await evaluate(c.pack, [long], { seqLen: positions });
  assertEquals(cut.tokens, positions - 1);
  // train alike: a generous seqLen is a bound, a sequence past the positions is named
  const short = [seq(8)];
  const trained = await train(c.pack, short, [], { seqLen: positions * 4, steps: 1 });
  assertEquals(trained.losses.length, 1);
  await assertRejects(
    () => train(c.pack, [long], [], { seqLen: positions * 4, steps: 1 }),
    `train: the longest sequence is ${positions + 1} tokens, longer than the model allows`,
  );
});

Deno.test("run options: counts are ≥ 1 (vocabChunk 0 once looped until out of memory), labels are named", async () => {
  for (const name of ["vocabChunk", "savedInputEvery"]) {
    await assertRejects(trainWith({ [name]: 0 }), `train options: ${name} must be an integer ≥ 1, got 0`);
  }
  for (const name of ["saveEvery", "valEvery"]) { // 0: never
    await assertRejects(trainWith({ [name]: -1 }), `train options: ${name} must be an integer ≥ 0, got -1`);
  }
  await assertRejects(
    trainWith({ optimizer: { warmup: -1 } }),
    "train options.optimizer: warmup must be an integer ≥ 0, got -1",
  );
  await assertRejects(trainWith({ target: -5 }), "train options: target must be a byte count ≥ 0, got -5");
  // a Promise is named as one (it read "got [object Promise]"), as the options or as a sequence
  await assertRejects(
    () => train(c.pack, data, [], Promise.resolve(base) as unknown as TrainOptions),
    "train options: options must be an object, got a Promise (a forgotten await?)",
  );
  await assertRejects(
    trainWith({}, [Promise.resolve(data[0])] as unknown as Sequence[]),
    "training sequence 0: no ids (it is a Promise: a forgotten await?)",
  );
  await assertRejects(
    trainWith({ steps: Promise.resolve(3) }),
    "train options: steps must be an integer, got a Promise (a forgotten await?)",
  );
  // an empty target list once trained every linear, as if it were left out
  await assertRejects(
    trainWith({ lora: { targets: [] } }),
    'LoRA targets: the list is empty (leave it out, or ["all"]',
  );
  const labelled = { ids: data[0].ids, labels: [...data[0].ids] } as unknown as Sequence;
  await assertRejects(
    trainWith({}, [labelled]),
    "training sequence 0 has labels, which train does not read: its targets is a 0/1 mask per token",
  );
});

Deno.test("run options: a resume that is not a training state is named (a Promise, { state, run }, bytes, a result)", async () => {
  const parts: Uint8Array[] = [];
  let saved: TrainState | undefined;
  const result = await train(c.pack, data, [], {
    ...base,
    steps: 2,
    saveState: (s) => {
      saved = structuredClone(s);
    },
  });
  await writeTrainingState({ write: (b) => (parts.push(b.slice()), Promise.resolve()) }, saved!);
  const bytes = new Uint8Array(parts.flatMap((p) => [...p]));
  const cases: [unknown, string][] = [
    [decodeTrainingState(bytes), "a Promise — did you forget await?"],
    [await decodeTrainingState(bytes), "{ state, run }: pass its .state"],
    [await openTrainingState(bytesSource(bytes)), "{ state, run }: pass its .state"],
    [bytes, "a Uint8Array: the file's bytes; open them first"],
    [result, "a train result, which holds no optimizer state or data position"],
    [{ step: 2 }, "an object"],
  ];
  for (const [resume, message] of cases) {
    await assertRejects(
      trainWith({ steps: 4, resume }),
      `train options: resume: expected a training state, got ${message}`,
    );
  }
  // a plain (not async) saveState is awaited as well: the state it was given resumes
  const r = await train(c.pack, data, [], {
    ...base,
    steps: 3,
    resume: (await decodeTrainingState(bytes)).state,
  });
  assertEquals(r.steps, 3);
});

Deno.test("library helpers name a plain-JavaScript caller's mistakes; bytes may be an ArrayBuffer", async () => {
  await assertRejects(
    () => openPack("https://example.com/m.pack" as never),
    "openPack: expected a weight source (fetchSource, bytesSource, blobSource …), got a string: wrap a URL in fetchSource(url)",
  );
  await assertRejects(
    () => openPack(Promise.resolve(bytesSource(new Uint8Array(4))) as never),
    "openPack: expected a weight source (fetchSource, bytesSource, blobSource …), got a Promise — did you forget await?",
  );
  await assertRejects(
    () =>
      openAdapter({ "adapter_config.json": "{}", "adapter_model.safetensors": new Uint8Array() } as never),
    "openAdapter: expected model files (urlFiles, memoryFiles, blobFiles …), got an object of file contents: wrap it in memoryFiles",
  );
  await assertRejects(
    () => openAdapter("runs/mine" as never),
    "got a string: wrap a folder's URL in urlFiles(url)",
  );
  const result = await train(c.pack, data, [], base);
  await assertRejects(
    () => adapterConfigJson(result as never),
    "adapterConfigJson: expected a LoRA layout, got an object (a train result: pass result.layout)",
  );
  await assertRejects(
    () => encodeLoraTensors(result.layout, result as never),
    "encodeLoraTensors: values must be the layout's",
  );
  // an ArrayBuffer (what Response.arrayBuffer() gives) reads as its bytes
  const copy = new Uint8Array(8);
  await bytesSource(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]).buffer).read(1, copy);
  assertEquals([...copy], [2, 3, 4, 5, 6, 7, 8, 9]);
});

Deno.test("run options: the kernels option's names and modules are checked", async () => {
  const { Engine } = await import("../src/engine/engine.ts");
  await assertRejects(
    trainWith({ kernels: { wasmbase: "https://cdn.example/wasm/" } }),
    'train options.kernels: unknown option "wasmbase" (did you mean "wasmBase"?)',
  );
  const modules = { "mesp_simd.wasm": new Uint8Array(8) } as never;
  await assertRejects(
    () => evaluate(c.pack, data, { kernels: { modules } }),
    'evaluate options.kernels: modules["mesp_simd.wasm"] must be a WebAssembly.Module, got a Uint8Array',
  );
  await assertRejects(
    () => Engine.create(c.pack, { mode: "eval", seqLen: 8, kernels: { modules } }),
    'kernels: modules["mesp_simd.wasm"] must be a WebAssembly.Module',
  );
});

Deno.test("run options: Engine.create names a missing mode", async () => {
  const { Engine } = await import("../src/engine/engine.ts");
  await assertRejects(
    () => Engine.create(c.pack, { seqLen: 8 } as unknown as Parameters<typeof Engine.create>[1]),
    'Engine.create: mode must be "eval", "generate" or "train", got undefined',
  );
});

Deno.test("run options: a pack not opened (a forgotten await, a bare weight source) is named by each entry point", async () => {
  const { Engine } = await import("../src/engine/engine.ts");
  const { openPack } = await import("../src/model/pack.ts");
  const { planTraining } = await import("../src/run/train.ts");
  const notOpened: [unknown, string][] = [
    [openPack(c.pack.source), "a Promise — did you forget await?"],
    [c.pack.source, "a weight source: pass it to openPack first"],
    ["/tmp/x.pack", "a string"],
    [undefined, "undefined"],
  ];
  for (const [bad, got] of notOpened) {
    const pack = bad as typeof c.pack;
    const says = (fn: string) =>
      `${fn}: the first argument must be an opened pack (await openPack(source)); got ${got}`;
    await assertRejects(() => train(pack, data, [], base), says("train"));
    await assertRejects(() => planTraining(pack, base), says("planTraining"));
    await assertRejects(() => evaluate(pack, data), says("evaluate"));
    await assertRejects(() => computeGradients(pack, data[0]), says("computeGradients"));
    await assertRejects(async () => {
      for await (const _ of generate(pack, [1, 2])) { /* drain */ }
    }, says("generate"));
    await assertRejects(() => Engine.create(pack, { mode: "eval", seqLen: 8 }), says("Engine.create"));
  }
});

Deno.test("run options: an adapter not opened (a path, model files, a train result) is named by each entry point", async () => {
  const { memoryFiles, urlFiles } = await import("../src/io/source.ts");
  const { adapterConfigJson, encodeLoraTensors, openAdapter, readAdapterInto } = await import(
    "../src/engine/adapter.ts"
  );
  const result = await train(c.pack, data, [], base);
  const expected = "adapter: expected an opened adapter (await openAdapter(files)), got";
  const notOpened: [unknown, string][] = [
    ["/some/dir", "a string: open the adapter's directory as files (urlFiles(url)"],
    [urlFiles("https://example.com/adapter/"), "model files: pass them to openAdapter first"],
    [result, "a train result: write it as adapter files and open those"],
    [openAdapter(memoryFiles({})).catch(() => {}), "a Promise — did you forget await?"],
    [{ config: { rank: 2 } }, "an object"],
  ];
  for (const [bad, got] of notOpened) {
    const adapter = bad as never;
    const says = (where: string) => `${where}: ${expected} ${got}`;
    await assertRejects(trainWith({ adapter }), says("train options"));
    await assertRejects(
      () => evaluate(c.pack, data, { adapter }),
      says("evaluate options"),
    );
    await assertRejects(
      () => computeGradients(c.pack, data[0], { adapter }),
      says("computeGradients options"),
    );
    await assertRejects(async () => {
      for await (const _ of generate(c.pack, [1, 2], { adapter })) { /* drain */ }
    }, says("generate options"));
    await assertRejects(
      () => readAdapterInto(adapter, result.layout, new Float32Array(result.params.length)),
      `${expected} ${got}`,
    );
  }
  // what the train result error says to do opens an adapter all four take
  const adapter = await openAdapter(memoryFiles({
    "adapter_config.json": adapterConfigJson(result.layout),
    "adapter_model.safetensors": encodeLoraTensors(result.layout, result.params),
  }));
  assertEquals((await evaluate(c.pack, data, { adapter })).sequences, data.length);
});

Deno.test("run options: train's optimizer defaults are the CLI's (AdamW 2e-4 cosine; SGD 1e-4; MeZO SGD 5e-5)", async () => {
  const run = async (options: Partial<TrainOptions>) => {
    const r = await train(c.pack, data, [], { seqLen: 12, steps: 3, lora: { rank: 2 }, ...options });
    return Array.from(r.params);
  };
  // the CLI's defaults as `deno task train --help` shows them: its flag defaults and the --lr description
  const flags = TRAIN_SPEC.flags;
  const lr = Object.fromEntries(
    [...flags.lr.description.matchAll(/([\d.e-]+) (AdamW|SGD|MeZO)/g)].map((m) => [m[2], Number(m[1])]),
  );
  assertEquals(Object.keys(lr).sort(), ["AdamW", "MeZO", "SGD"], flags.lr.description);
  const schedule = flags.schedule.default;
  const named = flags.optimizer.default;
  const cli = await run({ optimizer: { name: named, lr: named === "adamw" ? lr.AdamW : lr.SGD, schedule } });
  assertEquals(await run({}), cli);
  assertEquals(await run({ optimizer: { lr: named === "adamw" ? lr.AdamW : lr.SGD } }), cli);
  const sgd = await run({ optimizer: { name: "sgd", lr: lr.SGD, schedule } });
  assert(sgd.some((p, i) => p !== cli[i]), "SGD and AdamW gave the same parameters");
  assertEquals(await run({ optimizer: { name: "sgd" } }), sgd);
  const mezo = await run({ method: "mezo", optimizer: { name: "sgd", lr: lr.MeZO, schedule } });
  assertEquals(await run({ method: "mezo" }), mezo);
});

Deno.test("run options: an async shouldStop is awaited (its Promise once stopped every run before step 1)", async () => {
  let polls = 0;
  const r = await train(c.pack, data, [], {
    ...base,
    steps: 3,
    shouldStop: async () => {
      await Promise.resolve();
      return ++polls > 2;
    },
  });
  assertEquals(r.losses.length, 2);
  assert(r.stopped);
});
