// `eval --score trained` scores what training's validation loss scores: after a short run with --val, the
// same adapter on the same file gives the run's last validation loss bit for bit, with no --weights or --seq-len
// (eval takes what the adapter's run recorded: q4, not the f32 checkpoint's own, and its --seq-len, not 1024);
// `--score all` (the default) scores every predicted token of the chat examples, more tokens and another number.
import { assert, assertEquals } from "./_assert.ts";
import { tinyRun } from "./_tiny_run.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).href;
const DATA = new URL("../data/lumen/", import.meta.url).pathname;

async function mespOutput(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", MAIN, ...args], env }).output();
  const [stdout, stderr] = [out.stdout, out.stderr].map((b) => new TextDecoder().decode(b));
  assert(out.success, `mesp ${args.join(" ")} failed:\n${stderr}`);
  return { stdout, stderr };
}

async function mesp(env: Record<string, string>, ...args: string[]): Promise<string> {
  return (await mespOutput(env, ...args)).stdout;
}

Deno.test("eval --score trained equals training's validation loss; --score all scores every token", async () => {
  const run = await tinyRun();
  const env = { NO_COLOR: "1", MESP_CACHE: `${run.dir}/cache` };
  const out = await Deno.makeTempDir({ prefix: "mesp-eval-score-" });
  try {
    const model = `${run.dir}/model`;
    const { stdout, stderr } = await mespOutput(
      env,
      ...["train", "--model", model, "--data", `${DATA}train.jsonl`, "--val", `${DATA}valid.jsonl`],
      ...["--steps", "2", "--seq-len", "64", "--rank", "4", "--out", `${out}/run`, "--json"],
    );
    const lines = stdout.split("\n").filter((l) => l.includes('"val_loss"')).map((l) => JSON.parse(l));
    const val = lines.at(-1).val_loss as number;
    const evalArgs = ["eval", "--model", model, "--data", `${DATA}valid.jsonl`, "--adapter", `${out}/run`];
    // no --seq-len and no --weights: eval takes the run's (64, q4)
    const common = ["--json"];
    const trained = JSON.parse(await mesp(env, ...evalArgs, ...common, "--score", "trained"));
    const all = JSON.parse(await mesp(env, ...evalArgs, ...common));
    assertEquals(trained.score, "trained");
    assertEquals(trained.weights, "q4");
    assertEquals(trained.nll, val);
    assert(all.tokens > trained.tokens, `${all.tokens} vs ${trained.tokens}`);
    assert(all.nll !== trained.nll);
    // no --model either: the adapter names its base (train wrote it as base_model_name_or_path)
    const noModel = evalArgs.filter((a, i) => a !== "--model" && evalArgs[i - 1] !== "--model");
    const based = await mespOutput(env, ...noModel, ...common, "--score", "trained");
    assertEquals(JSON.parse(based.stdout).nll, val);
    const gen = [
      "generate",
      "--adapter",
      `${out}/run`,
      "--prompt",
      "hi",
      "--max-tokens",
      "3",
      "--temperature",
      "0",
    ];
    const generated = await mespOutput(env, ...gen);
    assertEquals(generated.stdout, (await mespOutput(env, ...gen, "--model", model)).stdout);
    assert(generated.stderr.includes(`--model ${model}: the adapter's base model`), generated.stderr);
    // what train says of each set: the validation set's examples and trained tokens are what eval scored
    assert(
      stderr.includes(
        `${DATA}valid.jsonl: ${trained.sequences} examples, ${all.tokens + all.sequences} tokens, ` +
          `${trained.tokens} trained`,
      ),
      stderr,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("eval --score all scores every example, also those with no trained target within --seq-len", async () => {
  const run = await tinyRun();
  const env = { NO_COLOR: "1", MESP_CACHE: `${run.dir}/cache` };
  const records = (await Deno.readTextFile(`${DATA}valid.jsonl`)).trim().split("\n").length;
  const evalArgs = [
    "eval",
    "--model",
    `${run.dir}/model`,
    "--data",
    `${DATA}valid.jsonl`,
    "--weights",
    "f32",
  ];
  // at 20 tokens the chat examples' replies are cut off: nothing is trained, everything is predicted
  const all = JSON.parse(await mesp(env, ...evalArgs, "--seq-len", "20", "--json"));
  assertEquals(all.sequences, records);
  assertEquals(all.tokens, records * 19);
  const trained = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...evalArgs, "--seq-len", "20", "--score", "trained"],
    env,
  }).output();
  assert(!trained.success);
  assert(
    new TextDecoder().decode(trained.stderr).includes("no example has a training target within the first 20"),
  );
  // training's cache of the same file and length still leaves those out (a file of its own)
  const wide = JSON.parse(await mesp(env, ...evalArgs, "--seq-len", "40", "--json", "--score", "trained"));
  assert(wide.sequences < records, `${wide.sequences} of ${records}`);
  // what was dropped is said, with the --seq-len that keeps every example
  const said = await mespOutput(env, ...evalArgs, "--seq-len", "40", "--score", "trained");
  const m = said.stderr.match(
    /dropped \(no trained token within the first 40; the longest example has (\d+) tokens: --seq-len (\d+) keeps every one\)/,
  );
  assert(m && m[1] === m[2], said.stderr);
  const kept = JSON.parse(await mesp(env, ...evalArgs, "--seq-len", m[2], "--json", "--score", "trained"));
  assertEquals(kept.sequences, records);
});
