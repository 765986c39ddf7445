/**
 * The bytes `writePack` reads from a checkpoint, per pack format, with the down projection held whole (the
 * default) and read again per MLP chunk (`heldColumnsBytes: 0`), side by side, and the packs' checksums
 * (equal both ways):
 *
 * ```sh
 * deno run -A bench/pack_reads.ts --model /tmp/m05 --formats q4,bf16
 * ```
 *
 * @module
 */
import { benchArgs } from "./args.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { Checksum } from "../src/io/checksum.ts";
import { readModelConfig } from "../src/model/pack_files.ts";
import type { PackFormat } from "../src/model/pack_layout.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { openCheckpoint } from "../src/model/safetensors.ts";

const args = benchArgs(
  {
    name: "pack_reads",
    description: "bytes writePack reads from a checkpoint, down projection held and re-read",
    flags: {
      model: { type: "string", value: "DIR", required: true, description: "the model directory" },
      formats: { type: "list", default: ["q4"], description: "pack formats, e.g. q4,bf16" },
    },
  } as const,
);

const cfg = await readModelConfig(args.model);
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
for (const format of args.formats as PackFormat[]) {
  for (const [how, heldColumnsBytes] of [["held", undefined], ["re-read", 0]] as const) {
    const files = dirFiles(args.model);
    const ckpt = await openCheckpoint(files);
    let read = 0, size = 0;
    for (const f of ckpt.files.values()) {
      size += await f.source.size();
      const plain = f.source.read.bind(f.source);
      f.source.read = (offset, into) => (read += into.length, plain(offset, into));
    }
    const sum = new Checksum();
    const sink = { write: (b: Uint8Array) => (sum.update(b), Promise.resolve()) };
    await writePack(ckpt, cfg, sink, { format, fingerprint: "bench", heldColumnsBytes });
    ckpt.close();
    console.log(
      `${format} ${how}: read ${mb(read)} of a ${mb(size)} checkpoint (${(read / size).toFixed(2)}×), ` +
        `pack checksum ${sum.hex()}`,
    );
  }
}
