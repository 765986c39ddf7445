// The reference run the "runs anywhere" tests compare against: the tiny model made and trained for 3 steps
// by the CLI (`make-model`, `train --json`), and the same 3 steps through the library in this process. Built
// once per `deno test` process (the test files share it through a directory keyed by the process id).
import { assert } from "./_assert.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { openPack } from "../src/model/pack.ts";
import { decodeTokenCache } from "../src/data/token_cache.ts";
import { train, type TrainOptions } from "../src/run/train.ts";
import type { Sequence } from "../src/data/sequence.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { evaluate } from "../src/run/evaluate.ts";
import { generate } from "../src/run/generate.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("src/cli/main.ts", ROOT).href;
const DATA = decodeURIComponent(new URL("data/lumen/train.jsonl", ROOT).pathname);

/** The CLI's flags for the same 3 steps. */
export const CLI_FLAGS = [
  "--steps",
  "3",
  "--seq-len",
  "64",
  "--seed",
  "3",
  "--rank",
  "4",
  "--alpha",
  "8",
  "--lr",
  "0.001",
  "--vocab-chunk",
  "16384",
];

/** The options of the 3 steps, as the library takes them (the CLI gets the same as flags). */
export const OPTIONS = {
  seqLen: 64,
  steps: 3,
  seed: 3,
  lora: { rank: 4, alpha: 8 },
  optimizer: { name: "adamw", lr: 1e-3, schedule: "cosine" },
  // few, large reads of the head: each Range request costs milliseconds in a browser
  vocabChunk: 16384,
} as const satisfies TrainOptions;

/** What the tests need: files to serve and the losses and adapter to match. */
export interface TinyRun {
  /** Folder holding `model/`, `pack` and `tokens` (paths below are relative to it) and `cache/`. */
  dir: string;
  pack: string;
  tokens: string;
  /** The CLI's printed losses (5 decimals) and its adapter's parameters (bits). */
  cliLosses: number[];
  cliParams: number[];
  /** The library's losses and parameters (bits) in this process, from the same pack and token cache. */
  losses: number[];
  params: number[];
}

/** The part of a run built once and shared between the test files through its directory. */
type Files = Pick<TinyRun, "dir" | "pack" | "tokens" | "cliLosses">;

async function deno(args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args, env: { NO_COLOR: "1", ...env } }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, `deno ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  return text;
}

async function build(dir: string): Promise<Files> {
  const env = { MESP_CACHE: `${dir}/cache` };
  await deno(["run", "-A", MAIN, "make-model", "--preset", "tiny", "--out", `${dir}/model`], env);
  const out = await deno(
    [
      "run",
      "-A",
      MAIN,
      "train",
      "--model",
      `${dir}/model`,
      "--data",
      DATA,
      "--out",
      `${dir}/run`,
      "--json",
      ...CLI_FLAGS,
    ],
    env,
  );
  const cliLosses = out.split("\n").filter((l) => l.startsWith('{"step"')).map((l) => JSON.parse(l).loss);
  const find = async (sub: string, ext: string) => {
    for await (const e of Deno.readDir(`${dir}/cache/${sub}`)) {
      if (e.name.endsWith(ext)) return `cache/${sub}/${e.name}`;
    }
    throw new Error(`no ${ext} in ${dir}/cache/${sub}`);
  };
  return { dir, pack: await find("packs", ".pack"), tokens: await find("tokens", ".tokcache"), cliLosses };
}

/** The CLI's way of printing a loss (5 decimals). */
export function printed(loss: number): number {
  return Number(loss.toFixed(5));
}

/** The sequences of a token cache's bytes. */
export function sequences(bytes: Uint8Array): Sequence[] {
  const cache = decodeTokenCache(bytes, { name: "tokens" });
  return Array.from({ length: cache.count }, (_, i) => cache.example(i));
}

/** Float32 values as their bit patterns (so JSON carries them exactly and equality is bitwise). */
export function bits(x: Float32Array): number[] {
  return Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
}

let run: Promise<TinyRun> | undefined;

/** The reference run (built on first use). */
export function tinyRun(): Promise<TinyRun> {
  return run ??= (async () => {
    const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
    const dir = `${tmp}/mesp-tiny-run-${Deno.pid}`;
    let files: Files;
    try {
      await Deno.mkdir(dir);
      await removeStale(tmp);
      try {
        files = await build(dir);
        await Deno.writeTextFile(`${dir}/files.json`, JSON.stringify(files));
      } catch (err) {
        await Deno.writeTextFile(`${dir}/error.txt`, String(err));
        throw err;
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      files = await waitFor(dir); // another test file of this process builds it
    }
    const pack = await openPack(fileSource(`${dir}/${files.pack}`));
    const r = await train(pack, sequences(await Deno.readFile(`${dir}/${files.tokens}`)), [], OPTIONS);
    const adapter = await openAdapter(dirFiles(`${dir}/run`));
    const cli = new Float32Array(r.params.length);
    await readAdapterInto(adapter, loraLayout(pack.config, adapter.config), cli);
    return { ...files, losses: r.losses, params: bits(r.params), cliParams: bits(cli) };
  })();
}

/** The prompt and length of the generation the runtimes repeat with the CLI's adapter. */
export const PROMPT_TOKENS = 8, GENERATED_TOKENS = 6;

/**
 * What the CLI's adapter gives in this process: the mean NLL of the first 4 sequences, and the greedy
 * continuation of the first one's first {@linkcode PROMPT_TOKENS} tokens; a runtime must give the same.
 */
export async function adapterReference(ref: TinyRun): Promise<{ nll: number; tokens: number[] }> {
  const pack = await openPack(fileSource(`${ref.dir}/${ref.pack}`));
  const data = sequences(await Deno.readFile(`${ref.dir}/${ref.tokens}`));
  const adapter = await openAdapter(dirFiles(`${ref.dir}/run`));
  const { nll } = await evaluate(pack, data.slice(0, 4), { adapter, seqLen: OPTIONS.seqLen });
  const tokens: number[] = [];
  const prompt = data[0].ids.slice(0, PROMPT_TOKENS);
  for await (const t of generate(pack, prompt, { adapter, maxTokens: GENERATED_TOKENS, temperature: 0 })) {
    tokens.push(t);
  }
  return { nll, tokens };
}

/** Removes the runs of earlier test processes (older than an hour). */
async function removeStale(tmp: string): Promise<void> {
  for await (const e of Deno.readDir(tmp)) {
    if (!/^mesp-tiny-run-\d+$/.test(e.name) || e.name.endsWith(`-${Deno.pid}`)) continue;
    const { mtime } = await Deno.stat(`${tmp}/${e.name}`);
    if (mtime && Date.now() - mtime.getTime() > 3600_000) {
      await Deno.remove(`${tmp}/${e.name}`, { recursive: true }).catch(() => {});
    }
  }
}

async function waitFor(dir: string): Promise<Files> {
  for (let i = 0; i < 1200; i++) {
    try {
      return JSON.parse(await Deno.readTextFile(`${dir}/files.json`));
    } catch {
      try {
        throw new Error(
          `the tiny run failed in another test file: ${await Deno.readTextFile(`${dir}/error.txt`)}`,
        );
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${dir}/files.json`);
}
