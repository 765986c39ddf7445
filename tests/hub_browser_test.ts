// The library's Hub reading (`hubFiles`, from dist/mesp.js) in headless Chromium, from a page on one origin
// against the Hub stand-in of tests/_hub_server.ts on another, with the CORS headers the Hub sends: the config
// text, a missing file, the checkpoint's tensor names through the 302 to storage, and a range of a shard's
// bytes, all equal to the files `make-model` wrote. Skipped (with a message) where Chromium or playwright-core
// is missing; CI installs both (.ci/run).
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { repoFromDir, serveHub } from "./_hub_server.ts";
import { launchChromium, openReady, skipWithoutChromium } from "../bench/chromium.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { openCheckpoint } from "../src/model/safetensors.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const COMMIT = "3333333333333333333333333333333333333333";
const SHARD = "model-00001-of-00002.safetensors";

const PAGE = `<!doctype html>
<script type="module">
import { hubFiles, openCheckpoint } from "/dist/mesp.js";
globalThis.readHub = async (endpoint, shard, offset, length) => {
  try {
    const files = hubFiles({ repo: "acme/tiny", revision: "main" }, { endpoint });
    const ckpt = await openCheckpoint(files);
    const names = ckpt.names();
    const src = files.source(shard);
    const bytes = new Uint8Array(length);
    await src.read(offset, bytes);
    return {
      config: await files.readText("config.json"),
      missing: await files.readText("nothing.json") ?? null,
      names,
      size: await src.size(),
      bytes: Array.from(bytes),
    };
  } catch (err) {
    return { error: String(err.message ?? err) };
  }
};
globalThis.ready = true;
</script>`;

const skip = await skipWithoutChromium("hub browser test");

Deno.test({
  name:
    "hub: hubFiles in headless Chromium reads a Hub model cross-origin (config, tensors, ranges via storage)",
  ignore: skip,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "mesp-hubweb-" });
    const made = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "make-model",
        "--preset",
        "tiny",
        "--out",
        `${tmp}/model`,
        "--shard-size",
        "20MB",
      ],
    }).output();
    assert(made.success, new TextDecoder().decode(made.stderr));
    const hub = serveHub({ "acme/tiny": await repoFromDir(`${tmp}/model`, COMMIT) }, { cors: true });
    const site = serveDir(ROOT, { routes: { "/page.html": { body: PAGE, type: "text/html" } } });
    const browser = await launchChromium({ prefix: "mesp-hubweb-chromium-" });
    try {
      const tab = await browser.context.newPage();
      await openReady(tab, `${site.origin}/page.html`);
      const offset = 1_234_567, length = 4096;
      const got = await tab.evaluate(
        // deno-lint-ignore no-explicit-any
        ([e, s, o, n]) => (globalThis as any).readHub(e, s, o, n),
        [hub.endpoint, SHARD, offset, length] as const,
      );
      assertEquals(got.error, undefined);
      assertEquals(got.config, await Deno.readTextFile(`${tmp}/model/config.json`));
      assertEquals(got.missing, null);
      const local = await openCheckpoint(dirFiles(`${tmp}/model`));
      assertEquals(got.names, local.names());
      local.close();
      const want = await Deno.readFile(`${tmp}/model/${SHARD}`);
      assertEquals(got.size, want.length);
      assertEquals(got.bytes, Array.from(want.subarray(offset, offset + length)));
      // the weights came from storage (the 302's target), in ranges
      const storage = hub.requests.filter((q) => q.path.startsWith("/storage/") && q.method === "GET");
      assert(storage.length > 0 && storage.every((q) => q.status === 206), JSON.stringify(storage));
    } finally {
      await browser.close();
      await site.close();
      await hub.close();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
