// Evaluation in batches (several sequences per pass over the weights) against one sequence at a time through
// the plain forward (`sequenceLoss`, what validation and MeZO use; its logits and loss match PyTorch in
// forward_test.ts): every sequence's loss sum and count bit for bit, tied and untied heads, with an adapter,
// several MLP and vocabulary chunks, sequences of different lengths, masked targets and one with none; and
// `evaluate`'s choice of batch (the default, a budget's, the caller's) never changing its result.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { caseSequences, loadCase } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { Engine } from "../src/engine/engine.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { batchLoss, SequenceBatch, sequenceLoss } from "../src/engine/sequence_loss.ts";
import { evaluate } from "../src/run/evaluate.ts";
import type { Sequence } from "../src/data/sequence.ts";

/** The case's sequences (9–11 tokens, masked), one shorter, one with no trained target. */
function sequencesOf(c: Awaited<ReturnType<typeof loadCase>>): Sequence[] {
  const data = caseSequences(c);
  data.push({ ids: c.ids.subarray(0, 5), targets: new Uint8Array(5).fill(1) });
  data.push({ ids: c.ids.subarray(0, 7), targets: new Uint8Array(7) });
  return data;
}

for (
  const [name, format, mlpChunk] of [["gqa_tied_f32", "f32", 64], ["mha_untied_bf16", "f32", undefined], [
    "mlx_q4",
    "q4",
    64,
  ]] as const
) {
  Deno.test(`batchLoss ${name}: each sequence's loss bit for bit as alone, with an adapter, several chunks`, async () => {
    const c = await loadCase(name, format, mlpChunk);
    const opened = await openAdapter(dirFiles(`${c.dir}/adapter`));
    const lora = loraLayout(c.cfg, opened.config);
    const data = sequencesOf(c), T = 11, vocabChunk = 100;
    const engine = async (batch: number) => {
      const e = await Engine.create(c.pack, { mode: "eval", seqLen: T, lora, vocabChunk, batch });
      await readAdapterInto(opened, lora, e.arena.f32("lora.params"));
      return e;
    };
    const one = await engine(1);
    assert(one.chunks.length > 1 || mlpChunk === undefined, "several MLP chunks");
    assert(one.weights.vocabChunks > 1, "several vocabulary chunks");
    const alone: { sum: number; count: number }[] = [];
    for (const s of data) alone.push(await sequenceLoss(one, s.ids, s.targets, s.ids.length));
    assertEquals(alone.at(-1), { sum: 0, count: 0 }, "no trained target");
    const e = await engine(3), batch = new SequenceBatch(e);
    const together: { sum: number; count: number }[] = [];
    for (let i = 0; i < data.length; i += 3) {
      batch.clear();
      for (const s of data.slice(i, i + 3)) batch.add(s.ids, s.targets, s.ids.length);
      await batchLoss(e, batch);
      for (let s = 0; s < batch.n; s++) together.push({ sum: batch.sums[s], count: batch.counts[s] });
    }
    assertEquals(together, alone);
    batch.clear();
    await assertRejects(
      () => batch.add(data[0].ids, undefined, 1),
      "a batch sequence has 2…11 tokens, got 1",
    );
  });
}

Deno.test("evaluate: the default batch, a budget's smaller one and the caller's give the same bits", async () => {
  const c = await loadCase("mlx_q4", "q4", 64);
  const adapter = await openAdapter(dirFiles(`${c.dir}/adapter`));
  const data = sequencesOf(c);
  const done: number[] = [];
  const byDefault = await evaluate(c.pack, data, {
    adapter,
    score: "trained",
    onProgress: (n) => done.push(n),
  });
  assertEquals(byDefault.batch, data.length, "every sequence in one pass (they are short)");
  assertEquals(done, data.map((_, i) => i + 1), "progress after each sequence, in order");
  const lora = loraLayout(c.cfg, adapter.config);
  const planOf = (batch: number) => Engine.plan(c.pack, { mode: "eval", seqLen: 11, lora, batch });
  const budget = (await planOf(3)).bytes;
  assert(budget < (await planOf(4)).bytes);
  const fitted = await evaluate(c.pack, data, { adapter, score: "trained", budget });
  assertEquals(fitted.batch, 3, "the most sequences the budget fits");
  for (const batch of [1, 2, 5]) {
    const r = await evaluate(c.pack, data, { adapter, score: "trained", batch });
    assertEquals(r, { ...byDefault, batch }, `batch ${batch}`);
  }
  assertEquals({ ...fitted, batch: data.length }, byDefault);
  await assertRejects(
    () => evaluate(c.pack, data, { adapter, batch: 0 }),
    "batch must be a whole number ≥ 1, got 0",
  );
  await assertRejects(
    () => evaluate(c.pack, data, { adapter, batch: 4, budget }),
    "memory plan needs",
  );
});
