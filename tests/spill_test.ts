// Spill (src/engine/spill.ts): a run whose saved inputs, adapter and optimizer moments live in a file gives
// the losses, parameters, moments and saved training state of the same run in the arena, bit for bit — for
// SGD and AdamW, every saved-input order, validation, an adapter to start from, a resume from either kind
// of state, decoded or read from its file a layer at a time, one and two threads — and its arena holds one
// layer of adapter and no saved input. Also trainingStateStream (the state as a stream for uploads), whose
// pieces come from the arena or the spill.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { caseSequences, loadCase } from "./_golden.ts";
import type { Sequence } from "../src/data/sequence.ts";
import { planTraining, train, type TrainOptions, type TrainState } from "../src/run/train.ts";
import { memorySpill, type SpillFile } from "../src/io/spill_file.ts";
import { type AdapterValues, piecesOf } from "../src/engine/adapter_values.ts";
import {
  decodeTrainingState,
  openTrainingState,
  trainingStateStream,
  writeTrainingState,
} from "../src/run/training_state.ts";
import { encodeLoraTensors, writeLoraTensors } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { planRegions } from "../src/engine/plan.ts";
import { createSpillFile, fileSource } from "../src/io/deno_files.ts";
import { bytesSource } from "../src/io/source.ts";
import { readSafetensorsHeader } from "../src/model/safetensors.ts";

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
  return joined(chunks);
}

/** `chunks` joined into one array. */
function joined(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, x) => n + x.length, 0));
  chunks.reduce((at, x) => (out.set(x, at), at + x.length), 0);
  return out;
}

/** A hand-made training state of one rank-1 q_proj adapter. */
function handState(params: Float32Array, moments?: Pick<TrainState, "m" | "v">): TrainState {
  const lora = { rank: 1, alpha: 2, rslora: false, targets: ["q_proj"] };
  return {
    step: 1,
    epoch: 0,
    cursor: 1,
    seed: 0,
    params,
    ...moments,
    lora,
    optimizer: moments ? "adamw" : "sgd",
  };
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

/** An AdamW run's state after 3 of 6 steps (spilled), its bytes, and the options of the whole run. */
async function halfway() {
  const { c, data } = await setup();
  // the state records how often its run saves: the runs compared with it save as often
  const o = { ...base, steps: 6, optimizer: { name: "adamw" as const, lr: 1e-2 }, saveEvery: 3 };
  let bytes: Uint8Array | undefined;
  await train(c.pack, data, [], {
    ...o,
    spill: memorySpill(),
    saveState: async (s) => {
      if (s.step === 3) bytes = await stateBytes(s);
    },
  });
  return { c, data, o, bytes: bytes! };
}

Deno.test("spill: a resume read from the state's file a layer at a time equals the whole run, in the arena or spilled", async () => {
  const { c, data, o, bytes } = await halfway();
  const full = await run(c, data, o);
  const dir = await Deno.makeTempDir();
  const path = `${dir}/checkpoint.safetensors`;
  await Deno.writeFile(path, bytes);
  try {
    for (
      const [spill, source] of [[undefined, fileSource(path)], [
        memorySpill(),
        bytesSource(bytes, "ck"),
      ]] as const
    ) {
      const { state } = await openTrainingState(source);
      assertEquals([state.step, state.length > 0, state.tensors], [3, true, ["params", "adam_m", "adam_v"]]);
      const resumed = await run(c, data, { ...o, resume: state, spill });
      const what = `${spill ? "spilled" : "in the arena"}, from ${source.name}`;
      assertEquals(resumed.losses, full.losses.slice(3), `${what}: losses`);
      for (const k of ["params", "moments", "state", "adapter"] as const) {
        assertEquals(resumed[k], full[k], `${what}: ${k}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spill: a state file is checked when opened and again as a resume reads it, naming the file and tensor", async () => {
  const { c, data, o, bytes } = await halfway();
  const header = await readSafetensorsHeader(bytesSource(bytes));
  const at = (t: string, element: number) => header.tensors.get(t)!.offset + 4 * element;
  const damaged = (change: (b: Uint8Array) => void) => {
    const b = bytes.slice();
    change(b);
    return openTrainingState(bytesSource(b, "ck.safetensors"));
  };
  const nan = (t: string, element: number) => (b: Uint8Array) =>
    new DataView(b.buffer).setFloat32(at(t, element), NaN, true);
  await assertRejects(
    () => damaged(nan("params", 5)),
    'ck.safetensors: tensor "params": non-finite value NaN at element 5',
  );
  await assertRejects(
    () => damaged(nan("adam_v", 70)),
    'ck.safetensors: tensor "adam_v": non-finite value NaN at element 70',
  );
  await assertRejects(
    () => damaged((b) => new DataView(b.buffer).setFloat32(at("adam_v", 3), -1, true)),
    "ck.safetensors: adam_v holds a negative second moment",
  );
  await assertRejects(() => damaged((b) => (b[at("adam_m", 9)] ^= 1)), "ck.safetensors: checksum mismatch");
  await assertRejects(
    () => openTrainingState(bytesSource(bytes.slice(0, bytes.length - 8), "ck.safetensors")),
    "ck.safetensors: file truncated",
  );
  // a file that changes after it was opened is caught by the resume's own reading, before a step
  for (const spill of [undefined, memorySpill()]) {
    const b = bytes.slice();
    const { state } = await openTrainingState(bytesSource(b, "ck.safetensors"));
    b[at("adam_v", 11)] ^= 1;
    let steps = 0;
    await assertRejects(
      () =>
        train(c.pack, data, [], {
          ...o,
          resume: state,
          spill,
          onEvent: (e) => void (e.type === "step" && steps++),
        }),
      "ck.safetensors: checksum mismatch",
    );
    assertEquals(steps, 0, "no step ran");
  }
});

Deno.test("spill: saving reads each moment of the spill once per pass over it (not m and v for each)", async () => {
  const { c, data } = await setup();
  const layout = loraLayout(c.pack.config, base.lora);
  const all = layout.totalElements * 4;
  const inner = memorySpill();
  let end = 0, momentBytes = 0, saving = false;
  const counting: SpillFile = {
    read: (p, into) => {
      // the moments are the file's last 2 × all bytes (spill.ts, spillLayout)
      if (saving && p >= end - 2 * all) momentBytes += into.length;
      return inner.read(p, into);
    },
    write: (p, d) => (end = Math.max(end, p + d.length), inner.write(p, d)),
  };
  await train(c.pack, data, [], {
    ...base,
    steps: 2,
    optimizer: { name: "adamw", lr: 1e-2 },
    spill: counting,
    saveState: async (s) => {
      saving = true;
      await stateBytes(s);
      saving = false;
    },
  });
  // writeTrainingState walks each moment twice: its checksum and finiteness (needed before the header is
  // written), then its bytes
  assertEquals(momentBytes, 2 * 2 * all);
});

Deno.test("spill: trainingStateStream gives writeTrainingState's bytes, its size first, made as it is read", async () => {
  const { c, data } = await setup();
  const layerBytes = loraLayout(c.pack.config, base.lora).layerElements * 4;
  const inner = memorySpill();
  let spillReads = 0;
  const counting: SpillFile = {
    read: (p, into) => (spillReads += into.length, inner.read(p, into)),
    write: (p, d) => inner.write(p, d),
  };
  const cases = [
    { spill: undefined, threads: 1, views: false, aliased: 0 },
    { spill: undefined, threads: 1, views: true, aliased: 3 }, // unshared memory: params, m, v as views
    { spill: undefined, threads: 2, views: true, aliased: 0 }, // shared memory: copied
    { spill: counting, threads: 1, views: true, aliased: 0 }, // a spill's reused buffer: copied
  ];
  for (const { spill, threads, views, aliased } of cases) {
    const what = `${spill ? "spilled" : "in the arena"}, ${threads} thread(s)${views ? ", views" : ""}`;
    let saves = 0;
    await train(c.pack, data, [], {
      ...base,
      steps: 2,
      threads,
      optimizer: { name: "adamw", lr: 1e-2 },
      spill,
      saveState: async (s) => {
        saves++;
        const want = await stateBytes(s);
        // the memory the parameters are read from: the engine's, or the buffer a spill's layers are read into
        const memory = (s.params instanceof Float32Array ? s.params : s.params.layer(0)).buffer;
        assertEquals(memory instanceof SharedArrayBuffer, threads > 1 && !spill, `${what}: shared memory`);
        spillReads = 0;
        const { byteLength, stream } = trainingStateStream(s, {}, { views });
        const checked = spillReads; // the checksum's walk over the whole state, before any byte
        assertEquals(byteLength, want.length, `${what}: the size announced`);
        const reader = stream.getReader();
        const chunks = [(await reader.read()).value!];
        for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0));
        if (spill) {
          // with the reader holding the header, at most the next layer is read out of the spill
          assert(checked > 0, "the checksum pass read nothing");
          assert(
            spillReads - checked <= layerBytes,
            `${spillReads - checked} bytes read ahead (a layer: ${layerBytes})`,
          );
        }
        for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
        assertEquals(joined(chunks), want, `${what}: the bytes writeTrainingState writes`);
        const asViews = chunks.filter((x) => x.buffer === memory).length;
        assertEquals(asViews, aliased, `${what}: chunks that are views of the parameters' memory`);
      },
    });
    assertEquals(saves, 1, `${what}: saved once, at the end`);
  }
});

Deno.test("trainingStateStream views: only whole tensors, never a reused buffer in the same memory", async () => {
  // a hand-made state: params whole, m layered over a buffer inside the same ArrayBuffer (refilled per layer)
  const memory = new ArrayBuffer(4 * 12);
  const params = new Float32Array(memory, 0, 8);
  params.forEach((_, i) => params[i] = i + 1);
  const scratch = new Float32Array(memory, 32, 4);
  const m = { length: 8, layers: 2, layer: (l: number) => scratch.fill(l + 10) };
  const state = handState(params, { m, v: new Float32Array(8).fill(0.5) });
  const chunks = await Array.fromAsync(trainingStateStream(state, {}, { views: true }).stream);
  assertEquals(joined(chunks), await stateBytes(state), "bytes (m's layers kept apart)");
  assertEquals(chunks.filter((x) => x.buffer === memory).length, 1, "params only, as a view");
});

Deno.test("trainingStateStream: a large tensor in chunks of at most 1 MiB, copied or viewed", async () => {
  const params = new Float32Array(700_000).map((_, i) => Math.sin(i)); // 2.8 MB
  const state = handState(params);
  const want = await stateBytes(state);
  for (const views of [false, true]) {
    const chunks = await Array.fromAsync(trainingStateStream(state, {}, { views }).stream);
    assertEquals(joined(chunks), want, `views ${views}: bytes`);
    const largest = Math.max(...chunks.map((x) => x.length));
    assert(largest <= 1 << 20, `views ${views}: a chunk of ${largest} bytes`);
    assertEquals(chunks.filter((x) => x.buffer === params.buffer).length, views ? 3 : 0, `views ${views}`);
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
