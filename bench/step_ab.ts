/**
 * One MeSP training step of this checkout against another checkout's (`--base DIR`, e.g. from
 * `git worktree add /tmp/base HEAD~1`), side by side in one process: the same pack, the same token ids, steps
 * alternating between the two builds, median of each and their ratio. Says whether a change slowed the step
 * down, on a machine too noisy for absolute times; also checks both builds give the same loss bits.
 *
 *   deno task make-model --preset qwen2.5-0.5b --out /tmp/m05 --format mlx-q4
 *   deno run --lock=deno.dev.lock -A bench/step_ab.ts --model /tmp/m05 --base /tmp/base --threads 2 --steps 5
 *
 * Flags: --seq-len 256, --rank 8, --steps 5 (measured per build), --warmup 1, --method mesp|mebp,
 * --threads 1, --prompt N (the first N tokens without a target, as a chat's masked prompt).
 */
import { loadOrBuildPack } from "../src/model/pack_files.ts";
import { cacheDir } from "../src/cli/common.ts";
import { seededRandom } from "../src/util/random.ts";
import { cpuSeconds } from "./measure.ts";
import { benchArgs, CACHE_FLAG } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/step_ab.ts",
  program: "deno run -A",
  description: "one training step of this checkout against another's, alternating in one process",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    base: { type: "string", value: "CHECKOUT", required: true, description: "the other checkout's folder" },
    seqLen: { type: "integer", default: 256, min: 2, description: "tokens per step" },
    rank: { type: "integer", default: 8, min: 1, description: "LoRA rank" },
    steps: { type: "integer", default: 5, min: 1, description: "measured steps per build" },
    warmup: { type: "integer", default: 1, min: 0, description: "unmeasured steps per build first" },
    threads: { type: "integer", default: 1, min: 1, description: "kernel threads" },
    method: { type: "string", choices: ["mesp", "mebp"], default: "mesp", description: "backward method" },
    prompt: {
      type: "integer",
      default: 0,
      min: 0,
      description: "leading tokens without a target (a chat prompt, masked; 0: every position trained)",
    },
    cache: CACHE_FLAG,
  },
} as const satisfies CommandSpec;
const { model, base, seqLen: T, rank, steps, warmup, threads, method, prompt, ...flags } = benchArgs(SPEC);

const { pack } = await loadOrBuildPack(model, {
  format: "q4",
  cacheDir: `${cacheDir(flags.cache ?? "")}/packs`,
  onStatus: (m) => console.error(m),
});
const random = seededRandom(1);
const ids = Int32Array.from(
  { length: T },
  () => Math.floor(random() * Math.min(pack.config.vocabSize, 150000)),
);
const trained = prompt > 0 ? Uint8Array.from({ length: T }, (_, t) => (t > prompt ? 1 : 0)) : undefined;

/** A step runner over one checkout's engine (module URLs of that checkout). */
async function runner(root: URL) {
  const at = (p: string) => new URL(p, root).href;
  const { Engine } = await import(at("src/engine/engine.ts"));
  const { Backward } = await import(at("src/engine/backward.ts"));
  const { forwardBackward } = await import(at("src/engine/step.ts"));
  const { loraLayout } = await import(at("src/engine/lora.ts"));
  const { initLora } = await import(at("src/engine/lora_init.ts"));
  const layout = loraLayout(pack.config, { rank });
  const e = await Engine.create(pack, {
    mode: "train",
    seqLen: T,
    lora: layout,
    method,
    optimizer: "sgd",
    threads,
  });
  initLora(layout, e.arena.f32("lora.params"), 7);
  const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: method === "mesp", accumulate: false }, {
    mebp: method === "mebp",
  });
  return {
    e,
    run: async () => {
      const t0 = performance.now(), c0 = cpuSeconds().own;
      const r = await forwardBackward(e, bw, ids, trained, T);
      return { ms: performance.now() - t0, cpu: cpuSeconds().own - c0, loss: r.loss as number };
    },
  };
}

const here = new URL("../", import.meta.url);
const there = new URL(`file://${Deno.realPathSync(base)}/`);
const builds = [
  { name: "this", r: await runner(here), ms: [] as number[], cpu: [] as number[], loss: 0 },
  { name: "base", r: await runner(there), ms: [] as number[], cpu: [] as number[], loss: 0 },
];
for (let s = 0; s < warmup + steps; s++) {
  // alternate which build goes first, so drift hits both alike
  for (const b of s % 2 ? [...builds].reverse() : builds) {
    const { ms, cpu, loss } = await b.r.run();
    if (s >= warmup) b.ms.push(ms), b.cpu.push(cpu);
    b.loss = loss;
  }
}
for (const b of builds) b.r.e.close();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const [a, b] = builds.map((x) => median(x.ms)), [ca, cb] = builds.map((x) => median(x.cpu));
console.log(
  `${method}, T ${T}${prompt ? ` (the first ${prompt} masked)` : ""}, rank ${rank}, ${threads} thread(s), ` +
    `${steps} steps each, alternating:\n` +
    `this ${(a / 1000).toFixed(2)} s/step (median of ${
      builds[0].ms.map((m) => (m / 1000).toFixed(2)).join(", ")
    })\n` +
    `base ${(b / 1000).toFixed(2)} s/step (median of ${
      builds[1].ms.map((m) => (m / 1000).toFixed(2)).join(", ")
    })\n` +
    `this / base time: wall ${(a / b).toFixed(3)}, CPU ${(ca / cb).toFixed(3)} ` +
    `(CPU s/step: this ${ca.toFixed(2)}, base ${cb.toFixed(2)}); ` +
    `loss bits ${builds[0].loss === builds[1].loss ? "equal" : "DIFFER"}`,
);
