/**
 * Deno edge module: token caches on disk. {@link loadOrBuildTokenCache} reuses a valid cache file,
 * rebuilds a stale or corrupt one, and writes atomically (temp file + rename).
 *
 * Building runs the tokenizer outside the calling process's JS heap:
 * - `"subprocess"` (default): a child `deno run` of this module tokenizes and writes the cache, so
 *   the caller's RSS and peak RSS (VmHWM) never include the tokenizer. Needs `--allow-run`.
 * - `"worker"`: a module Worker in this process, terminated afterwards. No extra permission, but
 *   the process peak includes the tokenizer and part of its memory stays mapped afterwards.
 *
 * Run as a main module it is that child: `deno run -A token_cache_files.ts '<job json>'`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  buildTokenCache,
  decodeTokenCache,
  resolveTokenCacheOptions,
  type TokenCache,
  tokenCacheKey,
  type TokenCacheOptions,
  tokenizeInWorker,
} from "./token_cache.ts";
import { exists } from "../io/deno_files.ts";
import { formatCount } from "../util/count.ts";

/** Options for {@link loadOrBuildTokenCache}. */
export interface LoadOrBuildTokenCacheOptions extends TokenCacheOptions {
  /** The JSONL dataset file. */
  dataPath: string;
  /** Model (or tokenizer) directory holding `tokenizer.json` and optionally `tokenizer_config.json`. */
  tokenizerDir: string;
  /** Directory for cache files (created if missing). */
  cacheDir: string;
  /** Where tokenization runs; see the module doc. Default "subprocess". */
  isolation?: "subprocess" | "worker";
  /** What the caller calls the sequence length, for messages (the CLI's `--seq-len`); default `seqLen`. */
  seqLenName?: string;
  /** Told why a cache is built ("no cache", "dataset changed", "corrupt: ...") or reused. */
  onStatus?: (message: string) => void;
}

/** Result of {@link loadOrBuildTokenCache}. */
export interface LoadedTokenCache {
  /** The decoded, validated cache. */
  cache: TokenCache;
  /** Its file. */
  path: string;
  /** True if it was (re)built by this call. */
  built: boolean;
  /** Why it was built, or "up to date". */
  reason: string;
}

/** Hex SHA-256 of a file, read in chunks so large files are never held in memory. */
async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const chunk = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(chunk);
    if (n === null) break;
    hash.update(chunk.subarray(0, n));
  }
  return hash.digest("hex");
}

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : join(Deno.cwd(), path);
}

/** Job the parent passes to the child process (as one JSON argument). */
interface ChildJob {
  dataPath: string;
  datasetFile: string;
  tokenizerJsonPath: string;
  tokenizerConfigPath?: string;
  outPath: string;
  options: TokenCacheOptions;
  seqLenName?: string;
}

async function readJob(job: ChildJob) {
  return {
    datasetBytes: await Deno.readFile(job.dataPath),
    datasetFile: job.datasetFile,
    tokenizerJsonBytes: await Deno.readFile(job.tokenizerJsonPath),
    tokenizerConfigBytes: job.tokenizerConfigPath ? await Deno.readFile(job.tokenizerConfigPath) : undefined,
    options: job.options,
    seqLenName: job.seqLenName,
  };
}

async function buildInSubprocess(job: ChildJob, cacheDir: string): Promise<void> {
  const args = [
    "run",
    "--quiet",
    "--no-prompt",
    "--allow-read",
    `--allow-write=${cacheDir}`,
    import.meta.url,
    JSON.stringify(job),
  ];
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" }).output();
  } catch (e) {
    throw new Error(
      `cannot start the tokenizer process (${
        (e as Error).message
      }); grant --allow-run or use isolation "worker"`,
    );
  }
  if (!output.success) {
    const message = new TextDecoder().decode(output.stderr).trim() || `exit code ${output.code}`;
    throw new Error(message);
  }
}

/**
 * Return the token cache of `dataPath` tokenized with the tokenizer in `tokenizerDir`, building
 * it if the cache file is missing, stale (dataset, tokenizer files, options or format changed)
 * or corrupt. The cache file is `<cacheDir>/<dataset file name>-<hash of its absolute path>-T<seqLen>.tokcache`.
 */
export async function loadOrBuildTokenCache(
  options: LoadOrBuildTokenCacheOptions,
): Promise<LoadedTokenCache> {
  const { dataPath, tokenizerDir, cacheDir } = options;
  const tokenizerJsonPath = join(tokenizerDir, "tokenizer.json");
  const configPath = join(tokenizerDir, "tokenizer_config.json");
  if (!await exists(dataPath)) throw new Error(`${dataPath}: dataset file not found`);
  if (!await exists(tokenizerJsonPath)) throw new Error(`${tokenizerJsonPath}: not found`);
  const tokenizerConfigPath = await exists(configPath) ? configPath : undefined;

  const resolved = resolveTokenCacheOptions(
    options,
    tokenizerConfigPath ? await Deno.readTextFile(tokenizerConfigPath) : undefined,
  );
  const parts = {
    datasetSha256: await sha256File(dataPath),
    tokenizerSha256: await sha256File(tokenizerJsonPath),
    tokenizerConfigSha256: tokenizerConfigPath ? await sha256File(tokenizerConfigPath) : null,
    options: resolved,
  };
  const key = await tokenCacheKey(parts);
  const pathTag = createHash("sha256").update(absolute(dataPath)).digest("hex").slice(0, 8);
  // one file per sequence length: train (256) and eval (1024) on the same file do not re-tokenize in turn
  // a file of its own when untrained examples are kept: eval --score all and training alternate freely
  const all = resolved.keepUntrained ? "-all" : "";
  const path = join(cacheDir, `${basename(dataPath)}-${pathTag}-T${resolved.seqLen}${all}.tokcache`);

  let reason = "no cache";
  if (await exists(path)) {
    try {
      const cache = decodeTokenCache(await Deno.readFile(path), { name: path });
      if (cache.meta.key === key) {
        options.onStatus?.(`token cache ${path}: up to date`);
        return { cache, path, built: false, reason: "up to date" };
      }
      const m = cache.meta;
      const changed = [
        m.datasetSha256 !== parts.datasetSha256 && "dataset",
        m.tokenizerSha256 !== parts.tokenizerSha256 && "tokenizer.json",
        m.tokenizerConfigSha256 !== parts.tokenizerConfigSha256 && "tokenizer_config.json",
        JSON.stringify(m.options) !== JSON.stringify(resolved) && "options",
      ].filter(Boolean);
      reason = `stale (${changed.length ? changed.join(", ") + " changed" : "format changed"})`;
    } catch (e) {
      reason = `corrupt: ${(e as Error).message}`;
    }
  }
  options.onStatus?.(`token cache ${path}: ${reason}; tokenizing ${dataPath}`);

  await Deno.mkdir(cacheDir, { recursive: true });
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const job: ChildJob = {
    dataPath,
    datasetFile: dataPath,
    tokenizerJsonPath,
    tokenizerConfigPath,
    outPath: tmp,
    options: {
      seqLen: resolved.seqLen,
      defaultSystem: resolved.defaultSystem,
      appendEosToText: resolved.appendEosToText,
      keepUntrained: resolved.keepUntrained,
    },
    seqLenName: options.seqLenName,
  };
  try {
    if ((options.isolation ?? "subprocess") === "subprocess") {
      await buildInSubprocess(job, cacheDir);
    } else {
      await Deno.writeFile(tmp, await tokenizeInWorker(await readJob(job), progressLines(dataPath, options)));
    }
    const cache = decodeTokenCache(await Deno.readFile(tmp), { name: tmp });
    if (cache.meta.key !== key) {
      throw new Error(`${dataPath} or the tokenizer files changed while tokenizing; retry`);
    }
    await Deno.rename(tmp, path);
    return { cache, path, built: true, reason };
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Progress of a long tokenization as status lines: the first after {@linkcode PROGRESS_FIRST_MS}, then one
 * every {@linkcode PROGRESS_EVERY_MS} (a short file says nothing more).
 */
function progressLines(
  dataPath: string,
  options: LoadOrBuildTokenCacheOptions,
): ((done: number, total: number) => void) | undefined {
  const onStatus = options.onStatus;
  if (!onStatus) return undefined;
  const start = performance.now();
  let next = start + PROGRESS_FIRST_MS;
  return (done, total) => {
    const now = performance.now();
    if (now < next || done >= total) return;
    next = now + PROGRESS_EVERY_MS;
    const seconds = ((now - start) / 1000).toFixed(0);
    onStatus(
      `tokenizing ${dataPath}: ${formatCount(done)} of ${formatCount(total)} records ` +
        `(${Math.floor((100 * done) / total)}%, ${seconds} s)`,
    );
  };
}
const PROGRESS_FIRST_MS = 2000;
const PROGRESS_EVERY_MS = 5000;

/** Child-process entry: tokenize in this process and write the cache to the job's temp path. */
async function childMain(arg: string | undefined): Promise<void> {
  if (!arg) throw new Error("usage: token_cache_files.ts '<job json>'");
  const job = JSON.parse(arg) as ChildJob;
  await Deno.writeFile(job.outPath, await buildTokenCache(await readJob(job)));
}

if (import.meta.main) {
  try {
    await childMain(Deno.args[0]);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(1);
  }
}
