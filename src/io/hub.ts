/**
 * Hugging Face Hub addressing, with no Deno API, so the CLI's downloader, the browser page and
 * {@linkcode urlFiles} share it: a model id `org/name[@revision]`, the URL of a file at a revision
 * (`{endpoint}/{org}/{name}/resolve/{revision}/{file}`, what `huggingface_hub.hf_hub_url` builds), what a
 * `HEAD` of that URL says about the file (`X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size`), the Hub's
 * error replies as messages naming the repository, file and URL, and the files a model needs.
 *
 * Writing the Python cache (`models--org--name/blobs|refs|snapshots`) is the CLI's job
 * (`src/cli/hub_download.ts`); here only the folder name is computed.
 *
 * @module
 */
import { type ModelFiles, urlFiles, type UrlFilesOptions } from "./source.ts";

/** The public Hub (`HF_ENDPOINT` replaces it). */
export const HUB_ENDPOINT = "https://huggingface.co";

/** A model on the Hub at a revision. */
export interface HubModelId {
  /** `org/name`. */
  repo: string;
  /** A branch, a tag or a 40-hex commit hash (default `main`). */
  revision: string;
}

// org and name as the Hub allows them (letters, digits, `-`, `_`, `.`; no leading `-`/`.`, no `--`/`..`
// checks here: the Hub answers those with a clear 404); a revision may hold `/` (`refs/pr/1`)
const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?$/;

/**
 * `org/name[@revision]` as a {@linkcode HubModelId}, or `undefined` when `text` does not look like one (a
 * relative path like `models/tiny` does, so callers try an existing directory first).
 *
 * @example
 * ```ts
 * parseHubId("Qwen/Qwen2.5-0.5B-Instruct@main"); // { repo: "Qwen/Qwen2.5-0.5B-Instruct", revision: "main" }
 * ```
 */
export function parseHubId(text: string): HubModelId | undefined {
  const m = HUB_ID.exec(text);
  if (!m || m[3]?.includes("..") || m[3]?.startsWith("/") || m[3]?.endsWith("/")) return undefined;
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? "main" };
}

/** Whether `revision` is a full commit hash (a snapshot that can never change). */
export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/** The endpoint without a trailing slash (`HF_ENDPOINT` is often written with one). */
export function normalizeEndpoint(endpoint: string = HUB_ENDPOINT): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`HF_ENDPOINT ${JSON.stringify(endpoint)} is not a URL (e.g. https://huggingface.co)`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`HF_ENDPOINT ${endpoint}: only http and https endpoints are supported`);
  }
  return url.href.replace(/\/+$/, "");
}

/**
 * The URL of `file` in `repo` at `revision`: the revision is one path segment (a `/` in it is escaped, as
 * `hf_hub_url` does), the file keeps its `/` separators.
 */
export function hubFileUrl(repo: string, revision: string, file: string, endpoint?: string): string {
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `${normalizeEndpoint(endpoint)}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

/** Options of {@linkcode hubFiles}. */
export interface HubFilesOptions extends Pick<UrlFilesOptions, "fetch" | "cacheFor"> {
  /** The Hub's URL (default {@linkcode HUB_ENDPOINT}). */
  endpoint?: string;
  /** An access token (sent as `Authorization: Bearer`), for private or gated models. */
  token?: string;
}

/**
 * A Hub model as a {@linkcode ModelFiles} read over HTTP (whole small files, byte ranges of the weights), for
 * a browser or any runtime with `fetch`: nothing is stored. Pin a commit hash for a run that must not see a
 * push in the middle.
 *
 * @example
 * ```ts
 * const files = hubFiles({ repo: "Qwen/Qwen2.5-0.5B-Instruct" }); // revision "main", as the CLI's default
 * const config = await files.readText("config.json");
 * ```
 */
export function hubFiles(
  id: Pick<HubModelId, "repo"> & Partial<HubModelId>,
  options: HubFilesOptions = {},
): ModelFiles {
  const repo = id?.repo, revision = id?.revision ?? "main";
  if (typeof repo !== "string" || !parseHubId(repo) || repo.includes("@")) {
    throw new TypeError(
      `hubFiles: expected { repo: "org/name", revision? } (parseHubId("org/name@revision") makes one), got ` +
        (typeof id === "string" ? JSON.stringify(id) : `repo ${JSON.stringify(repo)}`),
    );
  }
  if (typeof revision !== "string" || revision === "") {
    throw new TypeError(
      `hubFiles: revision must be a branch, tag or commit hash (default "main"), got ${
        JSON.stringify(revision)
      }`,
    );
  }
  const base = hubFileUrl(repo, revision, "", options.endpoint);
  return urlFiles(base, {
    name: `${repo}@${revision}`,
    fetch: options.fetch,
    cacheFor: options.cacheFor,
    headers: options.token ? { authorization: `Bearer ${options.token}` } : undefined,
  });
}

/** The cache folder of a model repository, as `huggingface_hub` names it: `models--org--name`. */
export function hubCacheFolder(repo: string): string {
  return `models--${repo.split("/").join("--")}`;
}

/** What the Hub says about a file at a revision (the `HEAD` of its resolve URL, redirects not followed). */
export interface HubFileInfo {
  /** The commit the revision resolved to (`X-Repo-Commit`). */
  commit: string;
  /**
   * The blob id (`X-Linked-Etag`, else `ETag`, without quotes or `W/`): the sha256 of an LFS file's bytes,
   * the git blob sha1 of a file stored in git. Also the blob's name in the cache.
   */
  etag: string;
  /** The file size in bytes (`X-Linked-Size`, else `Content-Length`). */
  size: number;
}

/** An `ETag` value without its weak marker and quotes, as huggingface_hub stores it. */
function normalizeEtag(etag: string): string {
  return etag.trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

/**
 * The {@linkcode HubFileInfo} in the headers of a `HEAD` reply (2xx, or the 3xx redirect to the file's
 * storage); throws naming `what` when the Hub left out the commit, the ETag or the size.
 */
export function hubFileInfo(headers: Headers, what: string): HubFileInfo {
  const commit = headers.get("x-repo-commit");
  const etag = headers.get("x-linked-etag") ?? headers.get("etag");
  const size = headers.get("x-linked-size") ?? headers.get("content-length");
  const missing = [
    commit ? "" : "X-Repo-Commit",
    etag ? "" : "ETag",
    size !== null && /^\d+$/.test(size.trim()) ? "" : "a size (X-Linked-Size or Content-Length)",
  ].filter(Boolean);
  if (missing.length) {
    throw new Error(
      `${what}: the server's reply has no ${missing.join(", ")}; is HF_ENDPOINT a Hugging Face Hub?`,
    );
  }
  const info = { commit: commit!.trim(), etag: normalizeEtag(etag!), size: Number(size!.trim()) };
  // both become path names in the cache: nothing but a hash may pass
  if (!/^[0-9a-f]{40}$/.test(info.commit)) {
    throw new Error(`${what}: X-Repo-Commit ${JSON.stringify(info.commit)} is not a commit hash`);
  }
  if (!/^[\w-]+$/.test(info.etag)) {
    throw new Error(`${what}: ETag ${JSON.stringify(info.etag)} is not a hash the cache can name a file by`);
  }
  return info;
}

/** A non-success reply from the Hub, with the status the caller may act on (404: the file is absent). */
export class HubError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The Hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`, `GatedRepo`, ...). */
  readonly code: string | undefined;
  /** @param status the HTTP status  @param code the `X-Error-Code` header */
  constructor(message: string, status: number, code?: string) {
    super(message);
    this.name = "HubError";
    this.status = status;
    this.code = code;
  }

  /** Whether the reply says this one file does not exist at the revision (the repository does). */
  get entryNotFound(): boolean {
    return this.status === 404 && (this.code === undefined || this.code === "EntryNotFound");
  }
}

/**
 * A clear error for a non-success reply to a request for `file` of `id`: what the Hub said (its
 * `X-Error-Code` and `X-Error-Message` when present), the URL, and what to do.
 */
export function hubReplyError(
  res: { status: number; statusText?: string; headers: Headers },
  id: HubModelId,
  file: string,
  url: string,
  hadToken: boolean,
): HubError {
  const code = res.headers.get("x-error-code") ?? undefined;
  const said = res.headers.get("x-error-message");
  const model = `${id.repo}@${id.revision}`;
  let what: string;
  if (res.status === 401 || res.status === 403) {
    what = code === "GatedRepo"
      ? `${model} is gated (HTTP ${res.status}): accept its terms on the Hub with your account, then set HF_TOKEN to a token of that account`
      : hadToken
      ? `the Hub refused the token in HF_TOKEN for ${model} (HTTP ${res.status}): check it is valid and can read this repository`
      : `${model} needs authentication (HTTP ${res.status}): it is private or gated, or does not exist; set HF_TOKEN to a token that can read it`;
  } else if (res.status === 404 && code === "RepoNotFound") {
    what = `no model ${id.repo} on the Hub`;
  } else if (res.status === 404 && code === "RevisionNotFound") {
    what = `${id.repo} has no revision ${JSON.stringify(id.revision)} (a branch, tag or commit hash)`;
  } else if (res.status === 404) {
    what = `${model} has no file ${file}`;
  } else {
    what = `${model}: ${file}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
  }
  return new HubError(`${what}${said ? ` (the Hub says: ${said})` : ""} — ${url}`, res.status, code);
}

/** The files a model directory needs besides its weights; the weights are {@linkcode weightFiles}. */
export const MODEL_FILES = {
  /** Without it there is no model. */
  required: ["config.json"],
  /** Tokenizer and generation defaults: used when present. */
  optional: ["generation_config.json", "tokenizer.json", "tokenizer_config.json"],
} as const;

/** The single-file checkpoint, which is preferred (as transformers does) over a sharded one. */
export const SINGLE_WEIGHTS = "model.safetensors";
/** The shard index of a sharded checkpoint. */
export const WEIGHTS_INDEX = "model.safetensors.index.json";

/** The shard files named by a `model.safetensors.index.json` (its `weight_map` values), sorted. */
export function weightFiles(indexText: string, where: string): string[] {
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(indexText);
  } catch (err) {
    throw new Error(`${where}: invalid JSON (${(err as Error).message})`);
  }
  const map = index?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new Error(`${where}: no "weight_map" object`);
  }
  const files = new Set<string>();
  for (const [tensor, file] of Object.entries(map)) {
    if (typeof file !== "string" || !/^[\w.-]+(\/[\w.-]+)*$/.test(file) || file.split("/").includes("..")) {
      throw new Error(
        `${where}: weight_map[${JSON.stringify(tensor)}] is not a file name: ${JSON.stringify(file)}`,
      );
    }
    files.add(file);
  }
  if (files.size === 0) throw new Error(`${where}: the weight_map is empty`);
  return [...files].sort();
}
