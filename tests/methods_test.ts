// The paper's baselines in the same engine: MeBP gives MeSP's gradients and loss curve (bit for bit: same
// arithmetic, different memory), and MeZO's two-point estimate is the directional derivative along z.
import { assert, assertEquals } from "./_assert.ts";
import { GOLDEN_CASES, loadCase } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { openAdapter } from "../src/engine/adapter.ts";
import { computeGradients } from "../src/run/grad.ts";
import { train } from "../src/run/train.ts";
import type { Sequence } from "../src/data/sequence.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { planMemory } from "../src/runtime/arena.ts";
import { planRegions } from "../src/engine/plan.ts";
import { PRESETS } from "../src/model/config.ts";

for (const name of GOLDEN_CASES) {
  Deno.test(`MeBP ${name}: gradients and loss equal MeSP's bit for bit`, async () => {
    const c = await loadCase(name, name === "mlx_q4" ? "q4" : "f32");
    const adapter = await openAdapter(dirFiles(`${c.dir}/adapter`));
    const seq = { ids: c.ids, targets: c.targets };
    const mesp = await computeGradients(c.pack, seq, { adapter, method: "mesp" });
    const mebp = await computeGradients(c.pack, seq, { adapter, method: "mebp" });
    assertEquals(mebp.loss, mesp.loss);
    for (let i = 0; i < mesp.grads.length; i++) {
      if (!Object.is(mebp.grads[i], mesp.grads[i])) {
        throw new Error(`grad[${i}]: MeBP ${mebp.grads[i]} vs MeSP ${mesp.grads[i]}`);
      }
    }
  });
}

Deno.test("MeBP keeps what autograd keeps: its plan is larger than MeSP's by the kept tensors", async () => {
  const c = await loadCase("gqa_tied_f32");
  const lora = loraLayout(c.cfg, { rank: 8 });
  const plan = (method: "mesp" | "mebp") =>
    planMemory(
      planRegions(c.cfg, { mode: "train", method, seqLen: 64, format: "f32", lora, gemmScratch: 0 }),
    );
  const mesp = plan("mesp"), mebp = plan("mebp");
  const names = new Set(mebp.regions.map((r) => r.name));
  for (const r of ["mebp.P", "mebp.g", "mebp.u", "mebp.m", "mebp.h", "mebp.x2"]) assert(names.has(r), r);
  const { numHeads: H, intermediateSize: I } = c.cfg;
  const kept = (H * 64 * 64 + 3 * 64 * I) * 4;
  assert(mebp.bytes - mesp.bytes >= kept, `MeBP ${mebp.bytes} vs MeSP ${mesp.bytes}`);
  // and all gradients until the step
  assertEquals(mebp.regions.find((r) => r.name === "lora.grad")!.bytes, lora.totalElements * 4);
});

Deno.test("MeSP and MeBP loss curves over 100 SGD steps on a tiny model are equal (< 1e-6 at every step)", async () => {
  const c = await loadCase("gqa_tied_f32");
  const data: Sequence[] = [];
  for (let i = 0; i < 5; i++) {
    data.push({
      ids: Int32Array.from({ length: 12 }, (_, t) => c.ids[(t + i) % c.T]),
      targets: new Uint8Array(12).fill(1),
    });
  }
  const opts = {
    seqLen: 12,
    steps: 100,
    seed: 3,
    lora: { rank: 4 },
    optimizer: { name: "sgd" as const, lr: 0.1 },
  };
  const a = await train(c.pack, data, [], { ...opts, method: "mesp" });
  const b = await train(c.pack, data, [], { ...opts, method: "mebp" });
  for (let i = 0; i < 100; i++) {
    assert(Math.abs(a.losses[i] - b.losses[i]) < 1e-6, `step ${i + 1}: ${a.losses[i]} vs ${b.losses[i]}`);
  }
  assert(a.losses[99] < a.losses[0], "loss should fall");
});

Deno.test("MeZO: the projected gradient is the directional derivative zᵀ∇L; the update moves θ by −lr·g·z", async () => {
  const c = await loadCase("gqa_tied_f32");
  const adapter = await openAdapter(dirFiles(`${c.dir}/adapter`));
  const seq = { ids: c.ids, targets: c.targets };
  const exact = await computeGradients(c.pack, seq, { adapter, method: "mesp" });
  for (const seed of [1, 2, 3]) {
    const zo = await computeGradients(c.pack, seq, { adapter, method: "mezo", seed, zoEps: 1e-3 });
    // zo.grads = coeff · z, so z = zo.grads / coeff and zᵀ∇L = Σ zo.grads·∇L / coeff
    let dir = 0, zz = 0;
    for (let i = 0; i < exact.grads.length; i++) {
      dir += (zo.grads[i] / zo.coeff!) * exact.grads[i];
      zz += (zo.grads[i] / zo.coeff!) ** 2;
    }
    assert(
      Math.abs(zz / exact.grads.length - 1) < 0.05,
      `z is N(0,1): mean square ${zz / exact.grads.length}`,
    );
    assert(
      Math.abs(zo.coeff! - dir) <= 0.02 * Math.abs(dir) + 1e-4,
      `seed ${seed}: coeff ${zo.coeff} vs zᵀ∇L ${dir}`,
    );
  }
});

Deno.test("MeZO training: forward-only plan (no checkpoints, no gradients) and a step that follows −lr·g·z", async () => {
  const c = await loadCase("gqa_tied_f32");
  const lora = loraLayout(c.cfg, { rank: 4 });
  const names = planRegions(c.cfg, {
    mode: "train",
    method: "mezo",
    seqLen: 12,
    format: "f32",
    lora,
    gemmScratch: 0,
  })
    .map((r) => r.name);
  assert(!names.includes("saved") && !names.includes("lora.grad") && !names.includes("grad.x"), names.join());
  const data: Sequence[] = [{ ids: c.ids, targets: c.targets }];
  const opts = { seqLen: c.T, seed: 9, lora: { rank: 4 }, method: "mezo" as const };
  const before = (await train(c.pack, data, [], { ...opts, steps: 1, optimizer: { name: "sgd", lr: 0 } }))
    .params.slice();
  const after = (await train(c.pack, data, [], { ...opts, steps: 1, optimizer: { name: "sgd", lr: 1 } }))
    .params.slice();
  const zo = await computeGradients(c.pack, data[0], { lora: { rank: 4 }, seed: 9, method: "mezo" });
  let maxErr = 0, maxStep = 0;
  for (let i = 0; i < before.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(after[i] - (before[i] - zo.grads[i])));
    maxStep = Math.max(maxStep, Math.abs(zo.grads[i]));
  }
  assert(maxStep > 0 && maxErr <= 1e-5 * maxStep + 1e-6, `update off by ${maxErr} (step size ${maxStep})`);
});

Deno.test("--ckpt-every k: keeping every k-th layer's input gives the same gradients bit for bit (f32)", async () => {
  for (const name of ["gqa_tied_f32", "odd_sizes"]) {
    const c = await loadCase(name);
    const adapter = await openAdapter(dirFiles(`${c.dir}/adapter`));
    const seq = { ids: c.ids, targets: c.targets };
    const all = await computeGradients(c.pack, seq, { adapter });
    for (const savedInputEvery of [2, 3]) {
      for (const method of ["mesp", "mebp"] as const) {
        const r = await computeGradients(c.pack, seq, { adapter, savedInputEvery, method });
        assertEquals(r.loss, all.loss);
        assert(
          r.grads.every((g, i) => Object.is(g, all.grads[i])),
          `${name} every ${savedInputEvery} ${method}: gradients differ`,
        );
      }
    }
  }
  // 24 layers (Qwen2.5-0.5B): every 2nd saved → 12 + 1 spare slots; every 3rd → 8 + 2
  const cfg = PRESETS["qwen2.5-0.5b"], lora = loraLayout(cfg, { rank: 8 });
  const slots = (savedInputEvery: number) =>
    planRegions(cfg, { mode: "train", seqLen: 256, format: "q4", lora, gemmScratch: 0, savedInputEvery })
      .find((r) => r.name === "saved")!.bytes / (256 * 896 * 4);
  assertEquals([slots(1), slots(2), slots(3)], [24, 13, 10]);
});
