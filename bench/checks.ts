// The cost of the failure checks, to set next to a training step (bench/README): the per-step finiteness
// check of the LoRA parameters (one wasm sum of squares), and the pack block checksums (Checksum
// throughput, and verifying every block of a pack once per process, as openPack does).
//   deno run -A bench/checks.ts
import { Checksum } from "../src/io/checksum.ts";
import { PRESETS } from "../src/model/config.ts";
import { planPack } from "../src/model/pack_header.ts";
import { median } from "./measure.ts";
import { loadKernels } from "../src/runtime/kernels.ts";
import { loraLayout } from "../src/engine/lora.ts";

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
  console.log(
    `${name} q4: ${(blocks / 1e6).toFixed(0)} MB of checksummed blocks, verified once per process: ` +
      `${(blocks / 1e6 / rate).toFixed(2)} s`,
  );
}
