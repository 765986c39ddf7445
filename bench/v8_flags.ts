/**
 * What a V8 flag does to the kernels: the GEMM table (`bench/gemm.ts --quick`) and a training step
 * (`bench/step.ts`) with and without the flag, alternating child processes round by round so that drift on
 * a shared machine hits both sides alike; printed side by side with the ratio (with / without).
 *
 *   deno run -A bench/v8_flags.ts --flag --experimental-wasm-revectorize --model /tmp/m05
 *   deno run -A bench/v8_flags.ts --flag --no-liftoff --rounds 5 --no-step
 *
 * Flags: --flag V8FLAG (required; several with commas), --rounds 3 (GEMM children per side), --model DIR
 * (an MLX q4 checkpoint for the step; without it only GEMMs), --step-rounds 2 (step children per side, each
 * 1 warm-up + 2 measured steps, one thread), --no-step.
 *
 * @module
 */
import { median } from "./measure.ts";

const args = Deno.args;
function flag(name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
const v8 = flag("flag", "");
if (!v8) {
  console.error("usage: deno run -A bench/v8_flags.ts --flag V8FLAG [--model DIR] [--rounds 3]");
  Deno.exit(2);
}
const rounds = Number(flag("rounds", "3"));
const stepRounds = Number(flag("step-rounds", "2"));
const model = flag("model", "");
const here = (p: string) => new URL(p, import.meta.url).pathname;
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

async function deno(
  withFlag: boolean,
  script: string,
  rest: string[],
): Promise<{ out: string; err: string }> {
  const a = [
    "run",
    "-A",
    `--v8-flags=--max-semi-space-size=1${withFlag ? "," + v8 : ""}`,
    here(script),
    ...rest,
  ];
  const o = await new Deno.Command(Deno.execPath(), { args: a, stdout: "piped", stderr: "piped" }).output();
  if (!o.success) throw new Error(`${script} ${withFlag ? v8 : ""} failed:\n${decode(o.stderr)}`);
  return { out: decode(o.stdout), err: decode(o.stderr) };
}

// GEMMs: relaxed variant, one thread, T = 256, rank 8
const gemm = new Map<string, { off: number[]; on: number[]; shape: string }>();
for (let r = 0; r < rounds; r++) {
  for (const on of r % 2 ? [true, false] : [false, true]) {
    const { out } = await deno(on, "gemm.ts", ["--quick", "--json", "--runs", "3"]);
    for (const line of out.split("\n").filter((l) => l.startsWith("{"))) {
      const x = JSON.parse(line);
      if (x.variant !== "relaxed") continue;
      const k = `${x.what} ${x.b_dtype}`;
      const e = gemm.get(k) ?? { off: [], on: [], shape: `${x.m}×${x.n}×${x.k}` };
      (on ? e.on : e.off).push(x.gflops);
      gemm.set(k, e);
    }
  }
  console.error(`GEMM round ${r + 1}/${rounds} done`);
}
console.log(`| product | M×N×K | GF/s | GF/s ${v8} | ratio |`);
console.log("| --- | --- | --: | --: | --: |");
const ratios: number[] = [];
for (const [k, e] of gemm) {
  const off = median(e.off), on = median(e.on);
  ratios.push(on / off);
  console.log(`| ${k} | ${e.shape} | ${off.toFixed(1)} | ${on.toFixed(1)} | ${(on / off).toFixed(2)} |`);
}
console.log(
  `\nGEMM ratio (with / without): median ${median(ratios).toFixed(3)}, range ` +
    `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} over ${ratios.length} products; ` +
    `${rounds} rounds per side, each the median of 3 × 50 ms`,
);

if (model && !args.includes("--no-step")) {
  const steps = { off: [] as number[], on: [] as number[] };
  const losses = { off: new Set<string>(), on: new Set<string>() };
  for (let r = 0; r < stepRounds; r++) {
    for (const on of r % 2 ? [true, false] : [false, true]) {
      const { err } = await deno(on, "step.ts", ["--model", model, "--threads", "1", "--steps", "2"]);
      // "step 2 1 thread: 15.31 s, other processes 0.12 cores" — measured steps follow the warm-up
      const ts = [...err.matchAll(/^step (\d+) [^:]*: ([\d.]+) s/gm)].map((m) => [+m[1], +m[2]]);
      for (const [i, t] of ts) if (i > 1) (on ? steps.on : steps.off).push(t);
      const loss = /loss[^\d-]*(-?[\d.]+)/.exec(err)?.[1];
      if (loss) (on ? losses.on : losses.off).add(loss);
    }
    console.error(`step round ${r + 1}/${stepRounds} done`);
  }
  const off = median(steps.off), on = median(steps.on);
  console.log(
    `\nMeSP step (0.5B shapes from ${model}, q4, T 256, rank 8, one thread): ${off.toFixed(2)} s, with ` +
      `${v8} ${on.toFixed(2)} s, ratio ${(off / on).toFixed(2)}× speed (median of ${steps.off.length} / ` +
      `${steps.on.length} steps)`,
  );
}
console.log(`CPU: ${/model name\s*:\s*(.*)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1]}`);
