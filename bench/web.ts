/**
 * The web page next to the CLI, on the same model, data and settings, measured in one run: the tab's peak
 * memory while training (VmHWM of Chromium's renderer process, which holds the page and all its workers, reset
 * with `clear_refs` once the data is tokenized), the first visit's conversion time and the peak up to then
 * (the tokenizer worker's), and the median step time; the CLI's whole-process peak and step time beside them.
 * The page runs once per `--spill` setting (its "Spill to browser storage" box; each in a fresh profile), so
 * the tab's peak and step time with and without the OPFS spill come side by side.
 * Needs -A: Deno grants reading /proc of other processes only with it.
 *
 *   deno task bench:web --model DIR [--data FILE] [--steps 4] [--seq-len 256] [--threads N] [--spill on,off]
 *
 * The model folder goes through the page's file input like a user's; Chromium is Debian's, driven by
 * playwright-core (as in tests/web_test.ts).
 *
 * @module
 */
import { serveWeb } from "../web/serve.ts";
import { cpuModel, stepTime } from "./measure.ts";
import { launchChromium, rendererPeakMB, resetRendererPeak } from "./chromium.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const MAIN = new URL("../src/cli/main.ts", import.meta.url).href;

const SPEC = {
  name: "bench:web",
  program: "deno task",
  description: "the web page next to the CLI on the same model and data: peak memory and step time",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    data: {
      type: "string",
      value: "FILE",
      default: `${ROOT}data/lumen/train.jsonl`,
      description: "training JSONL",
    },
    steps: { type: "integer", default: 4, min: 1, description: "training steps" },
    seqLen: { type: "integer", default: 256, min: 1, description: "tokens per sequence" },
    threads: { type: "integer", min: 1, description: "the CLI's threads (default: every core)" },
    spill: {
      type: "list",
      choices: ["on", "off"],
      default: ["on", "off"],
      description: "the page's spill setting of each page run, one after the other (on: OPFS, off: memory)",
    },
  },
} as const satisfies CommandSpec;
const args = benchArgs(SPEC);
const { model, data, steps } = args;
const seqLen = String(args.seqLen);
const threads = String(args.threads ?? navigator.hardwareConcurrency);

async function cliRun(): Promise<{ peakMB: number; step: number }> {
  const out = await Deno.makeTempDir({ prefix: "mesp-bench-web-cli-" });
  const args = [
    "run",
    "-A",
    "--v8-flags=--max-semi-space-size=1",
    MAIN,
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    `${out}/run`,
    "--steps",
    String(steps),
    "--seq-len",
    seqLen,
    "--threads",
    threads,
    "--json",
  ];
  const r = await new Deno.Command(Deno.execPath(), { args, env: { NO_COLOR: "1" } }).output();
  const text = new TextDecoder().decode(r.stdout), err = new TextDecoder().decode(r.stderr);
  if (!r.success) throw new Error(`CLI train failed:\n${err}`);
  const elapsed = text.split("\n").filter((l) => l.startsWith('{"step"')).map((l) => JSON.parse(l).elapsed_s);
  const peak = err.match(/peak memory ([\d.]+) MB/);
  await Deno.remove(out, { recursive: true });
  return { peakMB: peak ? Number(peak[1]) : NaN, step: stepTime(elapsed) };
}

interface PageRun {
  peakMB: number;
  visitPeakMB: number;
  idleMB: number;
  step: number;
  convertS: number;
  threads: number;
  /** The plan's arena (MB), as the page shows it. */
  arena: string;
}

async function browserRun(spill: boolean): Promise<PageRun> {
  const browser = await launchChromium({ prefix: "mesp-bench-web-" });
  const server = serveWeb({ root: ROOT, port: 0 });
  try {
    const page = await browser.context.newPage();
    await page.goto(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/web/`);
    const text = (id: string) => page.textContent(`#${id}`).then((t) => t ?? "");
    const until = async (id: string, re: RegExp) => {
      for (;;) {
        const t = await text(id);
        if (re.test(t)) return t;
        if ((await page.getAttribute(`#${id}`, "class")) === "error") throw new Error(`#${id}: ${t}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await until("env", /Ready/);
    const idleMB = await rendererPeakMB();
    const t0 = performance.now();
    await page.setInputFiles("#model-files", [...Deno.readDirSync(model)].map((e) => `${model}/${e.name}`));
    await until("model-status", /^Ready/);
    const convertS = (performance.now() - t0) / 1000;
    await page.fill("#seq-len", seqLen);
    await page.fill("#steps", String(steps));
    await page.setInputFiles("#train-file", data);
    await until("data-status", /examples/);
    if (spill) await page.check("#spill");
    else await page.uncheck("#spill");
    const visitPeakMB = await rendererPeakMB();
    await resetRendererPeak();
    await page.click("#train-button");
    await until("train-status", /^Done/);
    const trainPeakMB = await rendererPeakMB();
    type PageState = { mespPage: { stepEvents: { elapsed: number }[] } };
    const events = await page.evaluate(() =>
      (globalThis as unknown as PageState).mespPage.stepEvents.map((e) => e.elapsed)
    );
    const env = await text("env");
    const plan = await text("plan-status");
    if (plan.includes("spilling") !== spill) throw new Error(`spill ${spill}, but the page planned: ${plan}`);
    return {
      arena: plan.match(/arena\): ([\d.]+ MB)/)?.[1] ?? "?",
      peakMB: trainPeakMB,
      visitPeakMB,
      idleMB,
      step: stepTime(events as number[]),
      convertS,
      threads: Number(env.match(/(\d+) kernel thread/)?.[1] ?? 1),
    };
  } finally {
    await browser.close();
    await server.shutdown();
  }
}

console.log(
  `# ${cpuModel()}; ${model}, T ${seqLen}, ${steps} steps, page defaults (AdamW, rank 8, all targets)`,
);
const pages = [];
for (const v of args.spill) pages.push({ spill: v === "on", ...await browserRun(v === "on") });
const cli = await cliRun();
console.log(`| where | threads | arena | peak while training | s/step | before: converting + tokenizing |`);
console.log(`|---|---:|---:|---:|---:|---:|`);
for (const p of pages) {
  console.log(
    `| web page (Chromium tab), spill ${p.spill ? "on" : "off"} | ${p.threads} | ${p.arena} | ${
      p.peakMB.toFixed(1)
    } MB | ${p.step.toFixed(2)} | ${p.convertS.toFixed(1)} s, peak ${p.visitPeakMB.toFixed(1)} MB |`,
  );
}
console.log(
  `| CLI (\`deno task train\`, its default spill) | ${threads} | | ${cli.peakMB.toFixed(1)} MB | ${
    cli.step.toFixed(2)
  } | (child processes) |`,
);
for (const p of pages) {
  console.log(`step time, tab (spill ${p.spill ? "on" : "off"}) / CLI: ${(p.step / cli.step).toFixed(2)}×`);
}
const on = pages.find((p) => p.spill), off = pages.find((p) => !p.spill);
if (on && off) {
  console.log(
    `spill on / off in the tab: peak ${on.peakMB.toFixed(1)} vs ${off.peakMB.toFixed(1)} MB (${
      (on.peakMB - off.peakMB).toFixed(1)
    } MB), step time ${(on.step / off.step).toFixed(2)}×`,
  );
}
console.log(`the tab before a model: ${pages.map((p) => p.idleMB.toFixed(1)).join(", ")} MB`);
