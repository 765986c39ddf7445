// The cost of the failure checks, to set next to a training step (bench/README): the per-step finiteness
// check of the LoRA parameters (one wasm sum of squares), and the pack block checksums (Checksum
// throughput, and verifying every block of a pack once per process, as openPack does). Given a model
// directory, also the measured first-read cost of the vocabulary checksums of its q4 pack (built once in a
// temporary cache): rows read as 512-row LM-head chunks and as single token rows, first read (verifying)
// against a second read of the same rows by the same pack (verified already).
//   deno run --lock=deno.dev.lock -A bench/checks.ts [model-dir]
import { Checksum } from "../src/io/checksum.ts";
import { PRESETS } from "../src/model/config.ts";
import type { VocabRowViews } from "../src/model/pack.ts";
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import { planPack } from "../src/model/pack_header.ts";
import { median } from "./measure.ts";
import { loadKernels } from "../src/runtime/kernels.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/checks.ts",
  program: "deno run -A",
  description: "the cost of the failure checks (finiteness, pack checksums); with a model, its vocabulary's",
  positionals: "[MODEL-DIR]",
  flags: {},
} as const satisfies CommandSpec;
const args = benchArgs(SPEC);

const k = await loadKernels({});
const n = loraLayout(PRESETS["qwen2.5-0.5b"], { rank: 8 }).totalElements;
const ptr = k.memory.buffer.byteLength;
k.memory.grow(Math.ceil((n * 4) / 65536) + 1);
new Float32Array(k.memory.buffer, ptr, n).fill(0.01);
const times: number[] = [];
for (let r = 0; r < 21; r++) {
  const t = performance.now();
  k.exports.sum_squares(ptr, n);
  times.push(performance.now() - t);
}
console.log(
  `per-step check, Qwen2.5-0.5B rank 8 all targets (${n} parameters): ${
    median(times.slice(1)).toFixed(1)
  } ms ` +
    `(median of 20, ${k.variant})`,
);

const bytes = new Uint8Array(64 << 20).map((_, i) => (i * 2654435761) >>> 24);
const sum = new Checksum();
const rates: number[] = [];
for (let r = 0; r < 7; r++) {
  const t = performance.now();
  sum.reset().update(bytes).hex();
  rates.push(bytes.length / 1e6 / ((performance.now() - t) / 1000));
}
const rate = median(rates.slice(1));
console.log(`Checksum: ${rate.toFixed(0)} MB/s (median of 6 after a warm-up, 64 MiB)`);
for (const name of ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b"] as const) {
  const plan = planPack(PRESETS[name], "q4");
  const blocks = plan.layers.reduce((n, l) => n + l.bytes, 0) + plan.norm.bytes;
  const vocab = plan.embed.bytes + (plan.lmHead?.bytes ?? 0);
  console.log(
    `${name} q4: ${(blocks / 1e6).toFixed(0)} MB of checksummed blocks, verified once per process: ` +
      `${(blocks / 1e6 / rate).toFixed(2)} s; vocabulary ${(vocab / 1e6).toFixed(0)} MB: ` +
      `${(vocab / 1e6 / rate).toFixed(2)} s`,
  );
}

const modelDir = args._[0];
if (modelDir) {
  const cacheDir = await Deno.makeTempDir({ prefix: "mesp-bench-checks-" });
  try {
    const { pack, path } = await loadOrBuildPack(modelDir, { format: "q4", cacheDir });
    const { vocabSize: V } = pack.config,
      s = pack.vocabSlot,
      chunk = 512,
      head = !pack.config.tieWordEmbeddings;
    const views = (rows: number): VocabRowViews => ({
      data: new Uint8Array(rows * s.rowBytes),
      scales: s.scaleRowBytes ? new Uint8Array(rows * s.scaleRowBytes) : undefined,
      biases: s.scaleRowBytes ? new Uint8Array(rows * s.scaleRowBytes) : undefined,
    });
    const whole = views(chunk), last = views(V % chunk || chunk), one = views(1);
    // a fresh pack object per run: blocks are verified once per pack
    const timed = async (read: (p: typeof pack) => Promise<void>) => {
      const first: number[] = [], second: number[] = [];
      for (let r = 0; r < 5; r++) {
        const p = await loadOrBuildPack(modelDir, { format: "q4", cacheDir });
        for (const into of [first, second]) {
          const t = performance.now();
          await read(p.pack);
          into.push(performance.now() - t);
        }
        p.pack.source.close?.();
      }
      return `${median(first).toFixed(0)} ms first read, ${median(second).toFixed(0)} ms again`;
    };
    const chunks = await timed(async (p) => {
      for (let v0 = 0; v0 < V; v0 += chunk) {
        await p.readVocabRows(v0, Math.min(V, v0 + chunk), v0 + chunk <= V ? whole : last, head);
      }
    });
    const rows = await timed(async (p) => {
      for (let v0 = 0; v0 < V; v0 += chunk) await p.readVocabRows(v0, v0 + 1, one);
    });
    console.log(
      `${path}: every vocabulary row as ${Math.ceil(V / chunk)} chunks of ${chunk} rows: ${chunks} ` +
        `(median of 5); one token row from each block of ${pack.header.vocabBlock} rows: ${rows}`,
    );
    pack.source.close?.();
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
}
