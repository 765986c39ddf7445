// A budget buys a schedule (which layers keep inputs, which keep forward tensors), never other numbers: the
// gradients and loss of every budget, from the smallest that fits to one that keeps everything, equal the
// default schedule's bit for bit; a fused SGD step gives the same parameters; a budget nothing fits is refused.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { loadCase } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { Engine, type EngineOptions } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { Optimizer } from "../src/engine/optimizer.ts";
import { keptFloats, planRegions } from "../src/engine/plan.ts";
import { chooseSchedule, stepFlops } from "../src/engine/schedule.ts";
import { planMemory } from "../src/runtime/arena.ts";
import { PRESETS } from "../src/model/config.ts";

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
      schedules.add(`${o.ckptEvery}/${o.keep?.mlp ?? 0}/${o.keep?.attention ?? 0}`);
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
    for (const s of [`1/1/0`, `1/${L}/1`, `1/${L}/${L}`]) assert(schedules.has(s), [...schedules].join(" "));
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

Deno.test("schedule: short of room, every k-th input with the least recompute that fits; with room, MLP first", () => {
  // Qwen2.5-0.5B, T = 256: 24 inputs by default; every 2nd keeps 13 slots, every 4th 9 (5th, 6th too)
  const cfg = PRESETS["qwen2.5-0.5b"], lora = loraLayout(cfg, { rank: 8 });
  const o = { mode: "train", seqLen: 256, format: "q4", lora, gemmScratch: 0 } as const;
  const bytes = (ckptEvery: number, keep?: { mlp: number; attention: number }) =>
    planMemory(planRegions(cfg, { ...o, ckptEvery, keep })).bytes;
  const pick = (budget: number) => {
    const s = chooseSchedule(cfg, o, budget);
    return s && [s.ckptEvery, s.keep.mlp, s.keep.attention];
  };
  assertEquals(pick(bytes(1)), [1, 0, 0]);
  assertEquals(pick(bytes(1) - 1), [2, 0, 0]);
  assertEquals(pick(bytes(2) - 1), [3, 0, 0]);
  assertEquals(pick(bytes(4)), [4, 0, 0]);
  assertEquals(pick(bytes(4) - 1), undefined);
  assertEquals(pick(bytes(1, { mlp: 5, attention: 0 })), [1, 5, 0]);
  assertEquals(pick(bytes(1, { mlp: 24, attention: 3 }) + 10), [1, 24, 3]);
  // the gate/up products of one layer are 2·T·I floats
  assertEquals(bytes(1, { mlp: 1, attention: 0 }) - bytes(1), 2 * 256 * cfg.intermediateSize * 4);
  // fewer FLOPs for more kept, more for fewer inputs kept
  const flops = (k: number, mlp: number) => stepFlops(cfg, o, k, { mlp, attention: 0 });
  assert(flops(1, 24) < flops(1, 1) && flops(1, 1) < flops(1, 0) && flops(1, 0) < flops(2, 0));
});
