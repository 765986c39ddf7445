// The committed wasm/, dist/ and generated kernel interface must be exactly what asm/ and the sources build to
// with the pinned tools.
import { assert } from "./_assert.ts";

Deno.test({
  name: "build: rebuilding reproduces the committed wasm/, dist/ and kernel interface byte for byte",
  // the compiler is fetched from npm once; later runs use Deno's cache
  sanitizeResources: false,
  async fn() {
    const root = new URL("../", import.meta.url);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--lock=deno.dev.lock", "-A", "asm/build.ts", "--check"],
      cwd: root,
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, `wasm/ or dist/ is stale, run \`deno task build\`:\n${text}`);
    for (const name of ["relaxed", "simd", "relaxed_threads", "simd_threads"]) {
      assert(
        new RegExp(`same\\s+wasm/mesp_${name}\\.wasm`).test(text),
        `wasm/mesp_${name}.wasm not checked:\n${text}`,
      );
    }
    assert(
      text.includes("same    src/runtime/kernel_exports.ts"),
      `the generated kernel interface was not checked:\n${text}`,
    );
    for (
      const file of ["mesp.js", "worker.js", "tokenizer.js", "tokenize_worker.js", "wasm/mesp_simd.wasm"]
    ) {
      assert(text.includes(`same    dist/${file}`), `dist/${file} not checked:\n${text}`);
    }
  },
});
