// A static file server on 127.0.0.1 for the tests that load mesp the way its users do (over HTTP): byte
// ranges, ETags, optional cross-origin isolation, and the misbehaviours the library must detect.

/** Options of {@linkcode serveDir}. */
export interface ServeOptions {
  /** Send COOP/COEP headers, so pages are cross-origin isolated (SharedArrayBuffer, threads). */
  isolate?: boolean;
  /** Answer Range requests with the whole file (status 200), like a server without Range support. */
  ignoreRange?: boolean;
  /** Extra routes: a path → the response body (HTML pages, generated scripts). */
  routes?: Record<string, { body: string | Uint8Array; type: string }>;
  /** Other directories served under a path prefix, e.g. `{ "/fixture/": "/tmp/x" }`. */
  mounts?: Record<string, string>;
  /** Bytes to serve for a path instead of the file (e.g. a pack that changes mid-run). */
  override?: (path: string) => Uint8Array | undefined;
  /** A path prefix under which PUT stores the body in memory, served from then on (an object store). */
  writable?: string;
}

/** A running server: its origin, the requests it saw, and a way to stop it. */
export interface Served {
  origin: string;
  host: string;
  /**
   * Each request's path, Range header, status, `x-mesp-tag` header (tests tag a run's phases), and for a PUT
   * its `Content-Length` header and the bytes that arrived.
   */
  requests: {
    path: string;
    method: string;
    range: string | null;
    status: number;
    tag: string | null;
    contentLength?: string | null;
    received?: number;
  }[];
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  ".ts": "application/typescript",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".html": "text/html",
};

function typeOf(path: string): string {
  const dot = path.lastIndexOf(".");
  return TYPES[dot < 0 ? "" : path.slice(dot)] ?? "application/octet-stream";
}

/** Serves files under `root` (a directory URL or path). */
export function serveDir(root: string | URL, options: ServeOptions = {}): Served {
  const base = root instanceof URL ? root : new URL(`file://${root.endsWith("/") ? root : root + "/"}`);
  const requests: Served["requests"] = [];
  // read once: a training step asks for hundreds of ranges of the same pack
  const files = new Map<string, Uint8Array>();
  const etags = new WeakMap<Uint8Array, string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const range = req.headers.get("range");
    const res = await respond(req, path, range);
    requests.push({
      path,
      method: req.method,
      range,
      status: res.status,
      tag: req.headers.get("x-mesp-tag"),
      ...req.method === "PUT" &&
        // what was stored: nothing when the PUT was refused (a file read before keeps its own length)
        { contentLength: req.headers.get("content-length"), received: res.ok ? files.get(path)?.length : 0 },
    });
    if (options.isolate) {
      res.headers.set("cross-origin-opener-policy", "same-origin");
      res.headers.set("cross-origin-embedder-policy", "require-corp");
    }
    res.headers.set("cross-origin-resource-policy", "same-origin");
    res.headers.set("cache-control", "no-store");
    return res;
  });

  async function respond(req: Request, path: string, range: string | null): Promise<Response> {
    if (req.method === "PUT") {
      if (!options.writable || !path.startsWith(options.writable)) {
        return new Response("read only", { status: 405 });
      }
      files.set(path, new Uint8Array(await req.arrayBuffer()));
      return new Response(null, { status: 201 });
    }
    const route = options.routes?.[path];
    let bytes: Uint8Array | undefined;
    let type = typeOf(path);
    if (route) {
      bytes = typeof route.body === "string" ? new TextEncoder().encode(route.body) : route.body;
      type = route.type;
    } else {
      bytes = options.override?.(path);
      if (!bytes) {
        if (path.includes("..")) return new Response("bad path", { status: 400 });
        try {
          bytes = files.get(path);
          if (!bytes && options.writable && path.startsWith(options.writable)) throw new Error("not stored");
          bytes ??= await Deno.readFile(fileOf(path));
          files.set(path, bytes);
        } catch {
          return new Response(`not found: ${path}`, { status: 404 });
        }
      }
    }
    let etag = etags.get(bytes);
    if (!etag) etags.set(bytes, etag = `"${bytes.length}-${hash(bytes)}"`);
    const headers = new Headers({ "content-type": type, etag, "accept-ranges": "bytes" });
    const body = (b: Uint8Array) => req.method === "HEAD" ? null : b.slice();
    headers.set("content-length", String(bytes.length));
    const m = range && !options.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (!m) return new Response(body(bytes), { status: 200, headers });
    const start = Number(m[1]);
    const end = m[2] === "" ? bytes.length - 1 : Math.min(Number(m[2]), bytes.length - 1);
    if (start >= bytes.length || end < start) {
      headers.set("content-range", `bytes */${bytes.length}`);
      headers.set("content-length", "0");
      return new Response(null, { status: 416, headers });
    }
    headers.set("content-range", `bytes ${start}-${end}/${bytes.length}`);
    headers.set("content-length", String(end - start + 1));
    return new Response(body(bytes.subarray(start, end + 1)), { status: 206, headers });
  }

  function fileOf(path: string): URL {
    for (const [prefix, dir] of Object.entries(options.mounts ?? {})) {
      if (path.startsWith(prefix)) return new URL(`file://${dir}/${path.slice(prefix.length)}`);
    }
    return new URL(`.${path}`, base);
  }

  const port = server.addr.port;
  return {
    origin: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    close: () => server.shutdown(),
  };
}

/** FNV-1a over a sample of the bytes: enough for an ETag that changes when a test changes a file. */
function hash(b: Uint8Array): string {
  let h = 0x811c9dc5;
  const step = Math.max(1, Math.floor(b.length / 4096));
  for (let i = 0; i < b.length; i += step) h = Math.imul(h ^ b[i], 0x01000193);
  return (h >>> 0).toString(16);
}
