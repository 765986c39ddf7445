/**
 * `plan`: the memory plan of a training (or eval) run, before anything is loaded: every region of the arena
 * with its bytes and purpose, and the predicted whole-process peak. "Will it fit?"
 *
 * @module
 */
import { type CommandSpec, givenFlags, parseArgs } from "./args.ts";
import { fitPositions } from "./preflight.ts";
import { MODEL_FLAGS, runtimeBytes, shownSize, threadsOf } from "./common.ts";
import { defaultAimHint, defaultTarget, mezoIgnored, TRAIN_FLAGS, trainPlanOptions } from "./train_flags.ts";
import { readModelConfig } from "../model/pack_files.ts";
import { formatMB, formatPlan, planMemory, WASM32_BYTES } from "../runtime/arena.ts";
import { type BufferView, planBuffers } from "../engine/plan.ts";
import { describeSchedule, predictedSeconds, scheduled, scheduleOf } from "../engine/schedule.ts";
import { describeSpill, planSpill } from "../engine/spill.ts";
import { kernelConstants } from "../runtime/kernels.ts";
import { chooseWeights } from "./weights.ts";

/** One line for the command list. */
export const description = "print the memory plan and predicted peak of a run without loading weights";

/** The command's flags. */
export const SPEC = {
  name: "plan",
  description,
  flags: {
    ...MODEL_FLAGS,
    ...TRAIN_FLAGS,
    mode: { type: "string", choices: ["train", "eval"], default: "train", description: "what the run does" },
    json: { type: "boolean", description: "print the plan as JSON" },
  },
  epilog: "example: deno task plan --model models/qwen2.5-0.5b --seq-len 256 --rank 8 --max-memory 100MB",
} as const satisfies CommandSpec;

/** Runs `plan`; exits 1 when the prediction exceeds --max-memory. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const cfg = await readModelConfig(args.model);
  const given = givenFlags(argv, SPEC);
  args.seqLen = fitPositions("--seq-len", args.seqLen, given.has("seqLen"), cfg);
  const kernels = await kernelConstants({ variant: args.variant as "relaxed" | "simd" | undefined });
  // every thread has its own GEMM packing scratch
  const threads = threadsOf(args.threads);
  const scratch = kernels.gemmScratchBytes * threads;
  const weights = chooseWeights(cfg, args.weights, args.mode === "eval" ? "checkpoint" : "q4");
  if (!args.json) console.error(weights.line);
  if (args.method === "mezo") { for (const w of mezoIgnored(given)) console.error(`warning: ${w}`); }
  const opts = trainPlanOptions(cfg, args, weights.format, scratch);
  const runtime = runtimeBytes(threads);
  // the schedule --max-memory buys (MeSP training; without it, the default target's): which inputs are
  // saved and which forward tensors kept
  const budget = args.maxMemory === undefined ? undefined : Math.max(0, args.maxMemory - runtime);
  const target = defaultTarget(args.maxMemory, threads);
  const o = scheduled(cfg, { ...opts, mode: args.mode as "train" | "eval" }, budget, target);
  const schedule = o.mode === "train" && (o.method ?? "mesp") === "mesp" ? scheduleOf(cfg, o) : undefined;
  const buffers = planBuffers(cfg, o);
  const plan = planMemory(buffers.regions);
  const peak = plan.bytes + runtime;
  const spill = planSpill(cfg, o);
  const addressable = plan.end <= WASM32_BYTES;
  const fits = addressable && (args.maxMemory === undefined || peak <= args.maxMemory);
  if (args.json) {
    console.log(JSON.stringify({
      regions: plan.regions.map((r) => ({ name: r.name, bytes: r.bytes, purpose: r.purpose })),
      views: buffers.views,
      schedule: schedule && {
        saved_inputs: schedule.slots,
        saved_input_every: schedule.savedInputEvery ?? null,
        recomputed_layer_forwards: schedule.recomputed,
        keep_mlp_layers: schedule.keep.mlp,
        keep_attention_layers: schedule.keep.attention,
        step_flops: schedule.flops,
        default_step_flops: schedule.defaultFlops,
        predicted_step_s: predictedSeconds(schedule.flops, threads),
      },
      arena_bytes: plan.bytes,
      spill_bytes: spill?.bytes ?? 0,
      runtime_bytes: runtime,
      threads,
      predicted_peak_bytes: peak,
      addressable,
      fits,
    }));
  } else {
    console.log(
      formatPlan(plan, {
        extra: [{
          name: "runtime",
          bytes: runtime,
          purpose: `Deno, kernels, host heap${threads > 1 ? `, ${threads - 1} worker(s)` : ""} (estimate)`,
        }],
      }),
    );
    console.log(`\nbuffers inside those regions:\n${formatViews(buffers.views)}`);
    if (schedule) console.log(`\nschedule: ${describeSchedule(schedule, cfg.numLayers, threads)}`);
    if (spill) console.log(`spill (--spill off keeps it in memory): ${describeSpill(spill)}`);
    console.log(`\npredicted whole-process peak: ${formatMB(peak)}`);
    if (!addressable) {
      console.log(
        `does NOT fit: WebAssembly's 32-bit memory holds at most ${formatMB(WASM32_BYTES)}; lower --seq-len`,
      );
    }
    const hint = schedule && defaultAimHint(peak, given, spill !== undefined);
    if (hint) console.log(hint);
    if (args.maxMemory !== undefined) {
      console.log(
        peak <= args.maxMemory
          ? `fits in --max-memory ${shownSize(args.maxMemory)}`
          : `does NOT fit in --max-memory ${shownSize(args.maxMemory)}`,
      );
    }
  }
  return fits ? 0 : 1;
}

/** The views of a plan, one a line: where each lives and why it may. */
function formatViews(views: readonly BufferView[]): string {
  const w = Math.max(...views.map((v) => v.name.length));
  return views.map((v) =>
    `${v.name.padEnd(w)}  in ${v.over} from ${v.offset} (${formatMB(v.bytes)}): ${v.why}`
  ).join("\n");
}
