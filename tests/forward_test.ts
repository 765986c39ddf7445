// The streaming forward pass against the PyTorch golden fixtures: logits and loss, with and without the
// LoRA adapter, for every head layout, dtype and checkpoint shape; chunked vocabulary and MLP must not change
// the result.
import { assert } from "./_assert.ts";
import { expectedF64, GOLDEN_CASES, loadCase } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { Engine } from "../src/engine/engine.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { forward } from "../src/engine/forward.ts";
import { chunkLogits, lossForward, lossRows, lossSum, setTargets } from "../src/engine/loss.ts";

async function check(name: string, adapter: boolean, chunks: { vocabChunk?: number; mlpChunk?: number }) {
  const c = await loadCase(name, name === "mlx_q4" ? "q4" : "f32", chunks.mlpChunk);
  const opened = adapter ? await openAdapter(dirFiles(`${c.dir}/adapter`)) : undefined;
  const lora = opened ? loraLayout(c.cfg, opened.config) : undefined;
  const e = await Engine.create(c.pack, { mode: "eval", seqLen: c.T, lora, vocabChunk: chunks.vocabChunk });
  if (opened) await readAdapterInto(opened, lora!, e.arena.f32("lora.params"));
  await forward(e, c.ids, c.T);
  setTargets(e, c.ids, c.targets, c.T);
  const V = c.cfg.vocabSize, Vc = e.D.Vc;
  // logits of every chunk, gathered while the loss streams the head
  const logits = new Float64Array(c.T * V);
  const rows = lossRows(e);
  for (let ch = 0; ch < e.weights.vocabChunks; ch++) {
    const vc = await e.weights.loadVocabChunk(ch);
    const p = chunkLogits(e, 0, c.T, vc) >> 2;
    for (let t = 0; t < c.T; t++) {
      for (let j = 0; j < vc; j++) logits[t * V + ch * Vc + j] = e.F[p + t * Vc + j];
    }
    e.k.ce_chunk_forward(
      p << 2,
      vc,
      Vc,
      ch * Vc,
      rows.targets,
      rows.max,
      rows.sum,
      rows.tlogit,
      ch === 0 ? 1 : 0,
      0,
      c.T,
    );
  }
  e.k.ce_finish(rows.loss, rows.lse, rows.max, rows.sum, rows.tlogit, 0, c.T);
  const want = await expectedF64(c, adapter ? "logits" : "logits_base");
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(logits[i] - want[i]));
  assert(maxDiff <= 1e-4, `${name}${adapter ? " +adapter" : ""}: logits max |Δ| ${maxDiff}`);
  const { sum, count } = lossSum(e, c.T);
  const loss = sum / count, wantLoss = (await expectedF64(c, adapter ? "loss" : "loss_base"))[0];
  assert(Math.abs(loss - wantLoss) <= 1e-5 * Math.abs(wantLoss), `${name}: loss ${loss} vs ${wantLoss}`);
  // the engine's own streaming loss gives the same value
  await lossForward(e, c.T);
  const again = lossSum(e, c.T);
  assert(
    Math.abs(again.sum / again.count - loss) <= 1e-6 * loss,
    `${name}: lossForward ${again.sum / again.count} vs ${loss}`,
  );
}

for (const name of GOLDEN_CASES) {
  Deno.test(`forward ${name}: logits and loss match PyTorch, base and with adapter`, async () => {
    await check(name, false, {});
    await check(name, true, {});
  });
}

Deno.test("forward: vocabulary and MLP chunking do not change the result", async () => {
  await check("gqa_tied_f32", true, { vocabChunk: 100, mlpChunk: 64 });
  await check("mha_untied_bf16", true, { vocabChunk: 37 });
  await check("mlx_q4", true, { vocabChunk: 64, mlpChunk: 64 });
});
