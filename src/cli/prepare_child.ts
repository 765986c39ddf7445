/**
 * The child process of {@linkcode prepare} (`src/cli/prepare.ts`): builds or validates the weight pack and
 * the token caches of a run and prints their paths as JSON on stdout (status lines go to stderr).
 *
 *   deno run --allow-read=… --allow-write=CACHE src/cli/prepare_child.ts '{"model": DIR, "weights": "q4", "cacheDir": DIR, "data": [...], "seqLen": N}'
 *
 * @module
 */
import type { PrepareJob } from "./prepare.ts";
import { loadOrBuildPack, readModelConfig } from "../model/pack_files.ts";
import { loadOrBuildTokenCache } from "../data/token_cache_files.ts";
import { parseJsonl, tokenizeExample } from "../data/dataset.ts";
import { encodeTokenCache, noTargetMessage, sha256Hex } from "../data/token_cache.ts";
import { dirFiles, statIfExists, writeFileAtomic } from "../io/deno_files.ts";
import { watchParent } from "./children.ts";
import { exitCleanlyOnSignal } from "./signals.ts";
import { openCheckpoint } from "../model/safetensors.ts";
import { unusedTensors } from "../model/tensor_names.ts";

/** The child: build or validate the pack and token caches, print their paths as JSON. */
async function child(job: PrepareJob): Promise<void> {
  const log = (m: string) => console.error(m);
  await checkTensorNames(job.model, log);
  const { path: pack } = await loadOrBuildPack(job.model, {
    format: job.weights,
    cacheDir: `${job.cacheDir}/packs`,
    onStatus: log,
  });
  const sets: string[] = [];
  const hasTokenizer = (await statIfExists(`${job.model}/tokenizer.json`))?.isFile === true;
  for (const data of job.data) {
    // every line already {"input_ids": [...]}: the tokenizer would only copy them, and its worker costs
    // ~100 MB for Qwen's tokenizer.json, so it is not started (issue 14)
    const pretokenized = hasTokenizer ? await onlyPretokenized(data) : await readDataset(data);
    if (!pretokenized) {
      const { path } = await loadOrBuildTokenCache({
        dataPath: data,
        tokenizerDir: job.model,
        cacheDir: `${job.cacheDir}/tokens`,
        seqLen: job.seqLen,
        keepUntrained: job.keepUntrained,
        seqLenName: "--seq-len",
        onStatus: log,
        // this process is already apart from the one that trains: a worker needs no --allow-run and ends
        // with it (a grandchild process would outlive it)
        isolation: "worker",
      });
      sets.push(path);
    } else {
      sets.push(await pretokenizedCache(job, data, pretokenized));
    }
  }
  console.log(JSON.stringify({ pack, sets }));
}

/** Refuses layers config.json does not have; warns about other tensors no Qwen2 layer reads. */
async function checkTensorNames(model: string, log: (m: string) => void): Promise<void> {
  const cfg = await readModelConfig(model);
  const ckpt = await openCheckpoint(dirFiles(model));
  try {
    const unused = unusedTensors(cfg, ckpt.names(), `${model}`);
    if (unused.length) {
      log(
        `warning: ${model}: ${unused.length} tensor(s) are not used by a Qwen2 model and are ignored: ` +
          `${unused.slice(0, 5).join(", ")}${unused.length > 5 ? ", ..." : ""}`,
      );
    }
  } finally {
    ckpt.close();
  }
}

/** A dataset file's bytes and its parsed lines. */
interface Dataset {
  bytes: Uint8Array<ArrayBuffer>;
  records: ReturnType<typeof parseJsonl>;
}

async function readDataset(dataPath: string): Promise<Dataset> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(dataPath);
  } catch {
    throw new Error(`${dataPath}: dataset file not found`);
  }
  return { bytes, records: parseJsonl(new TextDecoder().decode(bytes), { file: dataPath }) };
}

/**
 * The dataset if every line is `{"input_ids": [...]}`, else undefined: also when a line does not parse,
 * which the tokenizer's path then reports as it always has.
 */
async function onlyPretokenized(dataPath: string): Promise<Dataset | undefined> {
  let dataset: Dataset;
  try {
    dataset = await readDataset(dataPath);
  } catch {
    return undefined;
  }
  const { records } = dataset;
  return records.length > 0 && records.every((r) => r.kind === "tokens") ? dataset : undefined;
}

/**
 * Pre-tokenized `{"input_ids": [...]}` lines encoded into a token cache without a tokenizer: what a model
 * directory without `tokenizer.json` can train and evaluate on, and what any dataset of only such lines uses.
 */
async function pretokenizedCache(job: PrepareJob, dataPath: string, dataset: Dataset): Promise<string> {
  const cfg = await readModelConfig(job.model);
  const { bytes, records } = dataset;
  const bad = records.find((r) => r.kind !== "tokens");
  if (bad) {
    throw new Error(
      `${bad.file}:${bad.line}: ${job.model} has no tokenizer.json, so only pre-tokenized {"input_ids": [...]} lines can be used`,
    );
  }
  // ids are bounded by the model's vocabulary (config.json vocab_size, the embedding's rows), not the
  // tokenizer's: for Qwen2.5 that is 151936 where tokenizer.json has 151665 ids, and an id in between is a
  // valid (untrained padding) row. The tokenizer path bounds them by the tokenizer's size instead.
  const vocab = { vocabSize: cfg.vocabSize } as Parameters<typeof tokenizeExample>[1];
  const tokenized = records.map((r) => tokenizeExample(r, vocab, { seqLen: job.seqLen }));
  const truncated = tokenized.filter((e) => e.truncated > 0).length;
  const examples = tokenized.filter((e) =>
    e.ids.length >= 2 && (job.keepUntrained || e.targets.some((t) => t === 1))
  );
  if (examples.length === 0) throw new Error(noTargetMessage(dataPath, job.seqLen, "--seq-len"));
  const sha = await sha256Hex(bytes);
  const path = `${job.cacheDir}/tokens/${dataPath.split("/").at(-1)}-pretokenized-${
    sha.slice(0, 16)
  }-${job.seqLen}${job.keepUntrained ? "-all" : ""}.tokcache`;
  await Deno.mkdir(`${job.cacheDir}/tokens`, { recursive: true });
  const tokens = examples.reduce((n, e) => n + e.ids.length, 0);
  const targets = examples.reduce((n, e) => n + e.targets.reduce((a, b) => a + b, 0), 0);
  await writeFileAtomic(
    path,
    encodeTokenCache(examples, {
      key: sha,
      datasetSha256: sha,
      tokenizerSha256: "none (pre-tokenized)",
      tokenizerConfigSha256: null,
      datasetFile: dataPath,
      options: {
        seqLen: job.seqLen,
        defaultSystem: null,
        appendEosToText: false,
        ...(job.keepUntrained ? { keepUntrained: true as const } : {}),
      },
      vocabSize: cfg.vocabSize,
      stats: {
        records: records.length,
        examples: examples.length,
        truncated,
        dropped: records.length - examples.length,
        tokens,
        targets,
        longest: tokenized.reduce((n, e) => Math.max(n, e.ids.length + e.truncated), 0),
      },
    }),
  );
  return path;
}

if (import.meta.main) {
  watchParent();
  exitCleanlyOnSignal(); // the parent's stop (or the terminal's Ctrl-C) leaves no half-built pack behind
  try {
    await child(JSON.parse(Deno.args[0]));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
  Deno.exit(0);
}
