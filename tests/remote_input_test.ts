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

Deno.test("wasm bytes a runtime refuses to compile (workerd) name the URL and the modules option", async () => {
  const server = serveDir(ROOT);
  const compile = WebAssembly.compile;
  // what workerd says: it validates wasm, but compiles none from bytes
  WebAssembly.compile = () =>
    Promise.reject(
      new WebAssembly.CompileError("WebAssembly.compile(): Wasm code generation disallowed by embedder"),
    );
  try {
    const url = `${server.origin}/dist/wasm/mesp_relaxed.wasm`;
    const err = await assertRejects(
      () => loadKernels({ wasmBase: `${server.origin}/dist/wasm/` }),
      `cannot compile kernels ${url}: WebAssembly.compile(): Wasm code generation disallowed by embedder ` +
        "(a runtime that forbids compiling WebAssembly from bytes, such as Cloudflare Workers, needs the " +
        "kernels option { modules }",
    );
    assert(err.cause instanceof WebAssembly.CompileError, "the runtime's error is the cause");
  } finally {
    WebAssembly.compile = compile;
    await server.close();
  }
});

Deno.test("kernels options: bytes in place of a module, a misspelled name or file are named", async () => {
  const bytes = await Deno.readFile(new URL("wasm/mesp_simd.wasm", ROOT));
  const module = await WebAssembly.compile(bytes);
  await assertRejects(
    () => loadKernels({ modules: { "mesp_simd.wasm": bytes as unknown as WebAssembly.Module } }),
    'loadKernels options: modules["mesp_simd.wasm"] must be a WebAssembly.Module, got a Uint8Array: compile ' +
      "the bytes first (await WebAssembly.compile(bytes)); in Cloudflare Workers, import the .wasm file",
  );
  await assertRejects(
    () => loadKernels({ modules: { "mesp-simd.wasm": module } as Record<string, WebAssembly.Module> }),
    'loadKernels options: modules has "mesp-simd.wasm", not a kernel file (did you mean "mesp_simd.wasm"?)',
  );
  await assertRejects(
    () => loadKernels({ wasmbase: "https://cdn.example/wasm/" } as Record<string, string>),
    'loadKernels options: unknown option "wasmbase" (did you mean "wasmBase"?)',
  );
  await assertRejects(
    () => startKernels(() => [], { kernels: { workerURL: "/w.js" } as Record<string, string> }),
    'kernels: unknown option "workerURL" (did you mean "workerUrl"?)',
  );
  await assertRejects(
    () => loadKernels({ wasmBase: 42 } as unknown as Record<string, string>),
    "loadKernels options: wasmBase must be a URL (a string or a URL), got a number (42)",
  );
  // a module given as a module loads
  assert((await loadKernels({ modules: { "mesp_simd.wasm": module } })).variant === "simd");
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
