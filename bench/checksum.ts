// The cost of the pack block checksums: throughput of Checksum, and what verifying every block of a pack
// once per process (what openPack does) costs for the presets, next to a training step.
//   deno run -A bench/checksum.ts
import { Checksum } from "../src/io/checksum.ts";
import { PRESETS } from "../src/model/config.ts";
import { planPack } from "../src/model/pack_header.ts";
import { median } from "./measure.ts";

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
