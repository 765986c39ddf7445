// CLI base: the flag parser (src/cli/args.ts), the command dispatcher (src/cli/main.ts), the progress line
// (src/cli/progress.ts) and process memory (src/runtime/memory.ts).
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  type CommandSpec,
  HelpRequested,
  helpText,
  kebabCase,
  parseArgs,
  UsageError,
  usageLine,
} from "../src/cli/args.ts";
import { COMMANDS, main } from "../src/cli/main.ts";
import { formatDuration, Progress } from "../src/cli/progress.ts";
import { datasetLine } from "../src/cli/prepare.ts";
import { parseProcStatus, processMemory } from "../src/runtime/memory.ts";

const SPEC = {
  name: "train",
  description: "fine-tune a LoRA adapter",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    steps: { type: "integer", default: 100, min: 1, description: "optimizer steps" },
    lr: { type: "number", default: 1e-4, min: 0, description: "learning rate" },
    rank: { type: "integer", min: 1, max: 256, description: "LoRA rank" },
    budget: { type: "size", default: "300MB", description: "memory budget" },
    targets: { type: "list", choices: ["q", "k", "v", "o"], default: ["q", "v"], description: "modules" },
    method: { type: "string", choices: ["mesp", "mebp", "mezo"], default: "mesp", description: "gradients" },
    verbose: { type: "boolean", description: "print more" },
    cache: { type: "boolean", default: true, description: "cache tokens" },
    tags: { type: "list", description: "free tags" },
  },
} as const satisfies CommandSpec;

const USAGE = "usage: mesp train --model DIR [options]";

function parseError(argv: string[], message: string): Promise<Error> {
  return assertRejects(() => parseArgs(argv, SPEC), message);
}

Deno.test("parseArgs: values, defaults, --x=v, booleans, --no-x, lists, sizes", () => {
  const a = parseArgs(["--model", "m", "--steps=20", "--lr", "-3e-4", "--verbose", "--no-cache"], {
    ...SPEC,
    flags: { ...SPEC.flags, lr: { ...SPEC.flags.lr, min: -1 } },
  });
  assertEquals(a.model, "m");
  assertEquals(a.steps, 20);
  assertEquals(a.lr, -3e-4); // a value may start with a single dash
  assertEquals(a.verbose, true);
  assertEquals(a.cache, false);
  assertEquals(a._, []);

  const b = parseArgs(["--model=x=y", "--targets", "q,k", "--targets", "o", "--budget", "1.5GiB"], SPEC);
  assertEquals(b.model, "x=y"); // only the first = splits
  assertEquals(b.targets, ["q", "k", "o"]);
  assertEquals(b.budget, 1.5 * 1024 ** 3);
  assertEquals([b.steps, b.lr, b.method, b.verbose, b.cache, b.rank], [
    100,
    1e-4,
    "mesp",
    false,
    true,
    undefined,
  ]);
  assertEquals(b.tags, []);

  const c = parseArgs(["--model", "m", "--verbose=false", "--cache=true", "--budget", "1000"], SPEC);
  assertEquals([c.verbose, c.cache, c.budget, c.targets], [false, true, 1000, ["q", "v"]]);
  // defaults of sizes given as text are parsed; list defaults are fresh copies
  assertEquals(parseArgs(["--model", "m"], SPEC).budget, 300e6);
  parseArgs(["--model", "m"], SPEC).targets.push("o");
  assertEquals(parseArgs(["--model", "m"], SPEC).targets, ["q", "v"]);
});

Deno.test("parseArgs: positionals only when declared, and after --", async () => {
  const spec = { ...SPEC, positionals: "FILE..." } as const;
  const a = parseArgs(["a.jsonl", "--model", "m", "b.jsonl", "--", "--not-a-flag"], spec);
  assertEquals(a._, ["a.jsonl", "b.jsonl", "--not-a-flag"]);
  assertEquals(usageLine(spec), "usage: mesp train --model DIR [options] FILE...");
  await parseError(["--model", "m", "extra"], `unexpected argument "extra"\n${USAGE}`);
});

Deno.test("parseArgs: every error names the flag and shows the usage line", async () => {
  const cases: [string[], string][] = [
    [["--model", "m", "--stepz", "3"], "unknown flag --stepz (did you mean --steps?)"],
    [["--model", "m", "--frobnicate"], "unknown flag --frobnicate\n"],
    [["--model", "m", "-x"], "unknown flag -x"],
    [["--steps", "3"], "missing required flag --model"],
    [["--model"], "--model needs a value (DIR)"],
    [["--model", "--verbose"], "--model needs a value (DIR)"],
    [["--model", "m", "--steps", "abc"], `--steps: expected an integer, got "abc"`],
    [["--model", "m", "--steps", "2.5"], `--steps: expected an integer, got "2.5"`],
    [["--model", "m", "--steps", "0"], "--steps: must be ≥ 1, got 0"],
    [["--model", "m", "--rank", "512"], "--rank: must be ≤ 256, got 512"],
    [["--model", "m", "--lr", "fast"], `--lr: expected a number, got "fast"`],
    [["--model", "m", "--lr", "Infinity"], `--lr: expected a number, got "Infinity"`],
    [["--model", "m", "--lr", "0x10"], `--lr: expected a number, got "0x10"`],
    [["--model", "m", "--lr", "-1"], "--lr: must be ≥ 0, got -1"],
    [["--model", "m", "--budget", "lots"], `--budget: cannot read size "lots"`],
    [["--model", "m", "--budget", "3 parsecs"], `--budget: cannot read size "3 parsecs"`],
    [["--model", "m", "--method", "sgd"], `--method: expected one of mesp, mebp, mezo, got "sgd"`],
    [["--model", "m", "--targets", "q,x"], `--targets: expected one of q, k, v, o, got "x"`],
    [["--model", "m", "--targets", "q,,v"], `--targets: empty item in list "q,,v"`],
    [["--model", "m", "--steps", "1", "--steps", "2"], "--steps given more than once"],
    [
      ["--model", "m", "--verbose=yes"],
      `--verbose: a boolean flag takes no value (or =true / =false), got "yes"`,
    ],
    [["--model", "m", "--no-verbose=1"], `--no-verbose takes no value, got "1"`],
    [["--model", "m", "--no-steps"], "--no-steps: --steps is not a boolean flag"],
  ];
  for (const [argv, message] of cases) {
    const err = await parseError(argv, message);
    assert(err instanceof UsageError, `${argv.join(" ")}: a UsageError`);
    assert(
      err.message.endsWith(`\n${USAGE}\n(see --help)`),
      `${argv.join(" ")}: usage line in ${err.message}`,
    );
  }
  // two missing required flags are reported together
  const two = {
    ...SPEC,
    flags: { ...SPEC.flags, out: { type: "string", required: true, description: "o" } },
  } as const;
  await assertRejects(() => parseArgs([], two), "missing required flags --model, --out");
});

Deno.test("parseArgs: --help / -h throw HelpRequested with the generated help page", async () => {
  for (const flag of ["--help", "-h"]) {
    const err = await assertRejects(() => parseArgs(["--steps", "x", flag], SPEC), "help requested");
    assert(err instanceof HelpRequested);
    assertEquals(err.text, helpText(SPEC));
  }
  const text = helpText(SPEC);
  const lines = text.split("\n");
  assertEquals(lines.slice(0, 5), ["mesp train: fine-tune a LoRA adapter", "", USAGE, "", "flags:"]);
  const row = (re: RegExp) => assert(lines.some((l) => re.test(l)), `${re} in\n${text}`);
  row(/^ {2}--model DIR +model directory \(required\)$/);
  row(/^ {2}--steps N +optimizer steps \(default 100\)$/);
  row(/^ {2}--budget SIZE +memory budget \(default 300MB\)$/);
  row(/^ {2}--targets A,B,\.\.\. +modules \(one of q, k, v, o; default q,v\)$/);
  row(/^ {2}--method mesp\|mebp\|mezo +gradients \(default mesp\)$/);
  row(/^ {2}--verbose +print more$/);
  row(/^ {2}--cache +cache tokens \(default true\)$/);
  // descriptions start in one column
  const flagLines = lines.filter((l) => l.startsWith("  -"));
  assertEquals(new Set(flagLines.map((l) => l.search(/(?<=\S  +)\S/))).size, 1);
  assert(lines.some((l) => l.startsWith("  -h, --help")), text);
  assertEquals(kebabCase("shardSize"), "shard-size");
});

Deno.test("parseArgs: the parsed object is typed from the spec", () => {
  const a = parseArgs(["--model", "m"], SPEC);
  // compile-time checks: these assignments fail `deno check` if the inferred types are wrong
  const model: string = a.model;
  const steps: number = a.steps;
  const rank: number | undefined = a.rank;
  const method: "mesp" | "mebp" | "mezo" = a.method;
  const targets: ("q" | "k" | "v" | "o")[] = a.targets;
  const verbose: boolean = a.verbose;
  assertEquals([model, steps, rank, method, targets, verbose], [
    "m",
    100,
    undefined,
    "mesp",
    ["q", "v"],
    false,
  ]);
});

/** Runs `main` capturing console output. */
async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const log = console.log, error = console.error;
  let out = "", err = "";
  console.log = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { code: await main(argv), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("main: command list, unknown command, help, errors as `error: <message>` with exit code 1", async () => {
  assert("make-model" in COMMANDS);
  const none = await capture([]);
  assertEquals(none.code, 1);
  assert(none.err.includes("commands:") && none.err.includes("make-model  write a random Qwen2"), none.err);
  const help = await capture(["--help"]);
  assertEquals(help.code, 0);
  assert(help.out.includes("make-model"), help.out);
  const unknown = await capture(["frobnicate"]);
  assertEquals(unknown.code, 1);
  assert(unknown.err.startsWith(`error: unknown command "frobnicate"\n`), unknown.err); // nothing near it
  const typo = await capture(["trian"]);
  assertEquals(typo.code, 1);
  assert(typo.err.startsWith(`error: unknown command "trian" (did you mean train?)`), typo.err);
  assert(typo.err.includes("usage: deno task <command> [flags]"), typo.err);
  const proto = await capture(["toString"]);
  assertEquals(proto.code, 1); // not a command, even though every object has it
  const cmdHelp = await capture(["make-model", "--help"]);
  assertEquals(cmdHelp.code, 0);
  assert(cmdHelp.out.startsWith("mesp make-model: "), cmdHelp.out);
  assertEquals((await capture(["help", "make-model"])).out, cmdHelp.out);
  const bad = await capture(["make-model", "--preset", "huge", "--out", "x"]);
  assertEquals(bad.code, 1);
  assert(bad.err.startsWith(`error: --preset: expected one of qwen2.5-0.5b`), bad.err);
  assert(bad.err.includes("usage: mesp make-model --preset NAME --out DIR [options]"), bad.err);
  assert(!bad.err.includes("    at "), "no stack trace without MESP_DEBUG=1");
});

Deno.test("progress: TTY redraws in place, throttled; plain lines otherwise; rate, ETA, fields, finish", () => {
  let t = 0;
  let out = "";
  const p = new Progress("train", {
    total: 200,
    unit: "step",
    tty: true,
    intervalMs: 100,
    now: () => t,
    write: (s) => void (out += s),
  });
  t = 1000;
  p.update(50, { loss: "2.31", mem: "84.2 MB" });
  assertEquals(
    out,
    "\rtrain  [#####---------------]  50/200  25%  50.0 step/s  ETA 3s  loss 2.31  mem 84.2 MB\x1b[K",
  );
  out = "";
  t = 1050;
  p.update(60); // within the interval: nothing drawn
  assertEquals(out, "");
  t = 2000;
  p.update(100, { loss: "2.00" });
  assertEquals(
    out,
    "\rtrain  [##########----------]  100/200  50%  50.0 step/s  ETA 2s  loss 2.00  mem 84.2 MB\x1b[K",
  );
  out = "";
  p.log("checkpoint saved");
  assertEquals(out.split("\n")[0], "\r\x1b[Kcheckpoint saved");
  out = "";
  t = 4000;
  p.finish();
  assertEquals(
    out,
    "\rtrain  [##########----------]  100/200  50%  25.0 step/s  4s  loss 2.00  mem 84.2 MB\x1b[K\n",
  );
  out = "";
  p.update(150);
  p.finish();
  assertEquals(out, "", "nothing after finish");

  // not a terminal: whole lines, bytes shown as MB, no bar when the total is unknown
  const lines: string[] = [];
  t = 0;
  const q = new Progress("write", {
    unit: "bytes",
    tty: false,
    now: () => t,
    write: (s) => void lines.push(s),
  });
  t = 2000;
  q.update(50e6);
  t = 3000;
  q.update(60e6); // throttled (default 5 s for plain lines)
  q.finish();
  assertEquals(lines, ["write  50.0 MB  25.0 MB/s\n", "write  60.0 MB  20.0 MB/s  3s\n"]);

  // not a terminal, with a total: the last count is printed once, by finish (with the time taken)
  const plain: string[] = [];
  t = 0;
  const f = new Progress("train", {
    total: 4,
    unit: "step",
    tty: false,
    now: () => t,
    write: (s) => void plain.push(s),
  });
  t = 1000;
  f.update(1);
  t = 9000;
  f.update(4, { loss: "1.50" }); // the interval has passed, but this is the end
  f.finish();
  assertEquals(plain, [
    "train  [#####---------------]  1/4  25%  1.00 step/s  ETA 3s\n",
    "train  [####################]  4/4  100%  0.444 step/s  9s  loss 1.50\n",
  ]);

  // a resumed run's bar starts at its step: the rate and ETA count only the steps since (once 646 step/s)
  out = "";
  t = 0;
  const r = new Progress("train", {
    total: 200,
    start: 120,
    unit: "step",
    tty: true,
    now: () => t,
    write: (s) => void (out += s),
  });
  t = 2000;
  r.update(121);
  assertEquals(out, "\rtrain  [############--------]  121/200  61%  0.500 step/s  ETA 2m38s\x1b[K");
  assertEquals([formatDuration(59.4), formatDuration(187), formatDuration(7500)], ["59s", "3m07s", "2h05m"]);
});

Deno.test("memory: parseProcStatus reads VmRSS / VmHWM in kB; processMemory gives peak ≥ rss > 0 on Linux", () => {
  const status = "Name:\tdeno\nVmPeak:\t 9000 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t4\n";
  assertEquals(parseProcStatus(status), { rss: 1024 * 1024, peak: 2048 * 1024 });
  assertEquals(parseProcStatus("VmRSS:\t 12 kB\n"), { rss: 12 * 1024 });
  assertEquals(parseProcStatus("Name: x\n"), undefined);
  const m = processMemory();
  assert(m.rss > 0, `rss ${m.rss}`);
  if (Deno.build.os === "linux") {
    assert(m.peak !== undefined && m.peak >= m.rss, `peak ${m.peak} ≥ rss ${m.rss}`);
    // a 64 MB allocation, touched, shows up in the peak
    const before = processMemory().peak!;
    const big = new Uint8Array(64 * 1024 * 1024).fill(1);
    const after = processMemory();
    assert(after.peak! >= before && after.peak! >= after.rss, "peak never decreases");
    assert(after.rss > 32 * 1024 * 1024 && big[12345] === 1, `rss ${after.rss} includes the touched buffer`);
  }
});

Deno.test("dataset line: dropped examples name the --seq-len that keeps them, within the model's positions", () => {
  const stats = {
    records: 10,
    examples: 6,
    truncated: 5,
    dropped: 4,
    tokens: 100,
    targets: 50,
    longest: 900,
  };
  assertEquals(
    datasetLine("d.jsonl", stats, 40, false, 1024),
    "d.jsonl: 6 examples, 100 tokens, 50 trained; 5 cut to --seq-len 40; 4 dropped (no trained token within " +
      "the first 40; the longest example has 900 tokens: --seq-len 900 keeps every one)",
  );
  assert(
    datasetLine("d.jsonl", stats, 40, false, 512).endsWith(
      "the longest example has 900 tokens, more than the model's 512 positions: --seq-len 512 keeps the most)",
    ),
  );
  // a cache made before the longest was recorded: no hint, no "undefined"
  const { longest: _, ...old } = stats;
  assert(datasetLine("d.jsonl", old, 40).endsWith("4 dropped (no trained token within the first 40)"));
});
