// Spill (src/engine/spill.ts): a run whose saved inputs, adapter and optimizer moments live in a file gives
// the losses, parameters, moments and saved training state of the same run in the arena, bit for bit — for
// SGD and AdamW, every saved-input order, validation, an adapter to start from, a resume from either kind
// of state, one and two threads — and its arena holds one layer of adapter and no saved input.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { caseSequences, loadCase } from "./_golden.ts";
import type { Sequence } from "../src/data/sequence.ts";
import { planTraining, train, type TrainOptions, type TrainState } from "../src/run/train.ts";
import { memorySpill, type SpillFile } from "../src/io/spill_file.ts";
import { type AdapterValues, piecesOf } from "../src/engine/adapter_values.ts";
import { decodeTrainingState, writeTrainingState } from "../src/run/training_state.ts";
import { encodeLoraTensors, writeLoraTensors } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { planRegions } from "../src/engine/plan.ts";
import { createSpillFile } from "../src/io/deno_files.ts";

async function setup(name = "gqa_tied_f32") {
  const c = await loadCase(name, name === "mlx_q4" ? "q4" : "f32");
  return { c, data: caseSequences(c) };
}

const base: TrainOptions = {
  seqLen: 16,
  steps: 5,
  seed: 3,
  lora: { rank: 4, alpha: 8 },
  optimizer: { name: "sgd", lr: 0.05 },
};

/** A value's bytes, whole (layered ones gathered a layer at a time). */
function whole(v: AdapterValues | undefined): Uint8Array {
  if (!v) return new Uint8Array(0);
  const out = new Uint8Array(v.length * 4);
  let at = 0;
  for (const piece of piecesOf(v)) {
    out.set(new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength), at);
    at += piece.byteLength;
  }
  return out;
}

async function stateBytes(s: TrainState): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await writeTrainingState({ write: (c) => (chunks.push(c.slice()), Promise.resolve()) }, s);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
  return out;
}

/** Trains with `options`, returning losses, the final parameters and the saved state's bytes. */
async function run(c: Awaited<ReturnType<typeof setup>>["c"], data: Sequence[], options: TrainOptions) {
  let state: Uint8Array | undefined, moments = new Uint8Array(0), adapter = new Uint8Array(0);
  const r = await train(c.pack, data, data.slice(0, 2), {
    ...options,
    valEvery: 2,
    saveState: async (s) => {
      state = await stateBytes(s);
      moments = new Uint8Array([...whole(s.m), ...whole(s.v)]);
      // the adapter file as the CLI writes it (a layer at a time from a spill)
      const chunks: number[] = [];
      const layout = loraLayout(c.pack.config, options.lora);
      await writeLoraTensors({ write: (b) => (chunks.push(...b), Promise.resolve()) }, layout, s.params);
      adapter = new Uint8Array(chunks);
    },
  });
  return { losses: r.losses, val: r.valLosses, params: whole(r.params), state: state!, moments, adapter };
}

function assertSameRun(a: Awaited<ReturnType<typeof run>>, b: Awaited<ReturnType<typeof run>>, what: string) {
  assertEquals(a.losses, b.losses, `${what}: losses`);
  assertEquals(a.val, b.val, `${what}: validation losses`);
  assertEquals(a.params, b.params, `${what}: parameters`);
  assertEquals(a.moments, b.moments, `${what}: moments`);
  assertEquals(a.state, b.state, `${what}: training state bytes`);
  assertEquals(a.adapter, b.adapter, `${what}: adapter file bytes`);
}

for (const optimizer of [{ name: "sgd" as const, lr: 0.05 }, { name: "adamw" as const, lr: 1e-2 }]) {
  Deno.test(`spill: the same run as in the arena, bit for bit (${optimizer.name}; every saved-input order)`, async () => {
    const { c, data } = await setup();
    for (const inputs of [{}, { savedInputs: 2 }, { savedInputEvery: 2 }]) {
      const o = { ...base, optimizer, ...inputs };
      const arena = await run(c, data, o);
      const spilled = await run(c, data, { ...o, spill: memorySpill() });
      assertSameRun(arena, spilled, `${optimizer.name} ${JSON.stringify(inputs)}`);
    }
  });
}

Deno.test("spill: q4 weights, two threads, an adapter to start from and a file on disk", async () => {
  const { c, data } = await setup("mlx_q4");
  const o = { ...base, threads: 2, optimizer: { name: "adamw" as const, lr: 1e-2 } };
  const first = await train(c.pack, data, [], { ...o, steps: 2 });
  const layout = loraLayout(c.pack.config, base.lora);
  const bytes = encodeLoraTensors(layout, first.params);
  const adapter = {
    name: "mem",
    config: { rank: 4, alpha: 8, rslora: false, targets: [...layout.targets] },
    weights: await (await import("../src/model/safetensors.ts")).readSafetensorsHeader(
      (await import("../src/io/source.ts")).bytesSource(bytes),
    ),
  };
  const arena = await run(c, data, { ...o, adapter });
  const dir = await Deno.makeTempDir();
  const file = createSpillFile(dir);
  try {
    const spilled = await run(c, data, { ...o, adapter, spill: file });
    assertSameRun(arena, spilled, "q4, 2 threads, from an adapter, on disk");
  } finally {
    file.close();
  }
  assertEquals([...Deno.readDirSync(dir)].length, 0, "close deletes the spill file");
  await Deno.remove(dir);
});

Deno.test("spill: a resume from an arena run's state and from a spilled run's equal the whole run", async () => {
  const { c, data } = await setup();
  const o = { ...base, steps: 6, optimizer: { name: "adamw" as const, lr: 1e-2 } };
  const full = await train(c.pack, data, [], o);
  for (const first of [undefined, memorySpill()]) {
    let saved: TrainState | undefined;
    await train(c.pack, data, [], {
      ...o,
      spill: first,
      saveEvery: 3,
      saveState: async (s) => {
        if (s.step === 3) saved = (await decodeTrainingState(await stateBytes(s))).state;
      },
    });
    const resumed = await train(c.pack, data, [], { ...o, resume: saved, spill: memorySpill() });
    assertEquals(
      resumed.losses,
      full.losses.slice(3),
      `resumed from ${first ? "a spilled" : "an arena"} run`,
    );
    assertEquals(whole(resumed.params), whole(full.params));
  }
});

Deno.test("spill: the arena holds one layer of adapter and moments and no saved input", async () => {
  const { c } = await setup();
  const o = { ...base, optimizer: { name: "adamw" as const, lr: 1e-3 } };
  const layout = loraLayout(c.pack.config, base.lora);
  const regions = (p: Awaited<ReturnType<typeof planTraining>>) =>
    new Map(p.regions.map((r) => [r.name, r.bytes]));
  const arena = regions(await planTraining(c.pack, o));
  const spilled = regions(await planTraining(c.pack, { ...o, spill: memorySpill() }));
  for (const name of ["lora.params", "opt.m", "opt.v"]) {
    assertEquals(arena.get(name), layout.totalElements * 4, name);
    assertEquals(spilled.get(name), layout.layerElements * 4, `${name}, spilled`);
  }
  assert(arena.has("saved") && !spilled.has("saved"), "spilled: no saved-input region");
});

Deno.test("spill: refused where a step needs more than one layer's adapter, naming why", async () => {
  const { c, data } = await setup();
  for (
    const [extra, why] of [
      [{ gradAccum: 2 }, "gradient accumulation"],
      [{ method: "mebp" }, "mebp"],
      [{ savedInputDtype: "bf16" }, "bf16 saved inputs"],
    ] as const
  ) {
    await assertRejects(() => train(c.pack, data, [], { ...base, ...extra, spill: memorySpill() }), why);
  }
  const mezo = { mode: "train", method: "mezo", seqLen: 8, format: "f32", gemmScratch: 0 } as const;
  await assertRejects(
    () =>
      Promise.resolve().then(() =>
        planRegions(c.pack.config, { ...mezo, lora: loraLayout(c.pack.config), spill: true })
      ),
    "mezo",
  );
});

Deno.test("spill: a file that reads back short or wrong is caught (the test can fail)", async () => {
  const { c, data } = await setup();
  const good = memorySpill();
  // drops the last byte of every read: the engine names the short read
  const short: SpillFile = { read: (p, into) => good.read(p, into) - 1, write: (p, d) => good.write(p, d) };
  await assertRejects(() => train(c.pack, data, [], { ...base, spill: short }), "spill: read");
  // a spill that forgets writes (reads zeros back) trains something else: the comparison above would fail
  const forgetful = memorySpill();
  let n = 0;
  const lossy: SpillFile = {
    read: (p, into) => forgetful.read(p, into),
    write: (p, d) => (++n % 7 === 0 ? d.length : forgetful.write(p, d)),
  };
  const arena = await train(c.pack, data, [], base);
  const broken = await train(c.pack, data, [], { ...base, spill: lossy }).catch(() => undefined);
  assert(
    !broken || JSON.stringify(broken.losses) !== JSON.stringify(arena.losses),
    "a spill that drops writes must not reproduce the run",
  );
});
