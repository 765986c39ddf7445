/**
 * What the benchmarks' 127.0.0.1 servers send for a file: the bytes a `Range: bytes=a-b` header asks for
 * (status 206, `Content-Range` set) or all of them (200); for HEAD no bytes, only the length they would have.
 * Enough for `fetchSource`, which always asks for closed ranges; `tests/_http_server.ts` is the full server
 * the tests use (suffix and open ranges, 416, a server that ignores Range).
 *
 * @module
 */
export function rangeReply(
  req: Request,
  file: Uint8Array,
  headers: Headers,
): { body: Uint8Array; status: number } {
  let body = file, status = 200;
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
  if (m) {
    const start = Number(m[1]), end = Math.min(Number(m[2]), file.length - 1);
    headers.set("content-range", `bytes ${start}-${end}/${file.length}`);
    body = file.subarray(start, end + 1);
    status = 206;
  }
  if (req.method === "HEAD") {
    headers.set("content-length", String(body.length));
    body = new Uint8Array();
  }
  return { body, status };
}
