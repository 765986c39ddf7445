/**
 * Downloads what a model needs from the Hugging Face Hub into the cache, laid out as `huggingface_hub`
 * does, so either tool uses what the other fetched:
 *
 *   models--org--name/refs/<revision>            the commit hash the branch or tag resolved to
 *   models--org--name/blobs/<etag>               the file's bytes, named by its sha256 (LFS) or git sha1
 *   models--org--name/snapshots/<commit>/<file>  a relative symlink to ../../blobs/<etag>
 *   models--org--name/.no_exist/<commit>/<file>  an empty marker: the file is not in that commit
 *   .locks/models--org--name/<etag>.lock         held (flock, like Python's filelock) while a blob downloads
 *
 * Every file is first `HEAD`ed at the revision (redirects to storage not followed: the Hub puts
 * `X-Repo-Commit`, `X-Linked-Etag` and `X-Linked-Size` on the redirect itself); the downloads then name the
 * commit, so a push during the download cannot mix two versions. A blob is written to `<etag>.incomplete`
 * and renamed only once its size and hash match what the Hub announced; an interrupted download is resumed
 * from the bytes already there with an HTTP `Range` request. Files already in the snapshot are not fetched.
 *
 * The downloads run in a child process that may reach only the Hub and write only the cache
 * (`hub_child.ts`); the parent makes the symlinks and the ref ({@linkcode linkSnapshot}).
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  hubCacheFolder,
  HubError,
  type HubFileInfo,
  hubFileInfo,
  hubFileUrl,
  type HubModelId,
  hubReplyError,
  MODEL_FILES,
  SINGLE_WEIGHTS,
  weightFiles,
  WEIGHTS_INDEX,
} from "../io/hub.ts";
import { exists, writeFileAtomic } from "../io/deno_files.ts";
import { Progress } from "./progress.ts";

/** What to download. */
export interface HubDownloadJob {
  id: HubModelId;
  /** The hub cache directory (`$HF_HUB_CACHE`). */
  cacheDir: string;
  /** The Hub's URL (`$HF_ENDPOINT`, normalized). */
  endpoint: string;
}

/** Options of {@linkcode downloadSnapshot}. */
export interface HubDownloadOptions {
  /** Sent as `Authorization: Bearer` (to the Hub only: `fetch` drops it on a redirect to another origin). */
  token?: string;
  fetch?: typeof fetch;
  /** Status lines. */
  log?: (message: string) => void;
  /** The progress line (default: a {@linkcode Progress} on stderr). */
  progress?: (label: string, total: number) => { update(done: number): void; finish(): void };
}

/** A snapshot with every file the model needs once {@linkcode linkSnapshot} has linked the new blobs. */
export interface HubSnapshot {
  /** `…/snapshots/<commit>`. */
  dir: string;
  /** `…/models--org--name`. */
  repoDir: string;
  /** The revision asked for, and the commit it resolved to. */
  revision: string;
  commit: string;
  /** Files of the snapshot still to link to their blob. */
  links: { file: string; blob: string }[];
  /** Files and bytes fetched by this call (0 when the cache had them all). */
  files: number;
  bytes: number;
}

/** The Hub could not be reached at all (no reply): the caller may fall back to the cache. */
export class HubUnreachableError extends Error {
  /** @param message what failed */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HubUnreachableError";
  }
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

/** A file of the snapshot to fetch, once its `HEAD` said what it is. */
interface Planned {
  file: string;
  info: HubFileInfo;
}

/**
 * Links the snapshot's new files to their blobs (relative symlinks, as huggingface_hub makes them) and points
 * `refs/<revision>` at the commit, last, so a ref never names a half-made snapshot. Done by the parent
 * process: Deno lets only a process with unscoped read and write permissions create symlinks.
 */
export async function linkSnapshot(snap: HubSnapshot): Promise<void> {
  for (const { file, blob } of snap.links) {
    const pointer = `${snap.dir}/${file}`;
    await Deno.mkdir(parentOf(pointer), { recursive: true });
    await Deno.remove(pointer).catch(() => {}); // a dangling link left by a removed blob
    await Deno.symlink(`${"../".repeat(1 + file.split("/").length)}blobs/${blob}`, pointer);
  }
  if (snap.revision !== snap.commit) {
    await Deno.mkdir(parentOf(`${snap.repoDir}/refs/${snap.revision}`), { recursive: true });
    await writeFileAtomic(`${snap.repoDir}/refs/${snap.revision}`, new TextEncoder().encode(snap.commit));
  }
}

/**
 * Gets every blob `…/snapshots/<commit>/` needs to hold config.json, the weights (model.safetensors, else the shard index and
 * every shard it names) and the tokenizer and generation files the model has, into `blobs/`; returns what
 * {@linkcode linkSnapshot} then links. Needs the network for the Hub and read and write access to the cache.
 */
export async function downloadSnapshot(
  job: HubDownloadJob,
  options: HubDownloadOptions = {},
): Promise<HubSnapshot> {
  const { id, cacheDir, endpoint } = job;
  const doFetch = options.fetch ?? globalThis.fetch;
  const log = options.log ?? ((m: string) => console.error(m));
  const repoDir = `${cacheDir}/${hubCacheFolder(id.repo)}`;
  const auth: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};

  /**
   * `HEAD` of `file` at `revision`: its info, or `undefined` when the commit has no such file. Redirects on the
   * same host are followed (the Hub sends small files through `/api/resolve-cache/…`, a renamed repository to
   * its new name); one to another host is the file's storage, and the Hub's headers on that redirect are the
   * answer (the token is not sent there). Headers of the hops add up, the later winning; a size is taken only
   * from `X-Linked-Size` or a final 2xx reply, never from a redirect's own body.
   */
  async function head(file: string, revision: string): Promise<HubFileInfo | undefined> {
    let url = hubFileUrl(id.repo, revision, file, endpoint);
    const host = new URL(url).host;
    const at = { ...id, revision };
    const seen = new Headers();
    const add = (headers: Headers, final: boolean) => {
      for (const [k, v] of headers) if (final || (k !== "content-length" && k !== "etag")) seen.set(k, v);
    };
    for (let hops = 0;; hops++) {
      let res: Response;
      try {
        res = await doFetch(url, {
          method: "HEAD",
          redirect: "manual",
          headers: { ...auth, "accept-encoding": "identity" },
        });
      } catch (err) {
        throw reachError(err, url);
      }
      await res.body?.cancel();
      const location = res.headers.get("location");
      const where = `${id.repo}: ${file} (${url})`;
      if (res.status >= 300 && res.status < 400 && location) {
        const next = new URL(location, url);
        if (next.host === host && hops < 10) {
          add(res.headers, false);
          url = next.href;
          continue;
        }
        // the storage: what the Hub said on the redirect (an ETag here may be the LFS pointer's: X-Linked-Etag wins)
        for (const [k, v] of res.headers) if (k !== "content-length") seen.set(k, v);
        return hubFileInfo(seen, where);
      }
      if (res.ok) {
        add(res.headers, true);
        return hubFileInfo(seen, where);
      }
      const error = hubReplyError(res, at, file, url, options.token !== undefined);
      if (error.entryNotFound) return undefined;
      throw error;
    }
  }

  function reachError(err: unknown, url: string): Error {
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      return new Error(
        `${url}: this process may reach only the Hub's hosts (${(err as Error).message}); ` +
          `a redirect to another host is refused`,
      );
    }
    return new HubUnreachableError(`cannot reach ${endpoint} (${(err as Error).message}) — ${url}`, {
      cause: err,
    });
  }

  const first = await head(MODEL_FILES.required[0], id.revision);
  if (!first) {
    throw new HubError(
      `${id.repo}@${id.revision} has no config.json: not a transformers model — ${
        hubFileUrl(id.repo, id.revision, "config.json", endpoint)
      }`,
      404,
    );
  }
  const commit = first.commit;
  const snapshot = `${repoDir}/snapshots/${commit}`;
  const noExist = `${repoDir}/.no_exist/${commit}`;
  const plan: Planned[] = [];
  const links: HubSnapshot["links"] = [];
  let files = 0, bytes = 0;
  const inSnapshot = (file: string) => exists(`${snapshot}/${file}`);

  /** Plans `file` unless the snapshot has it; false when the commit has no such file (and notes that). */
  async function want(file: string, known?: HubFileInfo): Promise<boolean> {
    if (await inSnapshot(file)) return true;
    if (await exists(`${noExist}/${file}`)) return false;
    const info = known ?? await head(file, commit);
    if (!info) {
      await Deno.mkdir(parentOf(`${noExist}/${file}`), { recursive: true });
      await Deno.writeFile(`${noExist}/${file}`, new Uint8Array());
      return false;
    }
    plan.push({ file, info });
    return true;
  }

  await want("config.json", first);
  for (const file of MODEL_FILES.optional) await want(file);
  if (!await want(SINGLE_WEIGHTS)) {
    if (!await want(WEIGHTS_INDEX)) {
      throw new HubError(
        `${id.repo}@${id.revision} has neither ${SINGLE_WEIGHTS} nor ${WEIGHTS_INDEX}: mesp reads safetensors ` +
          `weights only — ${hubFileUrl(id.repo, commit, SINGLE_WEIGHTS, endpoint)}`,
        404,
      );
    }
    // the index is needed now, to know the shards
    const planned = plan.findIndex((p) => p.file === WEIGHTS_INDEX);
    let indexPath = `${snapshot}/${WEIGHTS_INDEX}`;
    if (planned >= 0) {
      const [index] = plan.splice(planned, 1);
      await fetchAll([index], true);
      indexPath = `${repoDir}/blobs/${index.info.etag}`;
    }
    for (
      const shard of weightFiles(await Deno.readTextFile(indexPath), `${id.repo}@${commit}/${WEIGHTS_INDEX}`)
    ) {
      if (!await want(shard)) {
        throw new HubError(
          `${id.repo}@${id.revision}: ${WEIGHTS_INDEX} names the shard ${shard}, which the commit does not have — ` +
            hubFileUrl(id.repo, commit, shard, endpoint),
          404,
        );
      }
    }
  }
  await fetchAll(plan);
  return { dir: snapshot, repoDir, revision: id.revision, commit, files, bytes, links };

  /** Downloads the planned files' blobs, with one progress line over their bytes unless `quiet`. */
  async function fetchAll(list: Planned[], quiet = false): Promise<void> {
    const missing: Planned[] = [];
    for (const p of list) {
      links.push({ file: p.file, blob: p.info.etag });
      if (!await exists(`${repoDir}/blobs/${p.info.etag}`)) missing.push(p);
    }
    if (missing.length === 0) return;
    const total = missing.reduce((s, p) => s + p.info.size, 0);
    if (!quiet) {
      log(
        `downloading ${id.repo}@${id.revision} (${commit.slice(0, 12)}), ${missing.length} file(s), ` +
          `${(total / 1e6).toFixed(1)} MB: ${missing.map((p) => p.file).join(", ")} into ${repoDir}`,
      );
    }
    const bar = quiet
      ? { update() {}, finish() {} }
      : options.progress?.("download", total) ?? new Progress("download", { total, unit: "bytes" });
    let done = 0;
    for (const p of missing) {
      await fetchBlob(p, (n) => bar.update(done + n));
      done += p.info.size;
    }
    bar.finish();
    files += missing.length;
    bytes += total;
  }

  /** Fetches one blob into `blobs/<etag>`, resuming `<etag>.incomplete`; `progress(bytes so far)`. */
  async function fetchBlob(p: Planned, progress: (n: number) => void): Promise<void> {
    const blob = `${repoDir}/blobs/${p.info.etag}`;
    const lockDir = `${cacheDir}/.locks/${hubCacheFolder(id.repo)}`;
    await Deno.mkdir(lockDir, { recursive: true });
    await Deno.mkdir(parentOf(blob), { recursive: true });
    const lock = await Deno.open(`${lockDir}/${p.info.etag}.lock`, { create: true, write: true });
    try {
      await lock.lock(true);
      if (await exists(blob)) return; // another process finished it while this one waited
      await downloadInto(`${blob}.incomplete`, p, progress);
      await Deno.rename(`${blob}.incomplete`, blob);
    } finally {
      lock.close(); // releases the lock
    }
  }

  async function downloadInto(
    partial: string,
    p: Planned,
    progress: (n: number) => void,
  ): Promise<void> {
    const url = hubFileUrl(id.repo, commit, p.file, endpoint);
    const { size } = p.info;
    const what = `${id.repo}@${id.revision}: ${p.file}`;
    const hash = blobHash(p.info);
    const out = await Deno.open(partial, { create: true, read: true, write: true });
    try {
      let have = (await out.stat()).size;
      if (have > size) {
        await out.truncate(0);
        have = 0;
      }
      // the bytes already there count toward the hash: read them once
      if (hash && have > 0) {
        for await (const chunk of (await Deno.open(partial)).readable) hash.update(chunk);
      }
      await out.seek(have, Deno.SeekMode.Start);
      if (have > 0) log(`resuming ${p.file} from ${have} of ${size} bytes`);
      progress(have);
      if (have < size) {
        let res: Response;
        try {
          res = await doFetch(url, {
            headers: {
              ...auth,
              "accept-encoding": "identity",
              ...(have > 0 ? { range: `bytes=${have}-` } : {}),
            },
          });
        } catch (err) {
          throw reachError(err, url);
        }
        if (have > 0 && res.status === 200) {
          log(`${p.file}: the server ignored the Range request: downloading it again from the start`);
          await out.truncate(0);
          await out.seek(0, Deno.SeekMode.Start);
          have = 0;
          hash?.reset();
        } else if (have > 0 && res.status === 206) {
          const range = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
          if (!range || Number(range[1]) !== have) {
            await res.body?.cancel();
            throw new Error(
              `${what}: asked to resume at byte ${have}, the server sent Content-Range ` +
                `${JSON.stringify(res.headers.get("content-range"))} — ${url}`,
            );
          }
        } else if (!res.ok) {
          await res.body?.cancel();
          throw hubReplyError(res, id, p.file, url, options.token !== undefined);
        }
        if (!res.body) throw new Error(`${what}: empty reply — ${url}`);
        try {
          for await (const chunk of res.body) {
            if (have + chunk.length > size) {
              throw new Error(`the server sent more than the ${size} bytes the Hub announced`);
            }
            let pos = 0;
            while (pos < chunk.length) pos += await out.write(chunk.subarray(pos));
            hash?.update(chunk);
            have += chunk.length;
            progress(have);
          }
        } catch (err) {
          throw new Error(
            `${what}: download interrupted at ${have} of ${size} bytes (${(err as Error).message}); ` +
              `run the same command again to resume — ${url}`,
            { cause: err },
          );
        }
      }
      if (have !== size) {
        throw new Error(
          `${what}: the download ended at ${have} of the ${size} bytes the Hub announced; ` +
            `run the same command again to resume — ${url}`,
        );
      }
      await out.sync();
      if (hash) {
        const got = hash.digest();
        if (got !== p.info.etag) {
          await Deno.remove(partial).catch(() => {});
          throw new Error(
            `${what}: the downloaded bytes have ${hash.kind} ${got}, but the Hub announced ${p.info.etag}; ` +
              `the partial file was removed: run the command again — ${url}`,
          );
        }
      }
    } finally {
      out.close();
    }
  }
}

/** The hash an ETag names: sha256 of the bytes (LFS) or the git blob sha1 (`blob <size>\0` + bytes). */
interface BlobHash {
  kind: string;
  update(chunk: Uint8Array): void;
  reset(): void;
  digest(): string;
}

/** The hasher that checks a blob against its ETag, or `undefined` when the ETag is neither kind of hash. */
export function blobHash(info: HubFileInfo): BlobHash | undefined {
  const kind = /^[0-9a-f]{64}$/.test(info.etag)
    ? "sha256"
    : /^[0-9a-f]{40}$/.test(info.etag)
    ? "git sha1"
    : "";
  if (!kind) return undefined;
  const start = () => {
    const h = createHash(kind === "sha256" ? "sha256" : "sha1");
    if (kind !== "sha256") h.update(`blob ${info.size}\0`);
    return h;
  };
  let h = start();
  return {
    kind,
    update: (chunk) => void h.update(chunk),
    reset: () => void (h = start()),
    digest: () => h.digest("hex"),
  };
}
