/**
 * Schedules side by side in one process: one MeSP step (Qwen2.5-0.5B shapes, q4, rank 8, random ids) per
 * schedule, round-robin, CPU seconds per step (one kernel thread), the ratio to the first schedule's, and
 * whether the gradients are bitwise the first's. Steadier than `bench:budget` on a loaded machine (same
 * process, same moments), but no peak per configuration. A schedule is one of
 *
 * - `all`: every layer's input saved, nothing kept (the library's default);
 * - `N`: N saved inputs, the fewest recomputes (`--saved-inputs N`); `everyK`: `--ckpt-every K`;
 * - `budget`: what `--budget` buys (default 400 MB, chosen as `bench:budget` chooses it: fused SGD, one
 *   thread; for Qwen2.5-0.5B shapes at T = 256 every MLP's gate/up and 9 layers' attention tensors);
 *   `keepall`: everything kept. Any model runs: the schedules come from its layer count.
 *
 *   deno run --lock=deno.dev.lock -A bench/keep_ab.ts --model /tmp/m05 --seq-len 256 --steps 2                  # all,budget,keepall
 *   deno run --lock=deno.dev.lock -A bench/keep_ab.ts --model /tmp/tiny --seq-len 64 --budget 74MB             # make-model --preset tiny
 *   deno run --lock=deno.dev.lock -A bench/keep_ab.ts --model /tmp/m05 --schedules 6,all,every4 --steps 2
 */
import { Engine, type EngineOptions } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { initLora } from "../src/engine/lora_init.ts";
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import { cacheDir, runtimeBytes } from "../src/cli/common.ts";
import { chooseSchedule } from "../src/engine/schedule.ts";
import { formatMB } from "../src/runtime/arena.ts";
import { cpuSeconds, median } from "./measure.ts";
import { benchArgs, CACHE_FLAG } from "./args.ts";
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
      default: ["all", "budget", "keepall"],
      description: "all, N (saved inputs), everyK (--ckpt-every K), budget, keepall; the first is the base",
    },
    budget: {
      type: "size",
      default: "400MB",
      description: "whole-process budget of the `budget` schedule (fused SGD, one thread, as bench:budget)",
    },
    cache: CACHE_FLAG,
  },
} as const satisfies CommandSpec;
const { seqLen: T, steps, schedules, budget, ...flags } = benchArgs(SPEC);
const { pack } = await loadOrBuildPack(flags.model, {
  format: "q4",
  cacheDir: `${cacheDir(flags.cache ?? "")}/packs`,
});
const L = pack.config.numLayers, layout = loraLayout(pack.config, { rank: 8 });

/** What `--budget` buys for this model, as bench:budget's configuration gets it (fused SGD, one thread). */
async function bought() {
  const o = await Engine.planOptions(pack, {
    mode: "train",
    seqLen: T,
    lora: layout,
    method: "mesp",
    optimizer: "sgd",
  });
  const s = chooseSchedule(pack.config, o, budget - runtimeBytes(1));
  if (!s || s.slots < L) {
    console.error(
      `--budget ${formatMB(budget)} leaves no room to keep forward tensors for this model at T = ${T}`,
    );
    Deno.exit(2);
  }
  console.log(
    `--budget ${formatMB(budget)} buys MLP ${s.keep.mlp}/${L}, attention ${s.keep.attention}/${L} kept`,
  );
  return s.keep;
}

/** The engine options of a schedule's name. */
async function scheduleOptions(
  name: string,
): Promise<Pick<EngineOptions, "savedInputs" | "savedInputEvery" | "keep">> {
  if (name === "all") return {};
  if (name === "budget") return { keep: await bought() };
  if (name === "keepall") return { keep: { mlp: L, attention: L } };
  const every = /^every(\d+)$/.exec(name);
  if (every) return { savedInputEvery: Number(every[1]) };
  if (/^\d+$/.test(name)) return { savedInputs: Number(name) };
  throw new Error(`--schedules: "${name}" is not all, N, everyK, budget or keepall`);
}

const ids = Int32Array.from({ length: T }, (_, i) => (i * 7919) % 150000);
const runs: { name: string; e: Engine; bw: Backward; cpu: number[]; grads: Float32Array }[] = [];
for (const name of schedules) {
  const o = await scheduleOptions(name);
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
