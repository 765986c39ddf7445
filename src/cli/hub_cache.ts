/**
 * `--model org/name[@revision]`: a model in the standard Hugging Face cache, used where it is (no copy). The
 * cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, laid out as
 * `huggingface_hub` leaves it: `models--org--name/refs/<branch>` holds a commit hash and
 * `models--org--name/snapshots/<commit>/` the files (symlinks into `blobs/`, which reads follow). The
 * revision is a branch or tag name (default `main`) or a commit hash.
 *
 * Only models already in the cache are found; downloading is not done here.
 *
 * @module
 */

/** `org/name` with an optional `@revision`: what a Hub model id looks like (and a relative path may too). */
const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@([\w./-]+))?$/;

function env(name: string): string | undefined {
  // read only what was granted: no permission prompt for an unset cache variable
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
  return Deno.env.get(name) || undefined;
}

/** The Hugging Face hub cache directory. */
export function hubCacheDir(): string {
  const home = env("HF_HOME") ?? `${env("XDG_CACHE_HOME") ?? `${env("HOME") ?? "."}/.cache`}/huggingface`;
  return env("HF_HUB_CACHE") ?? `${home}/hub`;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * The directory `--model` names: an existing path as it is; else a Hub id's snapshot in the cache; else an
 * error saying where it looked. `undefined` when `model` is neither a path nor a Hub id (left to the
 * command's own error).
 */
export async function resolveModelDir(model: string): Promise<{ dir: string; hub?: string } | undefined> {
  if (await isDir(model)) return { dir: model };
  const m = HUB_ID.exec(model);
  if (!m) return undefined;
  const [, org, name, revision = "main"] = m;
  const repo = `${hubCacheDir()}/models--${org}--${name}`;
  let commit = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    try {
      commit = (await Deno.readTextFile(`${repo}/refs/${revision}`)).trim();
    } catch {
      throw new Error(
        `--model ${model}: not a directory, and not in the Hugging Face cache (no ${repo}/refs/${revision}); ` +
          `download it first (e.g. \`huggingface-cli download ${org}/${name}\`) or give a model directory`,
      );
    }
  }
  const dir = `${repo}/snapshots/${commit}`;
  if (!await isDir(dir)) {
    throw new Error(`--model ${model}: the Hugging Face cache has no snapshot ${dir}`);
  }
  return {
    dir,
    hub: `${org}/${name}@${revision === commit ? commit : `${revision} (${commit.slice(0, 12)})`}`,
  };
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
