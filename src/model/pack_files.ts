/**
 * The Deno edge of weight packs: find a model's pack in the cache directory, or build it (once, atomically)
 * from the checkpoint. A pack made from other weights, in another format, or cut short is rebuilt. The CLI
 * calls this in a child process (`src/cli/prepare.ts`), so conversion buffers never count toward the peak
 * memory of the process that trains.
 *
 * @module
 */
import { dirFiles, fileSource, statIfExists, writeFileAtomic } from "../io/deno_files.ts";
import { type ModelConfig, parseModelConfig } from "./config.ts";
import { checkpointFingerprint, type ContentChecksum, contentChecksum } from "./checkpoint_fingerprint.ts";
import { openPack, type Pack } from "./pack.ts";
import { StalePackError } from "./pack_header.ts";
import type { PackFormat } from "./pack_layout.ts";
import { writePack } from "./pack_writer.ts";
import { openCheckpoint } from "./safetensors.ts";
import { FileNotFoundError } from "../io/source.ts";

/** Options for {@linkcode loadOrBuildPack}. */
export interface LoadPackOptions {
  /** Weight format of the pack. */
  format: PackFormat;
  /** Where packs are kept. */
  cacheDir: string;
  /** Told what happens: "building …", progress, "reusing …". */
  onStatus?: (message: string) => void;
}

/** Reads and validates a model directory's config.json. */
export async function readModelConfig(modelDir: string): Promise<ModelConfig> {
  const info = await statIfExists(modelDir);
  if (!info) throw new Error(`${modelDir}: no such model directory`);
  if (info.isFile) {
    throw new Error(
      `${modelDir} is a file, not a model directory (config.json, *.safetensors, tokenizer files)`,
    );
  }
  const files = dirFiles(modelDir);
  const text = await files.readText("config.json");
  if (text === undefined) throw new Error(`${modelDir}: no config.json (is this a model directory?)`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${modelDir}/config.json: invalid JSON (${(e as Error).message})`);
  }
  return parseModelConfig(json, { file: `${modelDir}/config.json` });
}

/**
 * Content checksums of a model's files, remembered in `<cacheDir>/checksums.json` by absolute path, size
 * and modification time: every byte is hashed once, and again only when a file's size or mtime changes
 * (without `hash`, a file not remembered is an error instead).
 */
function memoChecksums(modelDir: string, options: FingerprintOptions, hash = true): ContentChecksum {
  const memoPath = `${options.cacheDir}/checksums.json`;
  return async (name, source, size) => {
    const path = await Deno.realPath(`${modelDir}/${name}`);
    const mtime = (await Deno.stat(path)).mtime?.getTime() ?? null;
    let memo: Record<string, { size: number; mtime: number | null; checksum: string }> = {};
    try {
      memo = JSON.parse(await Deno.readTextFile(memoPath));
    } catch {
      // none yet, or unreadable: hash again
    }
    const known = memo[path];
    if (known && known.size === size && known.mtime === mtime && mtime !== null) return known.checksum;
    if (!hash) throw new Error(`${path}: no remembered checksum`);
    options.onStatus?.(`hashing ${path} (${(size / 1e6).toFixed(1)} MB; again only when it changes)`);
    const checksum = await contentChecksum(source, size);
    memo[path] = { size, mtime, checksum };
    await Deno.mkdir(options.cacheDir, { recursive: true });
    await writeFileAtomic(memoPath, new TextEncoder().encode(JSON.stringify(memo, null, 1)));
    return checksum;
  };
}

/** Where checksums are remembered, and what is said while hashing. */
export type FingerprintOptions = Pick<LoadPackOptions, "cacheDir" | "onStatus">;

/**
 * The fingerprint of the checkpoint in `modelDir` (as its pack records it, and a training run's state keeps
 * it as `config.model`) from remembered checksums only: undefined when a file of the model was never hashed
 * as it is now (or anything fails), so a caller with only a warning to give reads nothing large.
 */
export async function knownFingerprint(
  modelDir: string,
  options: FingerprintOptions,
): Promise<string | undefined> {
  const memo = memoChecksums(modelDir, options, false);
  try {
    const files = dirFiles(modelDir);
    const ckpt = await openCheckpoint(files);
    try {
      return await checkpointFingerprint(files, ckpt, memo);
    } finally {
      ckpt.close();
    }
  } catch {
    return undefined;
  }
}

/** Opens the pack of `modelDir` in `format`, building it first if there is no valid one. */
export async function loadOrBuildPack(
  modelDir: string,
  options: LoadPackOptions,
): Promise<{ pack: Pack; path: string; built: boolean }> {
  const cfg = await readModelConfig(modelDir); // a clear error for a missing or non-Qwen2 config, first
  const files = dirFiles(modelDir);
  const ckpt = await openCheckpoint(files);
  try {
    const fingerprint = await checkpointFingerprint(files, ckpt, memoChecksums(modelDir, options));
    const name = modelDir.replace(/\/+$/, "").split("/").at(-1) || "model";
    const path = `${options.cacheDir}/${name}-${fingerprint.slice(0, 16)}-${options.format}.pack`;
    try {
      const pack = await openPack(fileSource(path), { fingerprint, format: options.format });
      // one status line per cached file, as the token caches say theirs; the `weights:` line is the command's
      options.onStatus?.(`weight pack ${path}: up to date`);
      return { pack, path, built: false };
    } catch (e) {
      if (!(e instanceof StalePackError) && !(e instanceof FileNotFoundError)) throw e;
      options.onStatus?.(
        e instanceof StalePackError
          ? `rebuilding weight pack (${e.message})`
          : `weight pack ${path}: no pack; packing ${modelDir} as ${options.format} (once)`,
      );
    }
    await Deno.mkdir(options.cacheDir, { recursive: true });
    await writeFileAtomic(path, (sink) =>
      writePack(ckpt, cfg, sink, {
        format: options.format,
        fingerprint,
        onProgress: (done, total, what) => options.onStatus?.(`  packed ${what} (${done}/${total})`),
      }).then(() => {}));
    const pack = await openPack(fileSource(path), { fingerprint, format: options.format });
    return { pack, path, built: true };
  } finally {
    ckpt.close();
  }
}
