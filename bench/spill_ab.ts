/**
 * The spill side by side with the arena in one process: `train` (fused SGD, the library's API) of the same
 * sequences under each configuration, round-robin, CPU seconds per step after the first, the ratio to the
 * first configuration's, the bytes a step moves through the spill file, and whether the trained parameters
 * are bitwise the first's. A configuration is
 *
 * - `memory`: everything in the arena, every layer's input saved (the library's default);
 * - `N`: in the arena with N saved inputs (`--saved-inputs N`; the CLI's default for the 0.5B without a spill
 *   is 6);
 * - `spill`: saved inputs, adapter (and AdamW's moments) in a file (`createSpillFile`, in `--dir`), every
 *   layer's input saved (the CLI's default).
 *
 *   deno run --lock=deno.dev.lock -A bench/spill_ab.ts --model /tmp/m05 --configs memory,6,spill --steps 2 --rounds 2
 *   deno run --lock=deno.dev.lock -A bench/spill_ab.ts --model /tmp/tiny --seq-len 64 --steps 4   # make-model --preset tiny
 */
import { train, type TrainOptions } from "../src/run/train.ts";
import type { SpillFile } from "../src/io/spill_file.ts";
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import { cacheDir } from "../src/cli/common.ts";
import { createSpillFile } from "../src/io/deno_files.ts";
import { cpuSeconds, median } from "./measure.ts";
import { benchArgs, CACHE_FLAG } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/spill_ab.ts",
  program: "deno run -A",
  description: "the spill beside the arena in one process: CPU seconds per step, spill bytes, same bits",
  flags: {
    model: { type: "string", value: "DIR", default: "/tmp/m05", description: "model directory" },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per sequence" },
    steps: { type: "integer", default: 2, min: 1, description: "measured steps per configuration and round" },
    rounds: { type: "integer", default: 1, min: 1, description: "round-robin rounds" },
    threads: { type: "integer", default: 1, min: 1, description: "kernel threads" },
    optimizer: { type: "string", choices: ["sgd", "adamw"], default: "sgd", description: "optimizer" },
    configs: {
      type: "list",
      default: ["memory", "6", "spill"],
      description: "memory, N (saved inputs in the arena), spill; the first is the base",
    },
    dir: {
      type: "string",
      value: "DIR",
      description: "where the spill file goes (default: a temporary folder)",
    },
    cache: CACHE_FLAG,
  },
} as const satisfies CommandSpec;
const { seqLen: T, steps, rounds, threads, optimizer, configs, dir, ...flags } = benchArgs(SPEC);
const { pack } = await loadOrBuildPack(flags.model, {
  format: "q4",
  cacheDir: `${cacheDir(flags.cache ?? "")}/packs`,
});
const spillDir = dir ?? await Deno.makeTempDir({ prefix: "mesp-spill-ab-" });

/** A spill file that counts the bytes read and written. */
function counted(file: SpillFile) {
  const n = { read: 0, written: 0 };
  return {
    n,
    read: (p: number, into: Uint8Array) => (n.read += into.length, file.read(p, into)),
    write: (p: number, data: Uint8Array) => (n.written += data.length, file.write(p, data)),
  };
}

const V = pack.config.vocabSize;
const data = Array.from({ length: steps + 1 }, (_, s) => {
  const ids = Int32Array.from({ length: T }, (_, i) => (i * 7919 + s * 104729) % V);
  return { ids, targets: undefined };
});
const base: TrainOptions = {
  seqLen: T,
  steps: steps + 1,
  seed: 1,
  lora: { rank: 8 },
  optimizer: { name: optimizer as "sgd" | "adamw", lr: 1e-4 },
  threads,
};

interface Run {
  name: string;
  cpu: number[];
  params?: Float32Array;
  arena: number;
  spillRead: number;
  spillWritten: number;
}
const runs: Run[] = configs.map((name) => ({ name, cpu: [], arena: 0, spillRead: 0, spillWritten: 0 }));
for (let round = 0; round < rounds; round++) {
  for (const r of runs) {
    const file = r.name === "spill" ? createSpillFile(spillDir) : undefined;
    const spill = file && counted(file);
    if (r.name !== "memory" && r.name !== "spill" && !/^\d+$/.test(r.name)) {
      throw new Error(`--configs: "${r.name}" is not memory, N or spill`);
    }
    let last = 0, atFirst = { read: 0, written: 0 };
    try {
      const result = await train(pack, data, [], {
        ...base,
        spill,
        savedInputs: /^\d+$/.test(r.name) ? Number(r.name) : undefined,
        onEvent: (ev) => {
          if (ev.type === "plan") r.arena = ev.bytes;
          if (ev.type !== "step") return;
          const now = cpuSeconds().own;
          // the first step compiles and reads the pack cold: not measured
          if (ev.step > 1) r.cpu.push(now - last);
          else if (spill) atFirst = { ...spill.n };
          last = now;
        },
      });
      r.params = result.params.slice();
      if (spill) {
        r.spillRead = (spill.n.read - atFirst.read) / steps;
        r.spillWritten = (spill.n.written - atFirst.written) / steps;
      }
    } finally {
      file?.close();
    }
  }
}
if (!dir) await Deno.remove(spillDir, { recursive: true });

const cpu = `${Deno.build.arch}, ${threads} thread(s), T = ${T}, ${optimizer}`;
console.log(`${flags.model}: ${cpu}; ${steps} measured steps × ${rounds} round(s) each`);
const first = median(runs[0].cpu);
for (const r of runs) {
  const same = r.params!.every((x, i) => Object.is(x, runs[0].params![i]));
  const io = r.name === "spill"
    ? `; spill ${(r.spillRead / 1e6).toFixed(1)} MB read, ${
      (r.spillWritten / 1e6).toFixed(1)
    } MB written per step after the first`
    : "";
  console.log(
    `${r.name}: arena ${(r.arena / 1e6).toFixed(1)} MB; CPU ${
      r.cpu.map((c) => c.toFixed(2)).join(", ")
    } s/step, ` +
      `median ${median(r.cpu).toFixed(2)}, ${(median(r.cpu) / first).toFixed(2)}× ${runs[0].name}'s${io}; ` +
      `parameters ${same ? "bitwise the same" : "DIFFER"}`,
  );
}
