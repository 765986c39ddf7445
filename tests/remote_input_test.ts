// Bad input from a web server gets a clear error naming the URL: a wasm file or pool worker that 404s, a
// server that ignores Range, a pack replaced on the server mid-run.
import { assert, assertRejects } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { loadKernels } from "../src/runtime/kernels.ts";
import { startKernels } from "../src/runtime/pool.ts";
import { fetchSource } from "../src/io/source.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("a wasm URL that 404s is named in the error", async () => {
  const server = serveDir(ROOT);
  try {
    await assertRejects(
      () => loadKernels({ wasmBase: `${server.origin}/nowhere/` }),
      `cannot fetch kernels ${server.origin}/nowhere/mesp_relaxed.wasm: HTTP 404`,
    );
    // the same folder served where it is: loads (a failed fetch is not cached); without its final "/" too
    const k = await loadKernels({ wasmBase: `${server.origin}/wasm/` });
    assert(k.exports.heap_base() > 0);
    assert((await loadKernels({ wasmBase: `${server.origin}/wasm` })).exports.heap_base() > 0);
    // a file in the folder (import.meta.url style): its siblings
    assert((await loadKernels({ wasmBase: `${server.origin}/wasm/README.txt` })).exports.heap_base() > 0);
    // relative, with no page to resolve it against (Deno): named
    await assertRejects(
      () => loadKernels({ wasmBase: "/nowhere/" }),
      'kernels.wasmBase "/nowhere/" is not a URL (no page here to resolve it against)',
    );
  } finally {
    await server.close();
  }
});

Deno.test("a pool worker URL that does not load is named in the error", async () => {
  const server = serveDir(ROOT);
  try {
    const url = `${server.origin}/nowhere/worker.js`;
    await assertRejects(
      () =>
        startKernels(() => [{ name: "gemm.scratch", bytes: 1 << 20 }], {
          threads: 2,
          kernels: { workerUrl: url },
        }),
      url,
    );
  } finally {
    await server.close();
  }
});

Deno.test("a server that ignores Range is detected and named", async () => {
  const server = serveDir(ROOT, { ignoreRange: true });
  try {
    const url = `${server.origin}/wasm/mesp_simd.wasm`;
    await assertRejects(
      () => fetchSource(url).read(8, new Uint8Array(16)),
      `${url}: the server ignored the HTTP Range request`,
    );
  } finally {
    await server.close();
  }
});

Deno.test("a pack that changes on the server mid-run stops the run (ETag or size)", async () => {
  let bytes = new Uint8Array(4096).fill(1);
  const server = serveDir(ROOT, { override: (path) => path === "/pack" ? bytes : undefined });
  try {
    const src = fetchSource(`${server.origin}/pack`);
    assert((await src.size()) === 4096);
    await src.read(0, new Uint8Array(100));
    bytes = new Uint8Array(4096).fill(2); // same size, new content: a new ETag
    await assertRejects(
      () => src.read(100, new Uint8Array(100)),
      `${server.origin}/pack changed on the server`,
    );
    const again = fetchSource(`${server.origin}/pack`);
    await again.read(0, new Uint8Array(10));
    bytes = new Uint8Array(8192); // grown
    await assertRejects(() => again.read(10, new Uint8Array(10)), "changed on the server");
  } finally {
    await server.close();
  }
});
