// A Hugging Face Hub stand-in on 127.0.0.1, shaped as the Hub answers `huggingface_hub`: HEAD and GET of
// /{org}/{name}/resolve/{revision}/{file}, with X-Repo-Commit; files in git answer with a relative 307 to
// /api/resolve-cache/… (which serves them, ETag = git blob sha1); LFS files (*.safetensors) answer with a 302
// to storage on another port (another origin, like the Hub's CDN) carrying X-Linked-Etag (sha256) and
// X-Linked-Size, and the storage honours Range. Errors carry X-Error-Code and
// X-Error-Message as the Hub's do. The hashes here come from WebCrypto over the files' bytes, independent of
// the downloader's streaming hashes.

/** A repository: branch or tag → commit, and per commit its files. */
export interface HubRepo {
  refs: Record<string, string>;
  commits: Record<string, Map<string, Uint8Array>>;
}

/** Options of {@linkcode serveHub}. */
export interface HubServerOptions {
  /** Every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Cut the connection once, after this many bytes of the first whole-file storage GET of `file`. */
  cut?: { file: string; after: number };
  /** Answer cross-origin requests as the Hub does (for a browser page on another origin). */
  cors?: boolean;
  /** Repositories that answer 403 GatedRepo (terms not accepted), as gated models do. */
  gated?: string[];
  /** The host name the storage redirects name instead of 127.0.0.1 (the storage server is on another port). */
  storageHost?: string;
  /** Storage answers a Range request with the whole file (200), as a server without Range support does. */
  ignoreRange?: boolean;
  /** Flip one byte of every storage reply for `file` (a transfer the hash check must catch). */
  corrupt?: string;
}

/** One request the server saw. */
export interface HubRequest {
  method: string;
  path: string;
  range: string | null;
  auth: boolean;
  status: number;
}

/** A running stand-in. */
export interface HubServer {
  endpoint: string;
  host: string;
  requests: HubRequest[];
  close(): Promise<void>;
}

// what the Hub exposes to pages on other origins
const CORS_EXPOSED =
  "X-Repo-Commit, X-Error-Code, X-Error-Message, ETag, Link, Accept-Ranges, Content-Range, X-Linked-Size, X-Linked-ETag";

async function hex(algorithm: string, data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(algorithm, data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The sha256 of `bytes`: an LFS file's ETag and blob name. */
export function sha256(bytes: Uint8Array): Promise<string> {
  return hex("SHA-256", bytes);
}

/** The git blob sha1 of `bytes` (`blob <size>\0` + bytes): a git file's ETag and blob name. */
export function gitSha1(bytes: Uint8Array): Promise<string> {
  const head = new TextEncoder().encode(`blob ${bytes.length}\0`);
  const all = new Uint8Array(head.length + bytes.length);
  all.set(head);
  all.set(bytes, head.length);
  return hex("SHA-1", all);
}

/** Whether the Hub keeps `file` in LFS (weights) rather than git. */
export const isLfs = (file: string) => file.endsWith(".safetensors");

/** The blob name a cache gives `file`'s bytes. */
export function blobName(file: string, bytes: Uint8Array): Promise<string> {
  return isLfs(file) ? sha256(bytes) : gitSha1(bytes);
}

/** Serves `repos` (by `org/name`). */
export function serveHub(repos: Record<string, HubRepo>, options: HubServerOptions = {}): HubServer {
  const requests: HubRequest[] = [];
  const blobs = new Map<string, Uint8Array>();
  let cut = options.cut;
  const handler = async (req: Request) => {
    const url = new URL(req.url);
    const auth = req.headers.get("authorization");
    const res = req.method === "OPTIONS"
      ? new Response(null, { status: 204 })
      : await respond(req, url, auth);
    if (options.cors) {
      res.headers.set("access-control-allow-origin", "*");
      res.headers.set("access-control-allow-headers", "authorization, range");
      res.headers.set("access-control-expose-headers", CORS_EXPOSED);
      res.headers.set("cross-origin-resource-policy", "cross-origin");
    }
    requests.push({
      method: req.method,
      path: decodeURIComponent(url.pathname),
      range: req.headers.get("range"),
      auth: auth !== null,
      status: res.status,
    });
    return res;
  };
  // the Hub, and the storage its LFS redirects point to (another origin, as the Hub's CDN is)
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  const store = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);

  function error(status: number, code: string | null, message: string): Response {
    const headers = new Headers({ "x-error-message": message });
    if (code) headers.set("x-error-code", code);
    return new Response(message, { status, headers });
  }

  function body(req: Request, bytes: Uint8Array, headers: Headers, status = 200): Response {
    headers.set("content-length", String(bytes.length));
    return new Response(req.method === "HEAD" ? null : bytes.slice(), { status, headers });
  }

  async function respond(req: Request, url: URL, auth: string | null): Promise<Response> {
    const storage = /^\/storage\/([0-9a-f]{64})\/(.+)$/.exec(url.pathname);
    if (storage) return serveStorage(req, storage[1], decodeURIComponent(storage[2]));
    if (options.token !== undefined) {
      if (auth === null) return error(401, "RepoNotFound", "Repository not found");
      if (auth !== `Bearer ${options.token}`) {
        return error(401, null, "Invalid credentials in Authorization header");
      }
    }
    // what a small file's resolve URL redirects to on the Hub (same host, relative Location)
    const cached = /^\/api\/resolve-cache\/models\/([^/]+\/[^/]+)\/([0-9a-f]{40})\/(.+)$/.exec(url.pathname);
    const m = cached ?? /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!m) return error(404, null, "not found");
    const [repoId, revision, file] = [m[1], decodeURIComponent(m[2]), decodeURIComponent(m[3])];
    const repo = repos[repoId];
    if (!repo) return error(404, "RepoNotFound", "Repository not found");
    if (options.gated?.includes(repoId)) {
      return error(
        403,
        "GatedRepo",
        `Access to model ${repoId} is restricted and you are not in the authorized list.`,
      );
    }
    const commit = /^[0-9a-f]{40}$/.test(revision) ? revision : repo.refs[revision];
    const files = commit ? repo.commits[commit] : undefined;
    if (!files) return error(404, "RevisionNotFound", "Invalid rev id: " + revision);
    const bytes = files.get(file);
    if (!bytes) return error(404, "EntryNotFound", `${file} does not exist on "${revision}"`);
    const headers = new Headers({ "x-repo-commit": commit, "accept-ranges": "bytes" });
    if (!isLfs(file) && cached) {
      headers.set("etag", `"${await gitSha1(bytes)}"`);
      return body(req, bytes, headers);
    }
    if (!isLfs(file)) {
      // as the Hub answers: a 307 carrying the commit and its own small body's length, but not the file's ETag
      const path = `/api/resolve-cache/models/${repoId}/${commit}/${encodeURIComponent(file)}`;
      headers.set("location", `${path}?etag=%22${await gitSha1(bytes)}%22`);
      return body(req, new TextEncoder().encode(`Temporary Redirect. Redirecting to ${path}`), headers, 307);
    }
    const sha = await sha256(bytes);
    blobs.set(sha, bytes);
    headers.set("x-linked-etag", `"${sha}"`);
    headers.set("x-linked-size", String(bytes.length));
    headers.set("etag", `"${await gitSha1(new TextEncoder().encode(`oid sha256:${sha}`))}"`); // the pointer's
    const origin = `http://${options.storageHost ?? "127.0.0.1"}:${store.addr.port}`;
    headers.set("location", `${origin}/storage/${sha}/${encodeURIComponent(file)}?signed=1`);
    return new Response(null, { status: 302, headers });
  }

  function serveStorage(req: Request, sha: string, file: string): Response {
    const bytes = blobs.get(sha);
    if (!bytes) return error(404, null, "no such object");
    const headers = new Headers({ etag: `"${sha}"`, "accept-ranges": "bytes" });
    const range = options.ignoreRange ? null : /^bytes=(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
    let start = 0, end = bytes.length - 1, status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] === "" ? end : Math.min(end, Number(range[2]));
      if (start > end) {
        headers.set("content-range", `bytes */${bytes.length}`);
        return new Response(null, { status: 416, headers });
      }
      headers.set("content-range", `bytes ${start}-${end}/${bytes.length}`);
      status = 206;
    }
    const part = bytes.subarray(start, end + 1);
    if (cut && cut.file === file && req.method === "GET" && !range) {
      // send the first bytes, then fail the body: the connection closes mid-file
      const after = cut.after;
      cut = undefined;
      headers.set("content-length", String(part.length));
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          controller.enqueue(part.slice(0, after));
          await new Promise((r) => setTimeout(r, 50));
          controller.error(new Error("connection cut by the test"));
        },
      });
      return new Response(stream, { status, headers });
    }
    if (options.corrupt === file) {
      const bad = part.slice();
      bad[bad.length >> 1] ^= 0xff;
      return body(req, bad, headers, status);
    }
    return body(req, part, headers, status);
  }

  const port = server.addr.port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    close: async () => {
      await server.shutdown();
      await store.shutdown();
    },
  };
}

/** A repository whose branch `main` (and tag `v1`) is `commit`, holding the files of directory `dir`. */
export async function repoFromDir(dir: string, commit: string): Promise<HubRepo> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return { refs: { main: commit, v1: commit }, commits: { [commit]: files } };
}
