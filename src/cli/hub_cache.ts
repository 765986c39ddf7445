/**
 * `--model org/name[@revision]`: a model in the standard Hugging Face cache, used where it is (no copy), and
 * downloaded into it first when it is not there. The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
 * `~/.cache/huggingface/hub`, laid out as `huggingface_hub` leaves it: `models--org--name/refs/<branch>`
 * holds a commit hash and `models--org--name/snapshots/<commit>/` the files (symlinks into `blobs/`, which
 * reads follow). The revision is a branch or tag name (default `main`) or a commit hash.
 *
 * Like `huggingface_hub`, a branch or tag is looked up on the Hub (`$HF_ENDPOINT`, token `$HF_TOKEN` or
 * `$HF_HOME/token`) each time, so a push is seen; missing files are downloaded (`hub_download.ts`) by a
 * child process that may reach only the Hub's hosts and write only the cache. `HF_HUB_OFFLINE=1`, a commit
 * hash whose snapshot is complete, and a Hub that cannot be reached use the cache alone.
 *
 * @module
 */
import {
  hubCacheFolder,
  type HubModelId,
  isCommitHash,
  MODEL_FILES,
  normalizeEndpoint,
  parseHubId,
  SINGLE_WEIGHTS,
  weightFiles,
  WEIGHTS_INDEX,
} from "../io/hub.ts";
import { exists, statIfExists } from "../io/deno_files.ts";
import { spawnChild } from "./children.ts";
import { nearest } from "../util/nearest.ts";
import type { HubSnapshot } from "./hub_download.ts";

function env(name: string): string | undefined {
  // read only what was granted: no permission prompt for an unset variable
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
  return Deno.env.get(name) || undefined;
}

function hfHome(): string {
  return env("HF_HOME") ?? `${env("XDG_CACHE_HOME") ?? `${env("HOME") ?? "."}/.cache`}/huggingface`;
}

/** The Hugging Face hub cache directory. */
export function hubCacheDir(): string {
  return env("HF_HUB_CACHE") ?? `${hfHome()}/hub`;
}

/** Whether `HF_HUB_OFFLINE` is set to a true value (`1`, `ON`, `YES`, `TRUE`, as huggingface_hub reads it). */
export function hubOffline(): boolean {
  return ["1", "ON", "YES", "TRUE"].includes((env("HF_HUB_OFFLINE") ?? "").toUpperCase());
}

/** The access token: `$HF_TOKEN`, else the file `huggingface-cli login` writes (`$HF_HOME/token`). */
async function hubToken(): Promise<string | undefined> {
  const token = env("HF_TOKEN");
  if (token) return token.trim();
  try {
    return (await Deno.readTextFile(`${hfHome()}/token`)).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The snapshot the cache holds for `id` (a commit hash, or a branch or tag through `refs/`); throws saying
 * where it looked.
 */
export async function cachedSnapshot(
  id: HubModelId,
  cacheDir: string,
): Promise<{ dir: string; commit: string }> {
  const repo = `${cacheDir}/${hubCacheFolder(id.repo)}`;
  let commit = id.revision;
  if (!isCommitHash(commit)) {
    try {
      commit = (await Deno.readTextFile(`${repo}/refs/${id.revision}`)).trim();
    } catch {
      throw new Error(
        `${id.repo}@${id.revision} is not in the Hugging Face cache (no ${repo}/refs/${id.revision})`,
      );
    }
  }
  const dir = `${repo}/snapshots/${commit}`;
  if (!(await statIfExists(dir))?.isDirectory) {
    throw new Error(`the Hugging Face cache has no snapshot ${dir}`);
  }
  return { dir, commit };
}

/**
 * Whether the snapshot `dir` has every file a model needs: config.json, the weights (single file, or the
 * index and all its shards), and each tokenizer or generation file either present or marked absent
 * (`.no_exist/`). A snapshot Python downloaded in full has them all.
 */
export async function snapshotComplete(dir: string): Promise<boolean> {
  const noExist = dir.replace(/\/snapshots\/([^/]+)$/, "/.no_exist/$1");
  for (const file of MODEL_FILES.required) if (!await exists(`${dir}/${file}`)) return false;
  for (const file of MODEL_FILES.optional) {
    if (!await exists(`${dir}/${file}`) && !await exists(`${noExist}/${file}`)) return false;
  }
  if (await exists(`${dir}/${SINGLE_WEIGHTS}`)) return true;
  let index: string;
  try {
    index = await Deno.readTextFile(`${dir}/${WEIGHTS_INDEX}`);
  } catch {
    return false;
  }
  for (const shard of weightFiles(index, `${dir}/${WEIGHTS_INDEX}`)) {
    if (!await exists(`${dir}/${shard}`)) return false;
  }
  return true;
}

/**
 * The hosts the download child may reach: the Hub and its storage hosts (`*.hf.co`, `*.huggingface.co`),
 * or with `HF_ENDPOINT` that endpoint's host name alone (any port).
 */
export function hubHosts(endpoint: string): string[] {
  const host = new URL(endpoint).hostname;
  if (host === "huggingface.co" || host === "hf.co") {
    return ["huggingface.co", "*.huggingface.co", "hf.co", "*.hf.co"];
  }
  return [host];
}

/** The download child's flags: the Hub's hosts, the cache, the token variable; nothing else. */
export function hubChildPermissions(cacheDir: string, endpoint: string, script: URL): string[] {
  const flags = [
    "--no-prompt",
    `--allow-net=${hubHosts(endpoint).join(",")}`,
    `--allow-read=${cacheDir}`,
    `--allow-write=${cacheDir}`,
    "--allow-env=HF_TOKEN",
  ];
  if (script.protocol !== "file:") flags.push(`--allow-import=${script.host}`);
  return flags;
}

/** Downloads what `id` needs into the cache in the child process; resolves to the snapshot. */
async function download(id: HubModelId, cacheDir: string): Promise<string> {
  const endpoint = normalizeEndpoint(env("HF_ENDPOINT"));
  const script = new URL("./hub_child.ts", import.meta.url);
  const { denoCommand } = await import("./prepare.ts");
  const token = await hubToken();
  await Deno.mkdir(cacheDir, { recursive: true });
  const child = spawnChild(
    new Deno.Command(denoCommand(), {
      args: [
        "run",
        ...hubChildPermissions(cacheDir, endpoint, script),
        script.href,
        JSON.stringify({ id, cacheDir, endpoint }),
      ],
      env: token ? { HF_TOKEN: token } : {},
      stdin: "piped", // never written: the child ends when this process does
      stdout: "piped",
      stderr: "inherit", // its status lines and progress bar, drawn in place on a terminal
    }),
  );
  const [code, out] = await Promise.all([child.status, new Response(child.stdout).text()]);
  let result: Partial<HubSnapshot> & { error?: string; cached?: boolean };
  try {
    result = JSON.parse(out);
  } catch {
    result = {};
  }
  if (!code.success || !result.dir) {
    throw new Error(result.error ?? `downloading ${id.repo} failed (exit code ${code.code})`);
  }
  // imported here: hub_download.ts needs node:crypto, whose Node layer costs every command ~10 MB idle
  if (!result.cached) await (await import("./hub_download.ts")).linkSnapshot(result as HubSnapshot);
  return result.dir;
}

/**
 * The directory `--model` names: an existing path as it is; else a Hub id's snapshot in the cache,
 * downloaded first where needed; else an error saying what failed. `undefined` when `model` is neither a
 * path nor a Hub id (left to the command's own error).
 */
export async function resolveModelDir(model: string): Promise<{ dir: string; hub?: string } | undefined> {
  // what cannot even be looked at as a path (empty, under a file) is left to the Hub id and the command
  const info = await statIfExists(model).catch(() => undefined);
  if (info?.isDirectory) return { dir: model };
  const id = parseHubId(model);
  if (!id) return undefined;
  const cacheDir = hubCacheDir();
  const named = (dir: string) => {
    const commit = dir.slice(dir.lastIndexOf("/") + 1);
    return `${id.repo}@${id.revision === commit ? commit : `${id.revision} (${commit.slice(0, 12)})`}`;
  };
  let cached: { dir: string; commit: string } | undefined;
  let why = "";
  try {
    cached = await cachedSnapshot(id, cacheDir);
  } catch (err) {
    why = (err as Error).message;
  }
  if (hubOffline()) {
    if (!cached) {
      const local = await notLocal(model);
      throw new Error(
        `--model ${model}: ${local}HF_HUB_OFFLINE is set and ${why}; unset HF_HUB_OFFLINE to download it, ` +
          `or download it first (e.g. \`huggingface-cli download ${id.repo}\`), or give a model directory`,
      );
    }
    return { dir: cached.dir, hub: named(cached.dir) };
  }
  // a commit's snapshot never changes: complete, it needs no network
  if (cached && isCommitHash(id.revision) && await snapshotComplete(cached.dir)) {
    return { dir: cached.dir, hub: named(cached.dir) };
  }
  if (Deno.permissions.querySync({ name: "run", command: "deno" }).state !== "granted") {
    if (cached) return { dir: cached.dir, hub: named(cached.dir) };
    throw new Error(
      `--model ${model}: ${why}, and downloading it needs --allow-run=deno (the download process)`,
    );
  }
  try {
    const dir = await download(id, cacheDir);
    return { dir, hub: named(dir) };
  } catch (err) {
    const typo = await localTypo(model);
    throw new Error(
      `--model ${model}: there is no local directory ${model}${typo}, so it was taken as a Hub model id ` +
        `(write ./${model} for a local path): ${(err as Error).message}`,
    );
  }
}

/** `there is no local directory M (did you mean …?); ` when {@linkcode localTypo} finds one, else "". */
async function notLocal(model: string): Promise<string> {
  const typo = await localTypo(model);
  return typo ? `there is no local directory ${model}${typo}; ` : "";
}

/**
 * ` (did you mean DIR/name?)` when `model` (`DIR/NAME`) names a local directory `DIR` holding a directory
 * whose name is near `NAME`: a mistyped local path that looks like a Hub id; else "".
 */
async function localTypo(model: string): Promise<string> {
  const slash = model.indexOf("/");
  const [dir, name] = [model.slice(0, slash), model.slice(slash + 1)];
  try {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) if (e.isDirectory || e.isSymlink) names.push(e.name);
    const near = nearest(name, names);
    return near ? ` (did you mean ${dir}/${near}?)` : "";
  } catch {
    return ""; // no such local directory: a Hub id after all
  }
}

/**
 * The Hub id (`org/name`) of a snapshot directory of the cache (`…/models--org--name/snapshots/<commit>`), or
 * `undefined` for any other directory: what an adapter names as its base (`base_model_name_or_path`), as PEFT
 * adapters trained on Hub models do.
 */
export function hubIdOfDir(dir: string): string | undefined {
  const m = /(?:^|\/)models--([A-Za-z0-9][\w.-]*?)--([A-Za-z0-9][\w.-]*)\/snapshots\/[0-9a-f]{40}\/?$/.exec(
    dir,
  );
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/** `argv` with a Hub id after `--model` replaced by its cache directory (and a line saying so). */
export async function resolveModelArg(argv: readonly string[], log: (m: string) => void): Promise<string[]> {
  const out = [...argv];
  for (let i = 0; i < out.length; i++) {
    if (out[i] === "--") break;
    const inline = out[i].startsWith("--model=");
    if (out[i] !== "--model" && !inline) continue;
    const value = inline ? out[i].slice("--model=".length) : out[i + 1];
    if (value === undefined) break;
    const resolved = await resolveModelDir(value);
    if (resolved?.hub) {
      log(`model ${resolved.hub}: ${resolved.dir} (Hugging Face cache)`);
      if (inline) out[i] = `--model=${resolved.dir}`;
      else out[i + 1] = resolved.dir;
    }
  }
  return out;
}
