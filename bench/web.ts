/**
 * The web page next to the CLI, on the same model, data and settings, measured in one run: the tab's peak
 * memory while training (VmHWM of Chromium's renderer process, which holds the page and all its workers, reset
 * with `clear_refs` once the data is tokenized), the first visit's conversion time and the peak up to then
 * (the tokenizer worker's), and the median step time; the CLI's whole-process peak and step time beside them.
 * Needs -A: Deno grants reading /proc of other processes only with it.
 *
 *   deno task bench:web --model DIR [--data FILE] [--steps 4] [--seq-len 256] [--threads N]
 *
 * The model folder goes through the page's file input like a user's; Chromium is Debian's, driven by
 * playwright-core (as in tests/web_test.ts).
 *
 * @module
 */
import { serveWeb } from "../web/serve.ts";
import { stepTime } from "./measure.ts";
import { CHROMIUM, FLAGS, playwright, rendererPeakMB, resetRendererPeak } from "./chromium.ts";
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

async function browserRun(): Promise<
  { peakMB: number; visitPeakMB: number; idleMB: number; step: number; convertS: number; threads: number }
> {
  const pw = await playwright();
  if (typeof pw === "string") throw new Error(pw);
  const server = serveWeb({ root: ROOT, port: 0 });
  const profile = await Deno.makeTempDir({ prefix: "mesp-bench-web-" });
  const ctx = await pw.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
  });
  try {
    const page = await ctx.newPage();
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
    return {
      peakMB: trainPeakMB,
      visitPeakMB,
      idleMB,
      step: stepTime(events as number[]),
      convertS,
      threads: Number(env.match(/(\d+) kernel thread/)?.[1] ?? 1),
    };
  } finally {
    await ctx.close();
    await server.shutdown();
    await Deno.remove(profile, { recursive: true });
  }
}

const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
console.log(`# ${cpu}; ${model}, T ${seqLen}, ${steps} steps, page defaults (AdamW, rank 8, all targets)`);
const browser = await browserRun();
const cli = await cliRun();
console.log(`| where | threads | peak while training | s/step | before: converting + tokenizing |`);
console.log(`|---|---:|---:|---:|---:|`);
console.log(
  `| web page (Chromium tab) | ${browser.threads} | ${browser.peakMB.toFixed(1)} MB | ${
    browser.step.toFixed(2)
  } | ${browser.convertS.toFixed(1)} s, peak ${browser.visitPeakMB.toFixed(1)} MB |`,
);
console.log(
  `| CLI (\`deno task train\`) | ${threads} | ${cli.peakMB.toFixed(1)} MB | ${
    cli.step.toFixed(2)
  } | (child processes) |`,
);
console.log(
  `step time, tab / CLI: ${(browser.step / cli.step).toFixed(2)}×; the tab before a model: ${
    browser.idleMB.toFixed(1)
  } MB`,
);
