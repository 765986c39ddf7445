/**
 * Preparing a run — packing the weights and tokenizing the datasets, each once and cached — happens in a
 * child process: parsing checkpoint headers, hashing files and the tokenizer (~100 MB) would otherwise
 * count toward the peak memory of the process that trains. The parent then opens only the finished pack
 * and token caches.
 *
 * @module
 */
import { fileSource } from "../io/deno_files.ts";
import { spawnChild } from "./children.ts";
import { openPack, type Pack } from "../model/pack.ts";
import type { PackFormat } from "../model/pack_layout.ts";
import { decodeTokenCache } from "../data/token_cache.ts";
import type { TokenizeStats } from "../data/dataset.ts";
import { formatCount } from "../util/count.ts";
import type { Sequence } from "../data/sequence.ts";

/** What to prepare. */
export interface PrepareJob {
  model: string;
  weights: PackFormat;
  cacheDir: string;
  /** Datasets to tokenize (JSONL paths). */
  data: string[];
  seqLen: number;
  /** Keep examples with no trained target within `seqLen` (eval --score all scores every position). */
  keepUntrained?: boolean;
}

/** A prepared run: the pack and one list of sequences per dataset. */
export interface Prepared {
  pack: Pack;
  sets: Sequence[][];
}

/**
 * What the commands are granted (the `deno.json` tasks say the same): read and write the paths given on the
 * command line (not known in advance), the caches' and the Hub's environment variables, and starting Deno
 * itself (the preparation child; the Hub download child, which alone reaches the network). No network, FFI
 * or system information.
 */
export const CLI_PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env=INIT_CWD,MESP_CACHE,XDG_CACHE_HOME,HOME,MESP_DEBUG,HF_HOME,HF_HUB_CACHE,HF_ENDPOINT,HF_TOKEN,HF_HUB_OFFLINE",
  "--allow-run=deno",
];

/**
 * The program that starts a Deno child: this Deno's own path where that may be run, else `deno` from the
 * PATH (what `--allow-run=deno` grants; the path it resolves to can differ from `Deno.execPath()`, e.g.
 * through a symlink).
 */
export function denoCommand(): string {
  const exec = Deno.execPath();
  return Deno.permissions.querySync({ name: "run", command: exec }).state === "granted" ? exec : "deno";
}

/**
 * What the child may do: read the model, the datasets, the cache and mesp's sources, write the cache, and
 * (when mesp runs from a URL) import from mesp's host. Nothing else, whatever the parent was granted.
 */
export function childPermissions(job: PrepareJob, script: URL): string[] {
  const read = [...modelReadPaths(job.model), ...job.data, job.cacheDir];
  const source = new URL("../../", script);
  // its tokenizer worker and the lazily imported tokenizer are read (or imported) from mesp's own files
  if (source.protocol === "file:") read.push(decodeURIComponent(source.pathname));
  const flags = [`--allow-read=${read.join(",")}`, `--allow-write=${job.cacheDir}`];
  if (source.protocol !== "file:") flags.push(`--allow-import=${source.host}`);
  return flags;
}

/**
 * What reading a model directory takes: the directory, and for a Hugging Face cache snapshot
 * (`models--org--name/snapshots/<commit>/`, whose files are symlinks into `../../blobs/`) its repository.
 */
export function modelReadPaths(model: string): string[] {
  const snapshot = /^(.*\/models--[^/]+)\/snapshots\/[^/]+\/?$/.exec(model);
  return snapshot ? [model, snapshot[1]] : [model];
}

/** Runs the preparation in a child process, forwarding its status lines to `log`, and opens the results. */
export async function prepare(job: PrepareJob, log: (m: string) => void): Promise<Prepared> {
  // a module URL (file: or https:), not an import: the parent never loads the tokenizer or checkpoint code
  const script = new URL("./prepare_child.ts", import.meta.url);
  const child = spawnChild(
    new Deno.Command(denoCommand(), {
      args: ["run", ...childPermissions(job, script), script.href, JSON.stringify(job)],
      stdin: "piped", // never written: it closes when this process ends, and the child ends with it
      stdout: "piped",
      stderr: "piped",
    }),
  );
  let last = "";
  const status = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      for (const line of chunk.split("\n")) {
        if (!line) continue;
        last = line;
        // the child's own error is rethrown below, printed once by the command
        if (!line.startsWith("error: ")) log(line);
      }
    }
  })();
  const out = new Response(child.stdout).text();
  const [code] = await Promise.all([child.status, status]);
  if (!code.success) throw new Error(last.replace(/^error: /, "") || "preparing the run failed");
  const result = JSON.parse(await out) as { pack: string; sets: string[] };
  const pack = await openPack(fileSource(result.pack));
  const sets: Sequence[][] = [];
  for (const [i, path] of result.sets.entries()) {
    const cache = decodeTokenCache(await Deno.readFile(path), { name: path });
    const stats = cache.meta.stats;
    log(datasetLine(job.data[i], stats, job.seqLen, job.keepUntrained, pack.config.maxPositionEmbeddings));
    if (stats.dropped > stats.examples && !job.keepUntrained) {
      log(
        `warning: ${
          job.data[i]
        }: most examples (${stats.dropped} of ${stats.records}) have no trained token ` +
          `within the first ${job.seqLen} tokens and are left out: a longer --seq-len keeps them`,
      );
    }
    const seqs: Sequence[] = [];
    for (let i = 0; i < cache.count; i++) seqs.push(cache.example(i));
    sets.push(seqs);
  }
  return { pack, sets };
}

/**
 * What a dataset holds once tokenized, in one line: `data.jsonl: 40 examples, 5,120 tokens, 1,234 trained;
 * 2 cut to --seq-len 256; 1 dropped (no trained token within --seq-len 256)`.
 */
export function datasetLine(
  path: string,
  s: TokenizeStats,
  seqLen: number,
  keepUntrained = false,
  positions = Infinity,
): string {
  const n = formatCount;
  const examples = `${n(s.examples)} example${s.examples === 1 ? "" : "s"}`;
  let line = `${path}: ${examples}, ${n(s.tokens)} tokens, ${n(s.targets)} trained`;
  if (s.truncated > 0) line += `; ${n(s.truncated)} cut to --seq-len ${seqLen}`;
  // what keeps them: nothing cut (the longest is known in caches made since 2026-12-03), within the model
  const n0 = s.longest ?? 0;
  const keeps = !n0
    ? ""
    : n0 <= positions
    ? `; the longest example has ${n(n0)} tokens: --seq-len ${n0} keeps every one`
    : `; the longest example has ${n(n0)} tokens, more than the model's ${n(positions)} positions: ` +
      `--seq-len ${positions} keeps the most`;
  const why = keepUntrained ? "shorter than 2 tokens" : `no trained token within the first ${seqLen}${keeps}`;
  if (s.dropped > 0) line += `; ${n(s.dropped)} dropped (${why})`;
  return line;
}
