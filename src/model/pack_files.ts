/**
 * The Deno edge of weight packs: find a model's pack in the cache directory, or build it (once, atomically)
 * from the checkpoint. A pack made from other weights, in another format, or cut short is rebuilt.
 *
 * @module
 */
import { dirFiles, fileSource, writeFileAtomic } from "../io/deno_files.ts";
import { type ModelConfig, parseModelConfig } from "./config.ts";
import {
  checkpointFingerprint,
  openPack,
  type Pack,
  type PackFormat,
  StalePackError,
  writePack,
} from "./pack.ts";
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
  /**
   * Build in this process. By default a child process builds the pack, so the conversion's buffers never
   * count toward the peak memory of the process that trains.
   */
  inProcess?: boolean;
}

/** Converts the checkpoint in `modelDir` into a pack at `path` (atomically). */
export async function buildPack(modelDir: string, path: string, options: LoadPackOptions): Promise<void> {
  const cfg = await readModelConfig(modelDir);
  const files = dirFiles(modelDir);
  const ckpt = await openCheckpoint(files);
  try {
    const fingerprint = await checkpointFingerprint(files, ckpt);
    await writeFileAtomic(path, (sink) =>
      writePack(ckpt, cfg, sink, {
        format: options.format,
        fingerprint,
        onProgress: (done, total, what) => options.onStatus?.(`  packed ${what} (${done}/${total})`),
      }).then(() => {}));
  } finally {
    ckpt.close();
  }
}

async function buildPackInChild(modelDir: string, path: string, options: LoadPackOptions): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      new URL(import.meta.url).pathname,
      modelDir,
      path,
      options.format,
    ],
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream());
  let last = "";
  for await (const chunk of lines) {
    for (const line of chunk.split("\n")) {
      if (!line) continue;
      last = line;
      options.onStatus?.(line);
    }
  }
  const status = await child.status;
  if (!status.success) throw new Error(`packing ${modelDir} failed: ${last}`);
}

/** Reads and validates a model directory's config.json. */
export async function readModelConfig(modelDir: string): Promise<ModelConfig> {
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

/** Opens the pack of `modelDir` in `format`, building it first if there is no valid one. */
export async function loadOrBuildPack(
  modelDir: string,
  options: LoadPackOptions,
): Promise<{ pack: Pack; path: string; built: boolean }> {
  await readModelConfig(modelDir); // a clear error for a missing or non-Qwen2 config, before anything else
  const files = dirFiles(modelDir);
  const ckpt = await openCheckpoint(files);
  try {
    const fingerprint = await checkpointFingerprint(files, ckpt);
    const name = modelDir.replace(/\/+$/, "").split("/").at(-1) || "model";
    const path = `${options.cacheDir}/${name}-${fingerprint.slice(0, 16)}-${options.format}.pack`;
    try {
      const pack = await openPack(fileSource(path), { fingerprint, format: options.format });
      options.onStatus?.(`weights: ${path}`);
      return { pack, path, built: false };
    } catch (e) {
      if (!(e instanceof StalePackError) && !(e instanceof FileNotFoundError)) throw e;
      options.onStatus?.(
        e instanceof StalePackError
          ? `rebuilding weight pack (${e.message})`
          : `packing ${modelDir} as ${options.format} (once)`,
      );
    }
    await Deno.mkdir(options.cacheDir, { recursive: true });
    if (options.inProcess) await buildPack(modelDir, path, options);
    else await buildPackInChild(modelDir, path, options);
    const pack = await openPack(fileSource(path), { fingerprint, format: options.format });
    return { pack, path, built: true };
  } finally {
    ckpt.close();
  }
}

if (import.meta.main) {
  const [modelDir, path, format] = Deno.args;
  try {
    await buildPack(modelDir, path, {
      format: format as PackFormat,
      cacheDir: "",
      onStatus: (m) => console.error(m),
    });
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
