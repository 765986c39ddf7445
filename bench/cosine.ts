/**
 * How good are the baselines' gradients? (MeSP paper, arXiv 2602.13069, and docs/mesp.md.)
 *
 * - MeZO: cosine similarity between its two-point estimate `(L+ − L−)/(2ε) · z` and the exact gradient, over
 *   many seeds `z`: mean, std, min, max, beside the paper's ≈ 0.001 and the theory √(2/(πn)) for n LoRA
 *   parameters (E|z·ĝ| / |z| with z ~ N(0, I)). Also how well the projected gradient matches the exact
 *   directional derivative z·g (finite-difference error of ε in f32).
 * - MeBP vs MeSP: maximum relative gradient difference max|Δ| / max|g| (they should be bitwise equal).
 *
 *   deno task bench:cosine                         # tiny demo model, a Lumen example, 200 seeds
 *   deno task bench:cosine --model DIR --seeds 50  # e.g. a qwen2.5-0.5b made with make-model
 *
 * Gradients are taken at a fresh PEFT initialisation whose B is then filled with N(0, b-std²) (default
 * 0.01), so A has a gradient too (with B = 0, as PEFT starts, dA is exactly 0; `--b-std 0` keeps that).
 * One engine per method; the MeZO loop reuses its engine and resets θ before every seed.
 *
 * @module
 */
import type { CommandSpec } from "../src/cli/args.ts";
import { benchArgs } from "./args.ts";
import { prepare } from "../src/cli/prepare.ts";
import { Engine } from "../src/engine/engine.ts";
import { Backward } from "../src/engine/backward.ts";
import { forwardBackward } from "../src/engine/step.ts";
import { stepSeed, zoEstimate } from "../src/engine/mezo.ts";
import { type LoraLayout, loraLayout } from "../src/engine/lora.ts";
import type { Method } from "../src/engine/plan.ts";
import { initLora } from "../src/engine/lora_init.ts";
import { seededRandom } from "../src/util/random.ts";
import type { Pack } from "../src/model/pack.ts";
import type { PackFormat } from "../src/model/pack_layout.ts";
import type { Sequence } from "../src/data/sequence.ts";
import { PACK_FORMATS } from "../src/model/pack_layout.ts";
import { median } from "./measure.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const LUMEN = new URL("../data/lumen/train.jsonl", import.meta.url).pathname;

const SPEC = {
  name: "bench:cosine",
  program: "deno task",
  description: "MeZO-vs-exact gradient cosine over many seeds, and MeSP-vs-MeBP gradient difference",
  flags: {
    seeds: { type: "integer", default: 200, min: 2, description: "MeZO directions z" },
    model: { type: "string", value: "DIR", description: "model directory (default: the tiny demo model)" },
    data: { type: "string", value: "FILE", description: "JSONL dataset (default data/lumen/train.jsonl)" },
    example: { type: "integer", default: 0, min: 0, description: "which example of --data" },
    seqLen: { type: "integer", default: 256, min: 2, description: "longest sequence (longer are cut)" },
    weights: { type: "string", choices: PACK_FORMATS, default: "q4", description: "pack format of the base" },
    rank: { type: "integer", default: 8, min: 1, description: "LoRA rank (all seven targets)" },
    zoEps: { type: "number", default: 1e-3, min: 0, description: "MeZO perturbation scale ε" },
    bStd: {
      type: "number",
      default: 0.01,
      min: 0,
      description: "std of LoRA B after init (0: PEFT's B = 0)",
    },
    seed: { type: "integer", default: 0, description: "seed of the initialisation and of the z stream" },
    threads: { type: "integer", default: 1, min: 1, description: "kernel threads" },
    cacheDir: { type: "string", value: "DIR", description: "models, packs, token caches (not ~/.cache)" },
    json: { type: "boolean", description: "also print the summary as one JSON line" },
  },
} as const satisfies CommandSpec;

function log(m: string): void {
  console.error(m);
}

function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The tiny demo model, made once into the cache by `make-model` in a child process. */
async function tinyModel(cache: string): Promise<string> {
  const dir = `${cache}/models/tiny`;
  try {
    await Deno.stat(`${dir}/.bench-made`);
    return dir;
  } catch {
    // not made yet
  }
  log(`making the tiny demo model in ${dir} …`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "make-model", "--preset", "tiny", "--out", dir, "--force"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`make-model failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  await Deno.writeTextFile(`${dir}/.bench-made`, "tiny\n");
  return dir;
}

/** PEFT initialisation (Kaiming-uniform A, B = 0), then B ~ N(0, std²) (Box–Muller from a seeded stream). */
function initParams(layout: LoraLayout, seed: number, bStd: number): Float32Array {
  const params = new Float32Array(layout.totalElements);
  initLora(layout, params, seed);
  if (bStd > 0) {
    const random = seededRandom((seed ^ 0x5bd1e995) >>> 0);
    for (const row of layout.pairs) {
      for (const pair of row) {
        for (let i = 0; i < pair.outDim * layout.rank; i++) {
          const u = 1 - random(), v = random();
          params[pair.b + i] = bStd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
        }
      }
    }
  }
  return params;
}

/** The exact gradient at `params` with MeSP's or MeBP's backward (its own engine). */
async function exactGradient(
  pack: Pack,
  seq: Sequence,
  o: { method: Method; T: number; layout: LoraLayout; params: Float32Array; threads: number },
): Promise<{ loss: number; grads: Float32Array }> {
  const e = await Engine.create(pack, {
    mode: "train",
    method: o.method,
    seqLen: o.T,
    lora: o.layout,
    gradBuffer: true,
    threads: o.threads,
  });
  try {
    e.arena.f32("lora.params").set(o.params);
    const bw = new Backward(e, { ptr: e.p["lora.grad"], perLayer: false, accumulate: false }, {
      mebp: o.method === "mebp",
    });
    const { loss } = await forwardBackward(e, bw, seq.ids, seq.targets, o.T);
    return { loss, grads: e.arena.f32("lora.grad").slice() };
  } finally {
    e.close();
  }
}

function stats(xs: number[]): { mean: number; std: number; min: number; max: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

const fmt = (x: number) => (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(5) : x.toExponential(3));

async function main(): Promise<number> {
  const args = benchArgs(SPEC);
  const cache = args.cacheDir ?? envOr("MESP_CACHE") ?? `${envOr("TMPDIR") ?? "/tmp"}/mesp-bench-cache`;
  await Deno.mkdir(cache, { recursive: true });
  const model = args.model ?? await tinyModel(cache);
  const data = args.data ?? LUMEN;
  const { pack, sets: [examples] } = await prepare(
    { model, weights: args.weights as PackFormat, cacheDir: cache, data: [data], seqLen: args.seqLen },
    log,
  );
  const seq = examples[args.example];
  if (!seq) {
    throw new Error(`${data} has ${examples.length} examples; --example ${args.example} is out of range`);
  }
  const T = Math.min(seq.ids.length, args.seqLen);
  const layout = loraLayout(pack.config, { rank: args.rank, targets: ["all"] });
  const n = layout.totalElements;
  const params = initParams(layout, args.seed, args.bStd);
  log(
    `model ${model} (${args.weights}), ${data} example ${args.example}: T = ${T}; n = ${n} LoRA parameters`,
  );

  // exact gradients, both ways
  let t0 = performance.now();
  const mesp = await exactGradient(pack, seq, { method: "mesp", T, layout, params, threads: args.threads });
  const tMesp = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const mebp = await exactGradient(pack, seq, { method: "mebp", T, layout, params, threads: args.threads });
  const tMebp = (performance.now() - t0) / 1000;
  const g = mesp.grads;
  let maxG = 0, maxD = 0, unequal = 0, gg = 0;
  for (let i = 0; i < n; i++) {
    maxG = Math.max(maxG, Math.abs(g[i]));
    const d = Math.abs(g[i] - mebp.grads[i]);
    maxD = Math.max(maxD, d);
    if (!Object.is(g[i], mebp.grads[i])) unequal++;
    gg += g[i] * g[i];
  }
  const gNorm = Math.sqrt(gg);

  // MeZO: one engine, θ reset before each direction
  const e = await Engine.create(pack, {
    mode: "train",
    method: "mezo",
    seqLen: T,
    lora: layout,
    gradBuffer: true,
    threads: args.threads,
  });
  const cos: number[] = [], relErr: number[] = [];
  let agree = 0;
  t0 = performance.now();
  try {
    const theta = e.arena.f32("lora.params"), z = e.arena.f32("lora.grad");
    for (let s = 0; s < args.seeds; s++) {
      theta.set(params);
      const zs = stepSeed(args.seed, s);
      const est = await zoEstimate(e, [seq], T, zs, args.zoEps);
      e.k.normal_fill(e.p["lora.grad"], n, zs, 0);
      let zg = 0, zz = 0;
      for (let i = 0; i < n; i++) {
        zg += z[i] * g[i];
        zz += z[i] * z[i];
      }
      // cos(coeff·z, g) = sign(coeff) · z·g / (|z| |g|)
      cos.push((Math.sign(est.coeff) * zg) / (Math.sqrt(zz) * gNorm));
      relErr.push(Math.abs(est.coeff - zg) / Math.abs(zg));
      if (Math.sign(est.coeff) === Math.sign(zg)) agree++;
      if ((s + 1) % Math.max(1, Math.floor(args.seeds / 10)) === 0) {
        log(`  MeZO direction ${s + 1}/${args.seeds}`);
      }
    }
  } finally {
    e.close();
  }
  const tZo = (performance.now() - t0) / 1000 / args.seeds;
  const c = stats(cos), theory = Math.sqrt(2 / (Math.PI * n));
  const absCos = stats(cos.map(Math.abs));

  console.log(`model: ${model} (${args.weights}); example ${args.example} of ${data}; T = ${T}`);
  console.log(
    `LoRA: rank ${args.rank} on all seven targets, n = ${n} parameters; B ~ N(0, ${args.bStd}²); loss ${
      mesp.loss.toFixed(5)
    }`,
  );
  console.log("");
  console.log("| MeZO estimate vs exact gradient | value |");
  console.log("|---|---:|");
  console.log(`| directions (seeds) | ${args.seeds} |`);
  console.log(`| cosine: mean ± std | ${fmt(c.mean)} ± ${fmt(c.std)} |`);
  console.log(`| cosine: min / max | ${fmt(c.min)} / ${fmt(c.max)} |`);
  console.log(`| abs(cosine): mean | ${fmt(absCos.mean)} |`);
  console.log(`| theory √(2/(πn)) (E abs(cos) of an exact projection) | ${fmt(theory)} |`);
  console.log(`| paper (reported) | ≈ 0.001 |`);
  console.log(`| sign of (L+ − L−) agrees with z·g | ${agree}/${args.seeds} |`);
  console.log(`| projected gradient vs exact z·g: median relative error | ${fmt(median(relErr))} |`);
  console.log(`| seconds per direction (2 forward passes) | ${tZo.toFixed(2)} |`);
  console.log("");
  console.log("| MeSP vs MeBP | value |");
  console.log("|---|---:|");
  console.log(`| max abs(Δg) / max abs(g) | ${maxD === 0 ? "0 (bitwise equal)" : fmt(maxD / maxG)} |`);
  console.log(`| elements not bitwise equal | ${unequal} of ${n} |`);
  console.log(`| loss MeSP / MeBP | ${mesp.loss.toFixed(7)} / ${mebp.loss.toFixed(7)} |`);
  console.log(`| ‖g‖, max abs(g) | ${fmt(gNorm)} , ${fmt(maxG)} |`);
  console.log(
    `| seconds (engine + forward + backward) MeSP / MeBP | ${tMesp.toFixed(2)} / ${tMebp.toFixed(2)} |`,
  );
  if (args.json) {
    console.log(JSON.stringify({
      model,
      n,
      seeds: args.seeds,
      cos_mean: c.mean,
      cos_std: c.std,
      cos_min: c.min,
      cos_max: c.max,
      abs_cos_mean: absCos.mean,
      theory,
      sign_agree: agree / args.seeds,
      coeff_rel_err_median: median(relErr),
      mesp_mebp_max_rel_diff: maxG > 0 ? maxD / maxG : 0,
      mesp_mebp_unequal: unequal,
    }));
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
