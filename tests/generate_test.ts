// Generation with the KV cache must produce what full recomputation produces: greedy tokens equal the
// argmax of a fresh full forward over each prefix, and the sampler obeys temperature / top-p / seed.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { loadCase } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { Engine } from "../src/engine/engine.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { forward } from "../src/engine/forward.ts";
import { chunkLogits } from "../src/engine/loss.ts";
import { generate, sampler } from "../src/run/generate.ts";

async function fullForwardLastLogits(
  name: string,
  ids: number[],
  withAdapter: boolean,
): Promise<Float64Array> {
  const c = await loadCase(name, name === "mlx_q4" ? "q4" : "f32");
  const adapter = withAdapter ? await openAdapter(dirFiles(`${c.dir}/adapter`)) : undefined;
  const lora = adapter ? loraLayout(c.cfg, adapter.config) : undefined;
  const e = await Engine.create(c.pack, { mode: "eval", seqLen: Math.max(2, ids.length), lora });
  if (adapter) await readAdapterInto(adapter, lora!, e.arena.f32("lora.params"));
  await forward(e, ids, ids.length);
  const out = new Float64Array(c.cfg.vocabSize);
  for (let ch = 0; ch < e.weights.vocabChunks; ch++) {
    const vc = await e.weights.loadVocabChunk(ch);
    const p = chunkLogits(e, 0, ids.length, vc) >> 2;
    for (let j = 0; j < vc; j++) out[ch * e.D.Vc + j] = e.F[p + (ids.length - 1) * e.D.Vc + j];
  }
  return out;
}

for (
  const [name, withAdapter] of [["gqa_tied_f32", true], ["mha_untied_bf16", false], ["mlx_q4", true]] as const
) {
  Deno.test(`generate ${name}: KV-cached greedy decoding equals full recomputation`, async () => {
    const c = await loadCase(name, name === "mlx_q4" ? "q4" : "f32");
    const adapter = withAdapter ? await openAdapter(dirFiles(`${c.dir}/adapter`)) : undefined;
    const prompt = Array.from(c.ids.subarray(0, 5));
    const got: number[] = [];
    for await (const t of generate(c.pack, prompt, { maxTokens: 6, temperature: 0, adapter })) got.push(t);
    assertEquals(got.length, 6);
    const seq = [...prompt];
    for (const t of got) {
      const logits = await fullForwardLastLogits(name, seq, withAdapter);
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      assertEquals(t, best, `token after ${seq.length} positions`);
      seq.push(t);
    }
  });
}

Deno.test("generate: stops at an EOS id", async () => {
  const c = await loadCase("gqa_tied_f32");
  const first: number[] = [];
  for await (const t of generate(c.pack, [1, 2, 3], { maxTokens: 3, temperature: 0 })) first.push(t);
  const got: number[] = [];
  for await (
    const t of generate(c.pack, [1, 2, 3], { maxTokens: 10, temperature: 0, eosTokenIds: [first[1]] })
  ) got.push(t);
  assertEquals(got, first.slice(0, first.indexOf(first[1]) + 1));
});

Deno.test("generate: stops at the model's EOS ids (config eos_token_id) unless told otherwise", async () => {
  const c = await loadCase("gqa_tied_f32");
  const [eos] = c.pack.config.eosTokenIds;
  assertEquals(eos, 255);
  let n = 0;
  // from the third token on, the EOS logit is the largest
  const forceEos = (logits: Float32Array) => void (++n >= 3 && (logits[eos] = 1e9));
  const run = async (options: Parameters<typeof generate>[2]) => {
    n = 0;
    const got: number[] = [];
    for await (const t of generate(c.pack, [1, 2, 3], { maxTokens: 6, temperature: 0, ...options })) {
      got.push(t);
    }
    return got;
  };
  const stopped = await run({ onLogits: forceEos });
  assertEquals(stopped.length, 3);
  assertEquals(stopped[2], eos);
  assertEquals((await run({ onLogits: forceEos, eosTokenIds: [] })).length, 6);
  assertEquals((await run({ onLogits: forceEos, eosTokenIds: [stopped[0]] })).length, 1);
});

Deno.test("generate: its arguments are checked when it is called, not at the first token", async () => {
  const c = await loadCase("gqa_tied_f32");
  // called, never iterated: an error must come from the call itself
  const call = (prompt: unknown, options: Record<string, unknown> = {}) => () => {
    generate(c.pack, prompt as number[], { maxTokens: 2, ...options });
  };
  await assertRejects(call([1, 2], { maxToken: 2 }), 'generate options: unknown option "maxToken"');
  await assertRejects(
    call([1, 2], { eosTokenIds: 151645 }),
    "generate options: eosTokenIds must be an array of token ids, got a number (151645) " +
      "(one id is a list of one: [151645])",
  );
  await assertRejects(call([1, 2], { eosTokenIds: [1.5] }), "generate options: eosTokenIds[0] is 1.5");
  await assertRejects(
    call(["1", "2"]),
    'generate: prompt[0] is "1": token ids are integers from 0 to 255 (the vocabulary)',
  );
  await assertRejects(call([1, 2.5]), "generate: prompt[1] is 2.5: token ids are integers");
  await assertRejects(call([1, 256]), "generate: prompt[1] is 256");
  await assertRejects(call("hello"), "generate: prompt must be an array of token ids, got a string");
  await assertRejects(call([]), "generate: the prompt is empty");
  await assertRejects(call([1, 2], { temperature: -1 }), "temperature must be a finite number ≥ 0");
  // what a caller awaiting the call (rather than iterating it) sees
  await assertRejects(
    async () => await generate(c.pack, [1, 2.5], { maxTokens: 2 }),
    "generate: prompt[1] is 2.5",
  );
  const ok = generate(c.pack, new Int32Array([1, 2]), { maxTokens: 1 });
  assertEquals((await ok.next()).done, false);
  await ok.return(undefined);
});

Deno.test("sampler: greedy at temperature 0; top-p keeps only the nucleus; seeded", () => {
  const logits = new Float32Array([0, 5, 1, 4.9, -3]);
  assertEquals(sampler({ temperature: 0 })(logits), 1);
  // p ∝ exp(l): tokens 1 and 3 hold ~97% of the mass; with top-p 0.5 only token 1 can be drawn
  const s = sampler({ temperature: 1, topP: 0.5, seed: 7 });
  for (let i = 0; i < 200; i++) assertEquals(s(logits), 1);
  const counts = new Map<number, number>();
  const s2 = sampler({ temperature: 1, topP: 0.99, seed: 3 });
  for (let i = 0; i < 2000; i++) {
    const t = s2(logits);
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  assert((counts.get(3) ?? 0) > 500 && (counts.get(1) ?? 0) > 500, JSON.stringify([...counts]));
  const a = sampler({ temperature: 1, topP: 1, seed: 42 }),
    b = sampler({ temperature: 1, topP: 1, seed: 42 });
  for (let i = 0; i < 50; i++) assertEquals(a(logits), b(logits));
});

Deno.test("generate: bad sampling options and more positions than the model has are refused up front", async () => {
  const c = await loadCase("gqa_tied_f32");
  const P = c.pack.config.maxPositionEmbeddings;
  const run = (prompt: number[], options: Parameters<typeof generate>[2]) => async () => {
    for await (const _ of generate(c.pack, prompt, options)) { /* drain */ }
  };
  await assertRejects(run([1, 2, 3], { maxTokens: P }), `need ${P + 3} positions; the model has ${P}`);
  await assertRejects(run([1, 2, 3], { maxTokens: 0 }), "maxTokens must be a positive integer, got 0");
  await assertRejects(run([1, 2, 3], { maxTokens: 3, topP: 0 }), "topP must be in (0, 1], got 0");
  await assertRejects(
    run([1, 2, 3], { maxTokens: 3, temperature: -1 }),
    "temperature must be a finite number ≥ 0",
  );
  await assertRejects(
    run([1, 2, 3], { maxTokens: 3, temperature: NaN }),
    "temperature must be a finite number ≥ 0",
  );
});

/** The sampler written plainly, with fresh arrays per token: the reference the reused-buffer one must match. */
function plainSampler(temperature: number, topP: number, seed: number): (logits: Float32Array) => number {
  let s = seed >>> 0 ^ 0x9e3779b9;
  const random = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  return (logits) => {
    const top = Math.max(...logits);
    const cand = [...logits.keys()].filter((i) => logits[i] >= top - temperature * Math.log(1e6));
    cand.sort((a, b) => logits[b] - logits[a] || a - b);
    const w = cand.map((i) => Math.exp((logits[i] - top) / temperature));
    const total = w.reduce((a, b) => a + b, 0);
    let keep = 0, mass = 0;
    while (keep < cand.length && mass < topP * total) mass += w[keep++];
    let u = random() * mass;
    for (let i = 0; i < keep; i++) if ((u -= w[i]) <= 0) return cand[i];
    return cand[keep - 1];
  };
}

Deno.test("sampler: reusing its buffers draws what a plain per-token implementation draws, ties included", () => {
  let x = 12345;
  const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (const [temperature, topP] of [[0.7, 0.8], [1, 1], [0.3, 0.95]]) {
    const ours = sampler({ temperature, topP, seed: 9 }), plain = plainSampler(temperature, topP, 9);
    for (let t = 0; t < 300; t++) {
      // 1000 logits, half of them on a coarse grid so equal values occur
      const logits = Float32Array.from(
        { length: 1000 },
        (_, i) => i % 2 ? Math.round(next() * 8) : next() * 8,
      );
      assertEquals(ours(logits), plain(logits));
    }
  }
});
