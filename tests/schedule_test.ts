// A budget buys a schedule (which layer inputs are saved, which forward tensors kept), never other numbers:
// the gradients and loss of every budget, from the smallest that fits to one that keeps everything, and of
// every saved-input order (every k-th input; n slots with the fewest recomputes) equal the default
// schedule's bit for bit; a fused SGD step gives the same parameters; a budget nothing fits is refused.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { loadCase } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { Engine, type EngineOptions } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { Optimizer } from "../src/engine/optimizer.ts";
import { keptFloats, type PlanOptions, planRegions } from "../src/engine/plan.ts";
import {
  chooseSchedule,
  DEFAULT_PEAK,
  scheduled,
  stepFlops,
  targetSchedule,
} from "../src/engine/schedule.ts";
import { defaultTarget } from "../src/cli/train_flags.ts";
import { runtimeBytes } from "../src/cli/common.ts";
import {
  everyKth,
  fewestRecomputes,
  recomputedLayers,
  type RecomputeOrder,
} from "../src/engine/recompute.ts";
import { planMemory } from "../src/runtime/arena.ts";
import { type ModelConfig, PRESETS } from "../src/model/config.ts";
import { makeModel, memoryModelSink } from "../src/model/make_model.ts";
import { bytesSource, memoryFiles } from "../src/io/source.ts";
import { openCheckpoint } from "../src/model/safetensors.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { openPack, type Pack } from "../src/model/pack.ts";

for (const name of ["gqa_tied_f32", "mlx_q4", "mha_untied_bf16"]) {
  Deno.test(`schedule ${name}: every budget gives the default schedule's gradients bit for bit`, async () => {
    const c = await loadCase(name, name === "mlx_q4" ? "q4" : "f32");
    const adapter = await openAdapter(dirFiles(`${c.dir}/adapter`));
    const lora = loraLayout(c.cfg, adapter.config);
    const base: EngineOptions = { mode: "train", seqLen: c.T, lora, gradBuffer: true };
    const run = async (budget?: number) => {
      const e = await Engine.create(c.pack, { ...base, budget });
      await readAdapterInto(adapter, lora, e.arena.f32("lora.params"));
      const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false });
      const { loss } = await forwardBackward(e, bw, c.ids, c.targets, c.T);
      return { loss, grads: e.arena.f32("lora.grad").slice(), e };
    };
    const want = await run();
    const L = c.cfg.numLayers, bytes = want.e.arena.plan.bytes, kept = keptFloats(want.e.D);
    // budgets: too small for every input (segments), the default, one layer's MLP, every MLP and one
    // layer's attention, everything
    const oneMlp = bytes + kept.mlp * 4 + 64,
      oneAttention = bytes + L * kept.mlp * 4 + kept.attention * 4 + 128;
    const schedules = new Set<string>();
    for (const budget of [bytes - 1, bytes, oneMlp, oneAttention, 1e12]) {
      let got;
      try {
        got = await run(budget);
      } catch (err) {
        // the smallest schedule may still be over the first budget
        if (budget === bytes - 1 && /budget/.test(String(err))) continue;
        throw err;
      }
      const o = got.e.options;
      assert(got.e.arena.plan.bytes <= budget, `${budget}: plan ${got.e.arena.plan.bytes}`);
      schedules.add(`${o.savedInputs ?? o.savedInputEvery}/${o.keep?.mlp ?? 0}/${o.keep?.attention ?? 0}`);
      assertEquals(got.loss, want.loss);
      for (let i = 0; i < want.grads.length; i++) {
        if (!Object.is(got.grads[i], want.grads[i])) {
          throw new Error(
            `budget ${budget} (${[...schedules].at(-1)}): grad[${i}] ${got.grads[i]} vs ${want.grads[i]}`,
          );
        }
      }
    }
    // one layer's MLP, every MLP and one attention block, and everything were kept
    for (const s of [`undefined/1/0`, `undefined/${L}/1`, `undefined/${L}/${L}`]) {
      assert(schedules.has(s), [...schedules].join(" "));
    }
  });
}

Deno.test("schedule: a fused SGD step under a budget keeping everything gives the default's parameters", async () => {
  const c = await loadCase("gqa_tied_f32");
  const adapter = await openAdapter(dirFiles(`${c.dir}/adapter`));
  const lora = loraLayout(c.cfg, adapter.config);
  const step = async (budget?: number) => {
    const e = await Engine.create(c.pack, { mode: "train", seqLen: c.T, lora, optimizer: "sgd", budget });
    await readAdapterInto(adapter, lora, e.arena.f32("lora.params"));
    const opt = new Optimizer(e.k, { name: "sgd", lr: 0.1, totalSteps: 1 }, e.p["lora.params"]);
    const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: true, accumulate: false });
    const n = lora.layerElements;
    await forwardBackward(e, bw, c.ids, c.targets, c.T, (l) => opt.update(l * n, n, e.p["lora.grad"], 0));
    return { params: e.arena.f32("lora.params").slice(), keep: e.options.keep };
  };
  const a = await step(), b = await step(1e12);
  assertEquals(b.keep, { mlp: c.cfg.numLayers, attention: c.cfg.numLayers });
  for (let i = 0; i < a.params.length; i++) {
    if (!Object.is(a.params[i], b.params[i])) {
      throw new Error(`param[${i}]: ${b.params[i]} vs ${a.params[i]}`);
    }
  }
});

Deno.test("schedule: a budget below the smallest schedule is refused before any work, showing the plan", async () => {
  const c = await loadCase("gqa_tied_f32");
  const lora = loraLayout(c.cfg, { rank: 4 });
  await assertRejects(
    () => Engine.create(c.pack, { mode: "train", seqLen: c.T, lora, budget: 1000 }),
    /memory plan needs .* but the budget is/,
  );
});

Deno.test("schedule: short of room, the most saved inputs that fit; with room, MLP first", () => {
  // Qwen2.5-0.5B, T = 256: 24 inputs by default, each fewer saves a [T, d] slot
  const cfg = PRESETS["qwen2.5-0.5b"], lora = loraLayout(cfg, { rank: 8 });
  const o = { mode: "train", seqLen: 256, format: "q4", lora, gemmScratch: 0 } as const;
  const none = { mlp: 0, attention: 0 };
  const bytes = (savedInputs?: number, keep?: { mlp: number; attention: number }) =>
    planMemory(planRegions(cfg, { ...o, savedInputs, keep })).bytes;
  const pick = (budget: number) => {
    const s = chooseSchedule(cfg, o, budget);
    return s && [s.savedInputs ?? s.savedInputEvery ?? 1, s.keep.mlp, s.keep.attention];
  };
  assertEquals(pick(bytes()), [1, 0, 0]);
  assertEquals(pick(bytes() - 1), [23, 0, 0]);
  assertEquals(pick(bytes(9)), [9, 0, 0]);
  assertEquals(pick(bytes(9) - 1), [8, 0, 0]);
  assertEquals(pick(bytes(2)), [2, 0, 0]);
  assertEquals(pick(bytes(2) - 1), undefined);
  assertEquals(bytes(8) - bytes(7), 256 * cfg.hiddenSize * 4);
  assertEquals(pick(bytes(undefined, { mlp: 5, attention: 0 })), [1, 5, 0]);
  assertEquals(pick(bytes(undefined, { mlp: 24, attention: 3 }) + 10), [1, 24, 3]);
  // an interval given is kept: it fits or nothing does
  const every4 = planMemory(planRegions(cfg, { ...o, savedInputEvery: 4 })).bytes;
  assertEquals(chooseSchedule(cfg, { ...o, savedInputEvery: 4 }, every4)?.savedInputEvery, 4);
  assertEquals(chooseSchedule(cfg, { ...o, savedInputEvery: 4 }, every4 - 1), undefined);
  // the gate/up products of one layer are 2·T·I floats
  assertEquals(bytes(undefined, { mlp: 1, attention: 0 }) - bytes(), 2 * 256 * cfg.intermediateSize * 4);
  // fewer FLOPs for more kept, more for fewer inputs saved; 9 slots recompute less than every 4th's 9
  const flops = (savedInputs: number | undefined, mlp: number) =>
    stepFlops(cfg, o, { savedInputs, keep: { mlp, attention: 0 } });
  assert(flops(undefined, 24) < flops(undefined, 1) && flops(undefined, 1) < flops(undefined, 0));
  assert(flops(undefined, 0) < flops(23, 0) && flops(9, 0) < flops(8, 0) && flops(3, 0) < flops(2, 0));
  assert(flops(9, 0) < stepFlops(cfg, o, { savedInputEvery: 4, keep: none }));
  // the default target: what fits, else the fewest inputs recomputing at most one forward pass
  assertEquals(targetSchedule(cfg, o, 1e12).keep, { mlp: 24, attention: 24 });
  assertEquals(targetSchedule(cfg, o, bytes(12)).savedInputs, 12);
  const knee = targetSchedule(cfg, o, 0);
  assertEquals([knee.savedInputs, knee.recomputed], [6, 21]);
  assertEquals(targetSchedule(cfg, { ...o, savedInputEvery: 2 }, 0).savedInputEvery, 2);
  // spilled, saved inputs cost the arena nothing: out of reach, the default still saves every input
  const spilled = targetSchedule(cfg, { ...o, spill: true }, 0);
  assertEquals([spilled.slots, spilled.recomputed], [24, 0]);
  // the CLI: without --max-memory a target of 100 MB less the runtime (never refused), with it a budget
  assertEquals(defaultTarget(undefined, 2), DEFAULT_PEAK - runtimeBytes(2));
  assertEquals(defaultTarget(150e6, 2), undefined);
  const po: PlanOptions = o;
  assertEquals(scheduled(cfg, po, undefined, 0).savedInputs, 6);
  assertEquals(scheduled(cfg, po, bytes(2) - 1).savedInputs, 2); // the smallest, for the refusal to show
  assertEquals(scheduled(cfg, po, undefined, undefined), po);
});

/**
 * Plays an order against its model: every restore reads the slot its layer's input was saved in, every
 * forward continues from the input `act.x` holds, each layer's backward runs once, from L−1 down to 0, from
 * the slot holding its input; the slots stay within the order's count. Returns the forwards run.
 */
function play(L: number, o: RecomputeOrder): number {
  const slot = new Array<number>(o.slots).fill(-1);
  for (let l = 0; l < L; l++) if (o.saveAt[l] >= 0) slot[o.saveAt[l]] = l;
  let x = -1, forwards = 0, next = L - 1;
  for (const s of o.backward) {
    if (s.kind !== "forward") assert(s.slot >= 0 && s.slot < o.slots, `slot ${s.slot} of ${o.slots}`);
    if (s.kind === "restore") {
      assertEquals(slot[s.slot], s.layer, `restore ${s.layer}`);
      x = s.layer;
    } else if (s.kind === "forward") {
      assertEquals(x, s.layer, `forward ${s.layer}`);
      (x++, forwards++);
    } else if (s.kind === "save") {
      assertEquals(x, s.layer, `save ${s.layer}`);
      slot[s.slot] = s.layer;
    } else {
      assertEquals([s.layer, slot[s.slot]], [next, next], `backward ${s.layer}`);
      (next--, x = -1);
    }
  }
  assertEquals(next, -1);
  return forwards;
}

Deno.test("recompute: every order saves and recomputes each layer's input before its backward needs it", () => {
  for (const L of [1, 2, 3, 5, 7, 24, 28]) {
    for (let k = 1; k <= L; k++) {
      const o = everyKth(L, k);
      assertEquals([play(L, o), o.recomputed, o.slots], [
        o.recomputed,
        L - Math.ceil(L / k),
        Math.ceil(L / k) + k - 1,
      ]);
    }
    // an interval past the layers is one segment of them all: no slots past the last layer (`--ckpt-every 99`
    // once reserved 99 inputs for 24 layers)
    const past = everyKth(L, L + 75);
    assertEquals([play(L, past), past.slots], [past.recomputed, L]);
    for (let n = Math.min(2, L); n <= L; n++) {
      const o = fewestRecomputes(L, n);
      assertEquals([play(L, o), o.slots], [recomputedLayers(L, n), n]);
    }
  }
  // binomial checkpointing for 24 layers (the values of the recurrence, checked by hand for small n): 2 slots
  // 253 forwards, 6 slots 21, 9 slots 15 (every 4th input: 9 slots, 18), 12 or more 24 − n
  const cost = (n: number) => recomputedLayers(24, n);
  assertEquals([cost(2), cost(3), cost(6), cost(9), cost(12), cost(20), cost(24)], [
    253,
    65,
    21,
    15,
    12,
    4,
    0,
  ]);
  // 3 layers, 2 slots: the forward saves layer 0's and layer 2's inputs, layer 1's is recomputed (1 forward);
  // 4 layers, 2 slots: layer 0 and 2 saved, 1 from 0, then 3 from 2 … = 3 (c = 2: 0 + F(2, 0)… by hand)
  assertEquals([recomputedLayers(3, 2), recomputedLayers(4, 2), recomputedLayers(4, 3)], [1, 3, 1]);
});

/** A random Qwen2-shaped model of `layers` layers (64 wide, 256 tokens), packed in memory. */
async function deepModel(layers: number): Promise<{ cfg: ModelConfig; pack: Pack }> {
  const cfg: ModelConfig = { ...PRESETS.tiny, numLayers: layers, vocabSize: 256 };
  const sink = memoryModelSink();
  await makeModel(cfg, sink, { seed: 3 });
  const ckpt = await openCheckpoint(memoryFiles(sink.files));
  const chunks: Uint8Array[] = [];
  await writePack(ckpt, cfg, { write: (c) => (chunks.push(c.slice()), Promise.resolve()) }, {
    format: "f32",
    fingerprint: `deep${layers}`,
  });
  ckpt.close();
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) (bytes.set(c, at), at += c.length);
  return { cfg, pack: await openPack(bytesSource(bytes, `deep${layers}.pack`)) };
}

for (const threads of [1, 2]) {
  Deno.test(`schedule: every saved-input order of a 7-layer model gives the same gradients and SGD step (${threads} thread${threads > 1 ? "s" : ""})`, async () => {
    const { cfg, pack } = await deepModel(7);
    const lora = loraLayout(cfg, { rank: 4 });
    const T = 24, ids = Int32Array.from({ length: T }, (_, i) => (i * 37 + 11) % cfg.vocabSize);
    // parameters with B ≠ 0, so every gradient is non-zero
    const init = Float32Array.from({ length: lora.totalElements }, (_, i) => Math.sin(i * 12.9898) * 0.05);
    const run = async (o: Partial<EngineOptions>) => {
      const e = await Engine.create(pack, {
        mode: "train",
        seqLen: T,
        lora,
        gradBuffer: true,
        threads,
        ...o,
      });
      try {
        e.arena.f32("lora.params").set(init);
        const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false });
        const { loss } = await forwardBackward(e, bw, ids, undefined, T);
        const grads = e.arena.f32("lora.grad").slice();
        // and a fused SGD step from the same parameters
        e.arena.f32("lora.params").set(init);
        const opt = new Optimizer(e.k, { name: "sgd", lr: 0.1, totalSteps: 1 }, e.p["lora.params"]);
        const fused = new Backward(e, { ptr: e.p["lora.grad"], perLayer: true, accumulate: false });
        const n = lora.layerElements;
        await forwardBackward(e, fused, ids, undefined, T, (l) => opt.update(l * n, n, e.p["lora.grad"], 0));
        return { loss, grads, params: e.arena.f32("lora.params").slice(), slots: e.recompute.slots };
      } finally {
        e.close();
      }
    };
    const want = await run({});
    assert(
      want.grads.every((g) => g !== 0) || want.grads.filter((g) => g !== 0).length > want.grads.length / 2,
    );
    const orders: Partial<EngineOptions>[] = [
      ...[2, 3, 4, 5, 6].map((savedInputs) => ({ savedInputs })),
      ...[2, 3, 7].map((savedInputEvery) => ({ savedInputEvery })),
      { keep: { mlp: 7, attention: 3 } },
    ];
    for (const o of orders) {
      const got = await run(o);
      const what = JSON.stringify(o);
      assertEquals(got.loss, want.loss, what);
      for (
        const [name, a, b] of [["grad", got.grads, want.grads], ["param", got.params, want.params]] as const
      ) {
        for (let i = 0; i < b.length; i++) {
          if (!Object.is(a[i], b[i])) throw new Error(`${what}: ${name}[${i}] ${a[i]} vs ${b[i]}`);
        }
      }
      if (o.savedInputs) assertEquals(got.slots, o.savedInputs);
    }
  });
}
