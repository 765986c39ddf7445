/**
 * The child process that downloads a Hub model into the Hugging Face cache (`hub_download.ts`), started by
 * `hub_cache.ts` with only what that takes: the network for the Hub's hosts, reading and writing the hub
 * cache, and the token's variable. Prints the snapshot (or `{"error": message}`) as JSON on stdout; status lines
 * and the progress line go to stderr.
 *
 *   HF_TOKEN=… deno run --allow-net=HOSTS --allow-read=CACHE --allow-write=CACHE --allow-env=HF_TOKEN \
 *     src/cli/hub_child.ts '{"id": {"repo": "org/name", "revision": "main"}, "cacheDir": CACHE, "endpoint": URL}'
 *
 * When the Hub cannot be reached at all, a snapshot the cache already has for the revision is used, with a
 * warning (as `huggingface_hub` does).
 *
 * @module
 */
import { downloadSnapshot, type HubDownloadJob, HubUnreachableError } from "./hub_download.ts";
import { cachedSnapshot } from "./hub_cache.ts";
import { watchParent } from "./children.ts";

async function child(job: HubDownloadJob): Promise<void> {
  const token = Deno.env.get("HF_TOKEN") || undefined;
  const log = (m: string) => console.error(m);
  try {
    const snap = await downloadSnapshot(job, { token, log });
    console.log(JSON.stringify(snap));
  } catch (err) {
    if (!(err instanceof HubUnreachableError)) throw err;
    let cached: { dir: string; commit: string };
    try {
      cached = await cachedSnapshot(job.id, job.cacheDir);
    } catch (missing) {
      throw new Error(`${err.message}; and ${(missing as Error).message}`);
    }
    log(`warning: ${err.message}: using the cached snapshot ${cached.commit.slice(0, 12)}`);
    console.log(JSON.stringify({ ...cached, cached: true }));
  }
}

if (import.meta.main) {
  watchParent();
  try {
    await child(JSON.parse(Deno.args[0]));
  } catch (e) {
    console.log(JSON.stringify({ error: (e as Error).message }));
    Deno.exit(1);
  }
  Deno.exit(0);
}
