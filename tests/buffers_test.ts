// The plan's buffers: names are a closed type (a misspelt one does not compile), a buffer the plan lacks
// throws when read instead of pointing at address 0, and the declared views lie where the plan says, sized
// from the model's shapes as the comments state them.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { loadCase } from "./_golden.ts";
import { Engine } from "../src/engine/engine.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { planMemory } from "../src/runtime/arena.ts";
import { bufferPointers, planBuffers } from "../src/engine/plan.ts";

Deno.test("buffers: an eval engine has no gradient buffers, and reading one throws, naming it", async () => {
  const c = await loadCase("gqa_tied_f32");
  const e = await Engine.create(c.pack, { mode: "eval", seqLen: 16 });
  await assertRejects(() => e.p["lora.grad"], 'no buffer "lora.grad"');
  await assertRejects(() => e.p["grad.q"], 'no buffer "grad.q"');
  assert(e.p["act.x"] > 0);
  // @ts-expect-error: not a buffer name (the type check of this file fails if it compiles)
  assertEquals(e.p["act.xx"], undefined);
});

Deno.test("buffers: the training views sit where they are declared, sized from the shapes", async () => {
  const c = await loadCase("gqa_tied_f32");
  const cfg = c.cfg, T = 32, lora = loraLayout(cfg, { rank: 4 });
  for (const savedInputDtype of ["f32", "bf16"] as const) {
    const b = planBuffers(cfg, {
      mode: "train",
      seqLen: T,
      format: "f32",
      lora,
      gemmScratch: 0,
      savedInputDtype,
    });
    const plan = planMemory(b.regions, { base: 1024 });
    const p = bufferPointers(plan, b.views);
    const at = (n: string) => plan.regions.find((r) => r.name === n)!;
    const qd = cfg.numHeads * cfg.headDim, C = Math.min(256, cfg.intermediateSize);
    // d(queries) over the attention output, d(attention output) over the residual stream, mlp.gu only the
    // chunks; the MLP's normed input has no buffer of its own (it is act.xn)
    assertEquals(p["grad.q"], at("act.att").offset);
    assertEquals(p["mlp.u"], at("mlp.gu").offset + T * C * 4);
    assertEquals(p["grad.att"], at("act.x").offset);
    assertEquals(at("mlp.gu").bytes, 2 * T * C * 4);
    assert(at("act.x").bytes >= T * Math.max(qd, cfg.hiddenSize) * 4);
    assert(!plan.regions.some((r) => r.name === ("act.xn2" as string)));
    // the loss's logits over the attention output, d(scores) over the SwiGLU output chunk
    assertEquals(p["loss.logits"], at("act.att").offset);
    assert(at("act.att").bytes >= T * Math.max(qd, Math.min(512, cfg.vocabSize)) * 4);
    assertEquals(p["grad.scores"], at("mlp.m").offset);
    assert(at("mlp.m").bytes >= T * Math.max(T, C) * 4);
    // the eight [T, r] parts of lora.h, back to back
    const slots = ["lora.h.attn", "lora.h.gate", "lora.h.up", "lora.h.down"] as const;
    slots.forEach((n, i) => assertEquals(p[n], at("lora.h").offset + i * T * 4 * 4));
    assertEquals(p["lora.gh.down"], at("lora.h").offset + 7 * T * 4 * 4);
    if (savedInputDtype === "bf16") {
      assertEquals(p["saved.decoded"], at("act.x").offset);
    } else await assertRejects(() => p["saved.decoded"], 'no buffer "saved.decoded"');
  }
});
