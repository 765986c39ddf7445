/**
 * The kept-tensor schedules side by side in one process: one MeSP step (q4, rank 8, random ids) with nothing
 * kept (the default), what a `--budget` buys (chosen as `bench:budget` chooses it; 400 MB for Qwen2.5-0.5B
 * shapes at T = 256: every MLP's gate/up and 9 of the 24 layers' attention tensors), and everything kept,
 * round-robin, CPU seconds per step. Steadier than `bench:budget` on a loaded machine (same process, same
 * moments), but no peak per configuration. Any model runs (the schedules come from its layer count).
 *
 *   deno run -A bench/keep_ab.ts --model /tmp/m05 --seq-len 256 --steps 2
 *   deno run -A bench/keep_ab.ts --model /tmp/tiny --seq-len 64 --budget 74MB   # make-model --preset tiny
 */
import { Engine } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { initLora } from "../src/engine/lora_init.ts";
import type { KeepSchedule } from "../src/engine/plan.ts";
import { chooseSchedule } from "../src/engine/schedule.ts";
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import { formatMB } from "../src/runtime/arena.ts";
import { cacheDir, runtimeBytes } from "../src/cli/common.ts";
import { cpuSeconds, median } from "./measure.ts";
import { benchArgs, CACHE_FLAG } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/keep_ab.ts",
  program: "deno run -A",
  description: "the kept-tensor schedules side by side in one process, CPU seconds per step",
  flags: {
    model: { type: "string", value: "DIR", default: "/tmp/m05", description: "model directory" },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per step" },
    steps: { type: "integer", default: 2, min: 1, description: "measured steps per schedule" },
    budget: {
      type: "size",
      default: "400MB",
      description: "whole-process budget of the middle schedule (fused SGD, one thread, as bench:budget)",
    },
    cache: CACHE_FLAG,
  },
} as const satisfies CommandSpec;
const { seqLen: T, steps, budget, ...flags } = benchArgs(SPEC);
const { pack } = await loadOrBuildPack(flags.model, {
  format: "q4",
  cacheDir: `${cacheDir(flags.cache ?? "")}/packs`,
});
const L = pack.config.numLayers, layout = loraLayout(pack.config, { rank: 8 });
const ids = Int32Array.from({ length: T }, (_, i) => (i * 7919) % 150000);
// the budget's schedule as bench:budget's configuration gets it: fused SGD, one thread, its runtime estimate
const bought = chooseSchedule(
  pack.config,
  await Engine.planOptions(pack, {
    mode: "train",
    seqLen: T,
    lora: layout,
    method: "mesp",
    optimizer: "sgd",
  }),
  budget - runtimeBytes(1),
);
if (!bought || bought.ckptEvery !== 1) {
  console.error(
    `--budget ${formatMB(budget)} leaves no room to keep forward tensors for this model at T = ${T}`,
  );
  Deno.exit(2);
}
console.log(
  `--budget ${
    formatMB(budget)
  } buys MLP ${bought.keep.mlp}/${L}, attention ${bought.keep.attention}/${L} kept`,
);
const keeps: (KeepSchedule | undefined)[] = [undefined, bought.keep, { mlp: L, attention: L }];
const runs: {
  keep?: KeepSchedule;
  e: Engine;
  bw: Backward;
  cpu: number[];
  grads: Float32Array;
}[] = [];
for (const keep of keeps) {
  const e = await Engine.create(pack, { mode: "train", seqLen: T, lora: layout, gradBuffer: true, keep });
  initLora(layout, e.arena.f32("lora.params"), 7);
  const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false });
  runs.push({ keep, e, bw, cpu: [] as number[], grads: new Float32Array() });
}
for (let s = 0; s <= steps; s++) {
  for (const r of runs) {
    const c0 = cpuSeconds().own;
    await forwardBackward(r.e, r.bw, ids, undefined, T);
    if (s > 0) r.cpu.push(cpuSeconds().own - c0);
    r.grads = r.e.arena.f32("lora.grad").slice();
  }
}
const base = median(runs[0].cpu);
for (const r of runs) {
  const same = r.grads.every((g, i) => Object.is(g, runs[0].grads[i]));
  console.log(
    `keep ${JSON.stringify(r.keep ?? { mlp: 0, attention: 0 })}: CPU ${
      r.cpu.map((c) => c.toFixed(2)).join(", ")
    } s/step, ` +
      `${(base / median(r.cpu)).toFixed(2)}× the default; gradients ${same ? "bitwise the same" : "DIFFER"}`,
  );
}
