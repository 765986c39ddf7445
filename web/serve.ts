/**
 * `deno task web`: serves the repository's `web/` page (and the `dist/` build it imports) on 127.0.0.1 with
 * the cross-origin isolation headers (COOP/COEP) that shared WebAssembly memory, and so kernel threads,
 * need in a browser. It only reads files under the repository root and only listens on loopback.
 *
 *   deno task web [--port 8787] [--no-isolation]
 *
 * `--no-isolation` drops COOP/COEP (the page then trains on one thread and says so), to try the fallback.
 *
 * @module
 */

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  // Deno imports the repository's own modules from this server too (`import … from "http://127.0.0.1:PORT/mod.ts"`)
  ts: "application/typescript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
  jsonl: "application/jsonl",
  wasm: "application/wasm",
  svg: "image/svg+xml",
  png: "image/png",
  txt: "text/plain; charset=utf-8",
  md: "text/plain; charset=utf-8",
};

/** Options of {@linkcode serveWeb}. */
export interface ServeWebOptions {
  /** Directory served as `/` (the repository root, so `/web/` and `/dist/` both resolve). */
  root: string;
  port?: number;
  /** Send COOP/COEP (default true). */
  isolation?: boolean;
  /** Called once the server listens, with the page's URL. */
  onListen?: (pageUrl: string) => void;
}

/** Starts the static server; close it with the returned server's `shutdown()`. */
export function serveWeb(options: ServeWebOptions): Deno.HttpServer {
  const root = options.root.replace(/\/+$/, "");
  const isolation = options.isolation ?? true;
  return Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 8787,
    onListen: ({ port }) => options.onListen?.(`http://127.0.0.1:${port}/web/`),
  }, async (req) => {
    const url = new URL(req.url);
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      return new Response("bad path", { status: 400 });
    }
    // nothing above the root, and no dot-files (.git, .cache): only the page, dist/ and the repository's files
    if (path.split("/").some((part) => part.startsWith("."))) {
      return new Response("bad path", { status: 400 });
    }
    if (path === "/") return Response.redirect(new URL("/web/", url), 302);
    if (path.endsWith("/")) path += "index.html";
    const headers = new Headers({ "cache-control": "no-cache" });
    if (isolation) {
      headers.set("cross-origin-opener-policy", "same-origin");
      headers.set("cross-origin-embedder-policy", "require-corp");
    }
    headers.set("cross-origin-resource-policy", "same-origin");
    let file: Deno.FsFile;
    try {
      file = await Deno.open(root + path, { read: true });
    } catch {
      return new Response(`not found: ${path}`, { status: 404, headers });
    }
    const info = await file.stat();
    if (!info.isFile) {
      file.close();
      return new Response(`not found: ${path}`, { status: 404, headers });
    }
    headers.set("content-type", TYPES[path.split(".").at(-1)!] ?? "application/octet-stream");
    headers.set("accept-ranges", "bytes");
    headers.set("last-modified", new Date(info.mtime ?? 0).toUTCString());
    const range = req.headers.get("range")?.match(/^bytes=(\d+)-(\d*)$/);
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), info.size - 1) : info.size - 1;
      if (start > end) {
        file.close();
        headers.set("content-range", `bytes */${info.size}`);
        return new Response(null, { status: 416, headers });
      }
      await file.seek(start, Deno.SeekMode.Start);
      const body = new Uint8Array(end - start + 1);
      let at = 0;
      while (at < body.length) {
        const n = await file.read(body.subarray(at));
        if (n === null) break;
        at += n;
      }
      file.close();
      headers.set("content-range", `bytes ${start}-${end}/${info.size}`);
      return new Response(body, { status: 206, headers });
    }
    headers.set("content-length", String(info.size));
    return new Response(req.method === "HEAD" ? null : file.readable, { status: 200, headers });
  });
}

if (import.meta.main) {
  const args = Deno.args;
  const portAt = args.indexOf("--port");
  const port = portAt >= 0 ? Number(args[portAt + 1]) : 8787;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port: expected a port number, got ${args[portAt + 1]}`);
    Deno.exit(2);
  }
  const unknown = args.filter((a, i) =>
    a.startsWith("--") && a !== "--port" && a !== "--no-isolation" &&
    !(i > 0 && args[i - 1] === "--port")
  );
  if (unknown.length) {
    console.error(`unknown flag ${unknown[0]}; usage: deno task web [--port N] [--no-isolation]`);
    Deno.exit(2);
  }
  const isolation = !args.includes("--no-isolation");
  const root = new URL("..", import.meta.url).pathname;
  try {
    serveWeb({
      root,
      port,
      isolation,
      onListen: (url) =>
        console.log(
          `mesp web: open ${url}${isolation ? "" : "  (no cross-origin isolation: one kernel thread)"}`,
        ),
    });
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    console.error(
      `error: ${portAt >= 0 ? `--port ${port}: ` : ""}127.0.0.1:${port} is in use (another server?); ` +
        `try --port ${port + 1}`,
    );
    Deno.exit(1);
  }
}
