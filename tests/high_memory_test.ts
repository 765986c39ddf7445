// Arenas above 2 GiB (a long seqLen plans one; wasm32 allows 4 GiB): every pointer the host turns into a
// typed-array index must be shifted unsigned. A signed `>> 2` made pointers ≥ 2^31 negative, so rows read as
// undefined and losses came out NaN. The same sequence's loss and LoRA gradients in an arena of ~3.5 GiB
// equal those in a small one, bit for bit (the vocabulary chunk is fixed, as it shapes the sums).
import { assert, assertEquals } from "./_assert.ts";
import { bits, OPTIONS, sequences, tinyRun } from "./_tiny_run.ts";
import { train } from "../src/run/train.ts";
import { evaluate } from "../src/run/evaluate.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { openPack } from "../src/model/pack.ts";
import { Engine } from "../src/engine/engine.ts";
import { sequenceLoss } from "../src/engine/sequence_loss.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { initLora } from "../src/engine/lora_init.ts";

// eval plans ~3.5 GiB at 16384 positions; training (more buffers per position) ~2.5–3.6 GiB at 8192
const BIG = 16384, BIG_TRAIN = 8192, VOCAB_CHUNK = 40000, TRAIN_VOCAB_CHUNK = 65536;
async function tinyPack() {
  const run = await tinyRun();
  return openPack(fileSource(`${run.dir}/${run.pack}`));
}

const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 7919) % 5000);

Deno.test("an arena above 2 GiB gives the small arena's loss bit for bit", async () => {
  const pack = await tinyPack();
  const loss = async (seqLen: number) => {
    const e = await Engine.create(pack, { mode: "eval", seqLen, vocabChunk: VOCAB_CHUNK, threads: 1 });
    try {
      if (seqLen === BIG) assert(e.arena.plan.bytes > 2 ** 31, `plan of ${e.arena.plan.bytes} bytes`);
      return (await sequenceLoss(e, ids, undefined, ids.length)).sum;
    } finally {
      e.close();
    }
  };
  const small = await loss(64);
  assert(Number.isFinite(small));
  assertEquals(await loss(BIG), small);
});

for (const method of ["mesp", "mebp"] as const) {
  Deno.test(`${method}: an arena above 2 GiB gives the small arena's loss and LoRA gradients bit for bit`, async () => {
    const pack = await tinyPack();
    const lora = loraLayout(pack.config, { rank: 4 });
    const grads = async (seqLen: number) => {
      const e = await Engine.create(pack, {
        mode: "train",
        method,
        seqLen,
        lora,
        gradBuffer: true,
        vocabChunk: TRAIN_VOCAB_CHUNK,
        threads: 1,
      });
      try {
        if (seqLen === BIG_TRAIN) assert(e.arena.plan.bytes > 2 ** 31, `plan of ${e.arena.plan.bytes} bytes`);
        initLora(lora, e.arena.f32("lora.params"), 1);
        // B is zero at initialisation, so A's gradients would be too: give B values
        e.arena.f32("lora.params").forEach((_, i, p) => (p[i] = Math.fround(Math.sin(i) * 0.01)));
        const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false }, {
          mebp: method === "mebp",
        });
        const { loss } = await forwardBackward(e, bw, ids, undefined, ids.length);
        return { loss, grads: Array.from(e.arena.f32("lora.grad")) };
      } finally {
        e.close();
      }
    };
    const small = await grads(64);
    assert(Number.isFinite(small.loss) && small.grads.some((g) => g !== 0));
    const big = await grads(BIG_TRAIN);
    assertEquals(big.loss, small.loss);
    assert(big.grads.every((g, i) => Object.is(g, small.grads[i])), "gradients differ");
  });
}

Deno.test("train and evaluate plan memory for the longest sequence, not for seqLen: same plan, same bits", async () => {
  const run = await tinyRun();
  const pack = await tinyPack();
  const data = sequences(await Deno.readFile(`${run.dir}/${run.tokens}`)); // cut to OPTIONS.seqLen (64)
  const longest = Math.max(...data.map((s) => s.ids.length));
  assert(longest > 2 && longest <= OPTIONS.seqLen, `longest ${longest}`);
  const trainAt = async (seqLen: number) => {
    let bytes = 0;
    const r = await train(pack, data, [], {
      ...OPTIONS,
      seqLen,
      threads: 1,
      onEvent: (e) => {
        if (e.type === "plan") bytes = e.bytes;
      },
    });
    return { bytes, losses: r.losses, params: bits(r.params) };
  };
  const exact = await trainAt(longest);
  const generous = await trainAt(8192); // ~1 GiB if planned for seqLen
  assertEquals(generous.bytes, exact.bytes);
  assertEquals(generous.losses, exact.losses);
  assertEquals(generous.params, exact.params);
  assertEquals(generous.params, run.params); // and the reference run's, planned at 64
  const nll = async (seqLen: number) => (await evaluate(pack, data.slice(0, 4), { seqLen, threads: 1 })).nll;
  assertEquals(await nll(8192), await nll(longest));
});
