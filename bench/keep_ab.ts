/**
 * Schedules side by side in one process: one MeSP step (Qwen2.5-0.5B shapes, q4, rank 8, random ids) per
 * schedule, round-robin, CPU seconds per step (one kernel thread), the ratio to the first schedule's, and
 * whether the gradients are bitwise the first's. Steadier than `bench:budget` on a loaded machine (same
 * process, same moments), but no peak per configuration. A schedule is one of
 *
 * - `all`: every layer's input saved, nothing kept (the library's default);
 * - `N`: N saved inputs, the fewest recomputes (`--saved-inputs N`); `everyK`: `--ckpt-every K`;
 * - `keep400`: every MLP's gate/up and 10 layers' attention tensors kept (what 400 MB buys at T = 256);
 *   `keepall`: everything kept.
 *
 *   deno run -A bench/keep_ab.ts --model /tmp/m05 --seq-len 256 --steps 2                  # all,keep400,keepall
 *   deno run -A bench/keep_ab.ts --model /tmp/m05 --schedules 6,all,every4 --steps 2
 */
import { Engine, type EngineOptions } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { initLora } from "../src/engine/lora_init.ts";
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import { cacheDir } from "../src/cli/common.ts";
import { cpuSeconds, median } from "./measure.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/keep_ab.ts",
  program: "deno run -A",
  description: "schedules side by side in one process, CPU seconds per step",
  flags: {
    model: { type: "string", value: "DIR", default: "/tmp/m05", description: "model directory" },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per step" },
    steps: { type: "integer", default: 2, min: 1, description: "measured steps per schedule" },
    schedules: {
      type: "list",
      default: ["all", "keep400", "keepall"],
      description: "all, N (saved inputs), everyK (--ckpt-every K), keep400, keepall; the first is the base",
    },
    cache: {
      type: "string",
      value: "DIR",
      description: "mesp's cache (default $MESP_CACHE or ~/.cache/mesp)",
    },
  },
} as const satisfies CommandSpec;
const { seqLen: T, steps, schedules, ...flags } = benchArgs(SPEC);
const { pack } = await loadOrBuildPack(flags.model, {
  format: "q4",
  cacheDir: `${cacheDir(flags.cache ?? "")}/packs`,
});
const L = pack.config.numLayers, layout = loraLayout(pack.config, { rank: 8 });

/** The engine options of a schedule's name. */
function scheduleOptions(name: string): Pick<EngineOptions, "savedInputs" | "savedInputEvery" | "keep"> {
  if (name === "all") return {};
  if (name === "keep400") return { keep: { mlp: L, attention: 10 } };
  if (name === "keepall") return { keep: { mlp: L, attention: L } };
  const every = /^every(\d+)$/.exec(name);
  if (every) return { savedInputEvery: Number(every[1]) };
  if (/^\d+$/.test(name)) return { savedInputs: Number(name) };
  throw new Error(`--schedules: "${name}" is not all, N, everyK, keep400 or keepall`);
}

const ids = Int32Array.from({ length: T }, (_, i) => (i * 7919) % 150000);
const runs: { name: string; e: Engine; bw: Backward; cpu: number[]; grads: Float32Array }[] = [];
for (const name of schedules) {
  const o = scheduleOptions(name);
  const e = await Engine.create(pack, { mode: "train", seqLen: T, lora: layout, gradBuffer: true, ...o });
  initLora(layout, e.arena.f32("lora.params"), 7);
  const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false });
  runs.push({ name, e, bw, cpu: [], grads: new Float32Array() });
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
  const o = r.e.recompute, keep = r.e.options.keep ?? { mlp: 0, attention: 0 };
  console.log(
    `${r.name}: ${o.slots} inputs saved (${o.recomputed} layer forwards recomputed), keep ${
      JSON.stringify(keep)
    }, arena ${(r.e.arena.plan.bytes / 1e6).toFixed(1)} MB; CPU ${
      r.cpu.map((c) => c.toFixed(2)).join(", ")
    } s/step, ${(median(r.cpu) / base).toFixed(2)}× ${runs[0].name}'s time; gradients ${
      same ? "bitwise the same" : "DIFFER"
    }`,
  );
}
