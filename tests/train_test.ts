// The training loop: loss falls; the fused per-layer update equals the unfused one bit for bit; an
// interrupted and resumed run ends with the same adapter as an uninterrupted one; SGD matches a hand step.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { decodeTrainingState, writeTrainingState } from "../src/run/training_state.ts";
import { sequencesFingerprint } from "../src/run/train_config.ts";
import { caseSequences, loadCase } from "./_golden.ts";
import { tinyRun } from "./_tiny_run.ts";
import { openPack } from "../src/model/pack.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { epochOrder, planTraining, train, type TrainOptions, type TrainState } from "../src/run/train.ts";
import { initLora } from "../src/engine/lora_init.ts";
import { loraLayout } from "../src/engine/lora.ts";

async function setup() {
  const c = await loadCase("gqa_tied_f32");
  return { c, data: caseSequences(c) };
}

const base: TrainOptions = {
  seqLen: 16,
  steps: 8,
  seed: 5,
  lora: { rank: 4, alpha: 8 },
  optimizer: { name: "sgd", lr: 0.05 },
};

Deno.test("train: loss falls on a tiny model (SGD and AdamW)", async () => {
  const { c, data } = await setup();
  for (const optimizer of [{ name: "sgd" as const, lr: 0.5 }, { name: "adamw" as const, lr: 1e-2 }]) {
    const r = await train(c.pack, data.slice(0, 2), [], { ...base, steps: 30, optimizer });
    const first = (r.losses[0] + r.losses[1]) / 2, last = (r.losses.at(-1)! + r.losses.at(-2)!) / 2;
    assert(last < 0.7 * first, `${optimizer.name}: loss ${first} → ${last}`);
  }
});

Deno.test("train: fused per-layer update equals the unfused update, bit for bit", async () => {
  const { c, data } = await setup();
  const fused = await train(c.pack, data, [], base);
  // clip far above any gradient norm forces the whole-model gradient buffer without changing the math
  const unfused = await train(c.pack, data, [], { ...base, clip: 1e30 });
  assertEquals(fused.losses, unfused.losses);
  assert(fused.params.every((x, i) => Object.is(x, unfused.params[i])), "adapters differ");
});

for (
  const optimizer of [{ name: "sgd" as const, lr: 0.05 }, {
    name: "adamw" as const,
    lr: 1e-3,
    weightDecay: 0.01,
  }]
) {
  Deno.test(`train: interrupted + resumed equals uninterrupted, bit for bit (${optimizer.name})`, async () => {
    const { c, data } = await setup();
    const opts = { ...base, steps: 9, optimizer, gradAccum: 2, valEvery: 4 };
    const full = await train(c.pack, data, data.slice(0, 2), opts);
    let saved: TrainState | undefined;
    let n = 0;
    const part = await train(c.pack, data, data.slice(0, 2), {
      ...opts,
      saveEvery: 2,
      saveState: (s) => {
        if (s.step === 4) saved = structuredClone(s);
        return Promise.resolve();
      },
      shouldStop: () => ++n > 5,
    });
    assert(
      part.stopped && saved?.step === 4,
      "the first run should stop after step 5 with a state saved at 4",
    );
    const resumed = await train(c.pack, data, data.slice(0, 2), { ...opts, resume: saved });
    assertEquals(resumed.losses, full.losses.slice(4));
    assert(resumed.params.every((x, i) => Object.is(x, full.params[i])), "resumed adapter differs");
  });
}

Deno.test("train: a resume takes the state's recorded options where left out; refuses what the state depends on", async () => {
  const { c, data } = await setup();
  const opts: TrainOptions = {
    ...base,
    steps: 7,
    optimizer: { name: "adamw", lr: 2e-3, weightDecay: 0.01, warmup: 2, schedule: "constant", beta2: 0.99 },
    gradAccum: 2,
  };
  const full = await train(c.pack, data, [], opts);
  let saved: TrainState | undefined;
  await train(c.pack, data, [], {
    ...opts,
    saveEvery: 3,
    saveState: (s) => {
      if (s.step === 3) saved = structuredClone(s);
      return Promise.resolve();
    },
    shouldStop: () => saved !== undefined,
  });
  assert(saved?.config, "the state records its run's options");
  // through the file format too
  const parts: Uint8Array[] = [];
  await writeTrainingState({ write: (b) => (parts.push(b.slice()), Promise.resolve()) }, saved);
  const { state } = await decodeTrainingState(new Uint8Array(parts.flatMap((p) => [...p])));
  assertEquals(state.config, saved.config);
  assertEquals([state.config?.saveEvery, state.config?.valEvery], [3, 0]);
  // only what a resume must be given: the same run to its end, bit for bit (the defaults would be lr 2e-4,
  // no weight decay or warmup, a cosine schedule, no accumulation and one epoch's steps)
  const resumed = await train(c.pack, data, [], { seqLen: 16, resume: state });
  assertEquals(resumed.losses, full.losses.slice(3));
  assert(resumed.params.every((x, i) => Object.is(x, full.params[i])), "resumed adapter differs");
  await assertRejects(
    () => train(c.pack, data.slice(1), [], { seqLen: 16, resume: state }),
    "data: other training sequences",
  );
  await assertRejects(
    () => train(c.pack, data, [], { seqLen: 12, gradAccum: 1, optimizer: { beta2: 0.999 }, resume: state }),
    "seqLen 12 (the state's 16)\n  gradAccum 1 (the state's 2)\n  optimizer.beta2 0.999 (the state's 0.99)",
  );
  await assertRejects(
    () => train(c.pack, data, [], { seqLen: 16, steps: 3, resume: state }),
    "nothing to train: the resumed state is at step 3, and the run's target is 3 steps",
  );
  // by value: ids as a plain array (which train takes too) are the same data
  const plain = data.map((s) => ({ ids: [...s.ids], targets: s.targets && [...s.targets] }));
  assertEquals(sequencesFingerprint(plain as never), sequencesFingerprint(data));
  assert(sequencesFingerprint(data.slice(1)) !== sequencesFingerprint(data), "other data, other fingerprint");
  // the same tokens cut at another place are other data (the state's position is in its own sequences)
  const seqOf = (ids: number[]) => ({ ids: Int32Array.from(ids) });
  assert(
    sequencesFingerprint([seqOf([1, 2, 3, 4])]) !== sequencesFingerprint([seqOf([1, 2]), seqOf([3, 4])]),
    "sequences cut elsewhere",
  );
  // as CLI runs record it (no lengths): unchanged, so runs recorded before resume
  assertEquals(
    sequencesFingerprint([seqOf([1, 2, 3, 4])], { lengths: false }),
    sequencesFingerprint([seqOf([1, 2]), seqOf([3, 4])], { lengths: false }),
  );
  // the step target and the learning rate may change
  const faster = await train(c.pack, data, [], {
    seqLen: 16,
    steps: 5,
    optimizer: { lr: 4e-3 },
    resume: state,
  });
  assertEquals(faster.losses.length, 2);
  assertEquals(faster.losses[0], full.losses[3]); // the step after the state starts from its parameters
  assert(faster.losses[1] !== full.losses[4], "a changed learning rate must change the next loss");
  // seqLen left out (JavaScript) is the state's; a wrong one is named as the resume's difference, not as the
  // data's (a seqLen of 2 leaves some sequence without a trained token)
  const noSeqLen = await train(c.pack, data, [], { resume: state } as unknown as TrainOptions);
  assertEquals(noSeqLen.losses, full.losses.slice(3));
  await assertRejects(
    () => train(c.pack, data, [], { seqLen: 2, resume: state }),
    "seqLen 2 (the state's 16)",
  );
  // epochs given stand for the target (the recorded steps are not taken beside them)
  const byEpochs = await train(c.pack, data, [], { seqLen: 16, epochs: 2, resume: state });
  assertEquals(byEpochs.losses.length, Math.ceil((2 * data.length) / 2) - 3);
  assertEquals(byEpochs.losses[0], full.losses[3]);
});

Deno.test("train: the deprecated ckptEvery / ckptDtype options still choose the saved inputs", async () => {
  // 4 layers: every 2nd input saved keeps 3 (on fewer layers no interval keeps fewer than every input)
  const ref = await tinyRun();
  const pack = await openPack(fileSource(`${ref.dir}/${ref.pack}`));
  // the saved inputs' region of the plan train lays out (planTraining's, as the test below checks)
  const saved = async (o: Partial<TrainOptions>) =>
    (await planTraining(pack, { ...base, ...o })).regions.find((r) => r.name === "saved")!.bytes;
  const every2 = await saved({ savedInputEvery: 2 }), bf16 = await saved({ savedInputDtype: "bf16" });
  const all = await saved({});
  assert(every2 < all && bf16 < all, `the options change the plan: ${all}, ${every2}, ${bf16}`);
  assertEquals(await saved({ ckptEvery: 2 }), every2, "ckptEvery");
  assertEquals(await saved({ ckptDtype: "bf16" }), bf16, "ckptDtype");
});

Deno.test("train: the deprecated saveCheckpoint option still receives the training state", async () => {
  const { c, data } = await setup();
  const steps: number[] = [];
  await train(c.pack, data, [], {
    ...base,
    steps: 2,
    saveEvery: 1,
    saveCheckpoint: (s) => (steps.push(s.step), Promise.resolve()),
  });
  assertEquals(steps, [1, 2]);
});

Deno.test("train: SGD with lr 0 leaves the initialisation unchanged; the first step is linear in lr", async () => {
  const { c, data } = await setup();
  const layout = loraLayout(c.cfg, base.lora);
  const p0 = new Float32Array(layout.totalElements);
  initLora(layout, p0, base.seed!);
  const r = await train(c.pack, data.slice(0, 1), [], {
    ...base,
    steps: 1,
    optimizer: { name: "sgd", lr: 0 },
  });
  assert(r.params.every((x, i) => Object.is(x, p0[i])), "lr 0 must leave the initialisation unchanged");
  // B starts at zero: with SGD the first step gives B = −lr·dB, so B / lr is the same for two learning rates
  const a = await train(c.pack, data.slice(0, 1), [], {
    ...base,
    steps: 1,
    optimizer: { name: "sgd", lr: 0.5 },
  });
  const b = await train(c.pack, data.slice(0, 1), [], {
    ...base,
    steps: 1,
    optimizer: { name: "sgd", lr: 0.25 },
  });
  const pair = layout.pairs[1][0];
  for (let i = 0; i < pair.outDim * layout.rank; i++) {
    assertEquals(a.params[pair.b + i] / 0.5, b.params[pair.b + i] / 0.25, `B[${i}]`);
  }
});

Deno.test("train: data order is a seeded permutation per epoch", () => {
  const o0 = epochOrder(10, 1, 0), o1 = epochOrder(10, 1, 1);
  assertEquals([...o0].sort((a, b) => a - b), [...Array(10).keys()]);
  assert(o0.join() !== o1.join(), "epochs should differ");
  assertEquals([...epochOrder(10, 1, 0)], [...o0]);
});

Deno.test("train: no allocation in the step loop — memory is the plan's size before step 1 and stays so", async () => {
  const { c, data } = await setup();
  const { Engine } = await import("../src/engine/engine.ts");
  const { Backward } = await import("../src/engine/backward.ts");
  const { forwardBackward } = await import("../src/engine/step.ts");
  const lora = loraLayout(c.cfg, { rank: 4 });
  const e = await Engine.create(c.pack, { mode: "train", seqLen: 16, lora });
  const planned = Math.ceil(e.arena.plan.end / 65536) * 65536;
  const initial = e.memoryBytes();
  assert(
    initial >= e.arena.plan.end && initial <= Math.max(planned, 16 * 65536),
    `memory ${initial} vs plan end ${e.arena.plan.end}`,
  );
  const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: true, accumulate: false });
  for (const s of data) {
    await forwardBackward(e, bw, s.ids, s.targets, s.ids.length);
    assertEquals(e.memoryBytes(), initial, "wasm memory grew during a step");
  }
});

Deno.test("planTraining gives the plan train lays out (MeSP SGD and AdamW, MeBP, accumulation, 2 threads)", async () => {
  const { c, data } = await setup();
  // train plans for its longest sequence once cut to seqLen; planTraining, given no data, for seqLen
  const longest = Math.max(...data.slice(0, 2).map((s) => Math.min(s.ids.length, base.seqLen)));
  const cases: TrainOptions[] = [
    { ...base, steps: 1 },
    { ...base, steps: 1, optimizer: { name: "adamw", lr: 1e-3 }, lora: { rank: 8 } },
    { ...base, steps: 1, method: "mebp" },
    { ...base, steps: 1, gradAccum: 2, savedInputEvery: 2 },
    { ...base, steps: 1, threads: 2 },
  ];
  for (const o of cases) {
    let laid = -1;
    await train(c.pack, data.slice(0, 2), [], {
      ...o,
      onEvent: (e) => e.type === "plan" && (laid = e.bytes),
    });
    assertEquals((await planTraining(c.pack, o, data.slice(0, 2))).bytes, laid, JSON.stringify(o));
    assertEquals((await planTraining(c.pack, { ...o, seqLen: longest })).bytes, laid, JSON.stringify(o));
    if (longest < base.seqLen) assert((await planTraining(c.pack, o)).bytes > laid, JSON.stringify(o));
  }
});

Deno.test("train: the step loop leaves almost no JavaScript garbage (the vocabulary's rows are not viewed one by one)", async () => {
  // V8 collects its young generation each time 1 MB (the semi-space set here) has been allocated, so the
  // collections between a 5-step and a 25-step run count the MB of garbage 20 steps make; the tiny model has
  // Qwen's 151,936 vocabulary rows, read in q4 chunks every step
  const tmp = await Deno.makeTempDir({ prefix: "mesp-garbage-" });
  const main = new URL("../src/cli/main.ts", import.meta.url).pathname;
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--v8-flags=--max-semi-space-size=1,--trace-gc", main, ...args],
      env: { MESP_CACHE: `${tmp}/cache`, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert(out.success, new TextDecoder().decode(out.stderr));
    return text.split("\n").filter((l) => l.includes("Scavenge")).length;
  };
  try {
    await run("make-model", "--preset", "tiny", "--out", `${tmp}/tiny`);
    const data = new URL("../data/lumen/train.jsonl", import.meta.url).pathname;
    const steps = async (n: number) =>
      await run(
        "train",
        "--model",
        `${tmp}/tiny`,
        "--data",
        data,
        "--out",
        `${tmp}/run-${n}`,
        "--steps",
        `${n}`,
      );
    const perStep = ((await steps(25)) - (await steps(5))) / 20;
    // measured: ~2 MB a step; ~34 MB when each row of each vocabulary chunk was copied through two views
    assert(perStep < 8, `${perStep.toFixed(1)} MB of JavaScript garbage a step`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
