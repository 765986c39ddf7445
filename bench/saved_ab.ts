/**
 * Saved-input schedules side by side in one process: one MeSP step (Qwen2.5-0.5B shapes, q4, rank 8, random
 * ids) per schedule, round-robin, CPU seconds per step (one kernel thread) and the ratio to the first
 * schedule, and whether the gradients are bitwise the first's. A schedule is `all` (every layer's input
 * saved), `N` (N saved inputs, the fewest recomputes) or `everyK` (`--ckpt-every K`).
 *
 *   deno run -A bench/saved_ab.ts --model /tmp/m05 --schedules all,6,every4 --steps 2
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
  name: "bench/saved_ab.ts",
  program: "deno run -A",
  description: "saved-input schedules side by side in one process, CPU seconds per step",
  flags: {
    model: { type: "string", value: "DIR", default: "/tmp/m05", description: "model directory" },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per step" },
    steps: { type: "integer", default: 2, min: 1, description: "measured steps per schedule" },
    schedules: {
      type: "list",
      default: ["all", "6", "every4"],
      description: "schedules: all (every input saved), N (N saved inputs), everyK (--ckpt-every K)",
    },
    cache: {
      type: "string",
      value: "DIR",
      description: "mesp's cache (default $MESP_CACHE or ~/.cache/mesp)",
    },
  },
} as const satisfies CommandSpec;
const { seqLen: T, steps, schedules, ...flags } = benchArgs(SPEC);

/** The engine options of a schedule's name. */
function scheduleOptions(name: string): Pick<EngineOptions, "savedInputs" | "savedInputEvery"> {
  if (name === "all") return {};
  const every = /^every(\d+)$/.exec(name);
  if (every) return { savedInputEvery: Number(every[1]) };
  if (/^\d+$/.test(name)) return { savedInputs: Number(name) };
  throw new Error(`--schedules: "${name}" is not all, N or everyK`);
}

const { pack } = await loadOrBuildPack(flags.model, {
  format: "q4",
  cacheDir: `${cacheDir(flags.cache ?? "")}/packs`,
});
const layout = loraLayout(pack.config, { rank: 8 });
const ids = Int32Array.from({ length: T }, (_, i) => (i * 7919) % 150000);
const runs: { name: string; e: Engine; bw: Backward; cpu: number[]; grads: Float32Array }[] = [];
for (const name of schedules) {
  const e = await Engine.create(pack, {
    mode: "train",
    seqLen: T,
    lora: layout,
    gradBuffer: true,
    ...scheduleOptions(name),
  });
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
  const o = r.e.recompute;
  console.log(
    `${r.name}: ${o.slots} slots, ${o.recomputed} layer forwards recomputed, arena ${
      (r.e.arena.plan.bytes / 2 ** 20).toFixed(1)
    } MB; CPU ${r.cpu.map((c) => c.toFixed(2)).join(", ")} s/step, ${(median(r.cpu) / base).toFixed(2)}× ${
      runs[0].name
    }'s time; gradients ${same ? "bitwise the same" : "DIFFER"}`,
  );
}
