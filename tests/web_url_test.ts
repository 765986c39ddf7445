// The web page opening a model from a folder URL in headless Chromium: the checkpoint is downloaded once (the
// fingerprint's read of every byte keeps it in OPFS range caches, which packing then reads), the pack it
// keeps is byte for byte the one writePack makes in Deno from the same folder, and the downloaded files are
// gone from OPFS afterwards. Skipped (with a message) where Chromium or playwright-core is missing; CI
// installs both (.ci/run).
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { tinyRun } from "./_tiny_run.ts";
import { launchChromium, skipWithoutChromium } from "../bench/chromium.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { urlFiles } from "../src/io/source.ts";
import { checkpointFingerprint } from "../src/model/checkpoint_fingerprint.ts";
import { parseModelConfig } from "../src/model/config.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { openCheckpoint } from "../src/model/safetensors.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const skip = await skipWithoutChromium("web URL tests");

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name: "web page: a model from a folder URL is downloaded once, packed as in Deno, and its download removed",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ref = await tinyRun();
    const model = `${ref.dir}/model`;
    const sizes = new Map<string, number>();
    for (const e of Deno.readDirSync(model)) {
      if (e.name.endsWith(".safetensors")) {
        sizes.set(`/m/${e.name}`, Deno.statSync(`${model}/${e.name}`).size);
      }
    }
    assert(sizes.size > 0, "the tiny model has weight files");

    const fingerprint = await (async () => {
      const files = dirFiles(model), ckpt = await openCheckpoint(files);
      try {
        return await checkpointFingerprint(files, ckpt);
      } finally {
        ckpt.close();
      }
    })();
    const server = serveDir(ROOT, { isolate: true, mounts: { "/m/": model } });
    const browser = await launchChromium({ prefix: "mesp-weburl-chromium-" });
    try {
      const page = await browser.context.newPage();
      await page.goto(`${server.origin}/web/index.html`);
      await page.waitForFunction(() =>
        // deno-lint-ignore no-explicit-any
        /Ready/.test((globalThis as any).document.querySelector("#env")?.textContent ?? "")
      );
      await page.fill("#model-url", `${server.origin}/m/`);
      await page.click("#model-url-form button");
      const status = await page.waitForFunction(
        () => {
          // deno-lint-ignore no-explicit-any
          const el = (globalThis as any).document.querySelector("#model-status");
          const text = el.textContent ?? "";
          return (/^Ready/.test(text) || el.className === "error") && text;
        },
        undefined,
        { timeout: 120_000 },
      );
      const text = String(await status.jsonValue());
      assert(text.startsWith("Ready") && text.includes("converted and kept"), text);

      // bytes of each weight file served: every byte once, and a little more (the header's first read)
      for (const [path, size] of sizes) {
        let served = 0;
        for (const r of server.requests.filter((q) => q.path === path && q.method === "GET")) {
          const m = r.range && /^bytes=(\d+)-(\d+)$/.exec(r.range);
          served += m ? Math.min(Number(m[2]), size - 1) - Number(m[1]) + 1 : size;
        }
        assert(served >= size && served <= size + (64 << 10), `${path}: ${served} bytes served for ${size}`);
      }

      // writePack in Deno from the same URL (the pack records where it came from): the same bytes
      const files = urlFiles(`${server.origin}/m/`);
      const ckpt = await openCheckpoint(files);
      const cfg = parseModelConfig(JSON.parse(await Deno.readTextFile(`${model}/config.json`)));
      const chunks: Uint8Array[] = [];
      await writePack(ckpt, cfg, { write: (c) => (chunks.push(c.slice()), Promise.resolve()) }, {
        format: "q4",
        fingerprint: await checkpointFingerprint(files, ckpt),
      });
      ckpt.close();
      const pack = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      chunks.reduce((at, c) => (pack.set(c, at), at + c.length), 0);
      // the kept pack is writePack's, under the folder's fingerprint, and nothing is left under downloads/
      const got = await page.evaluate(async () => {
        // deno-lint-ignore no-explicit-any
        const root = await (globalThis as any).navigator.storage.getDirectory();
        const packs: string[] = [], keys: string[] = [];
        for await (const dir of (await root.getDirectoryHandle("models")).values()) {
          keys.push(dir.name);
          const bytes = await (await (await dir.getFileHandle("weights.pack")).getFile()).arrayBuffer();
          const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
          packs.push([...d].map((b) => b.toString(16).padStart(2, "0")).join(""));
        }
        const left: string[] = [];
        for await (const name of (await root.getDirectoryHandle("downloads")).keys()) left.push(name);
        return { packs, keys, left };
      });
      assertEquals(got, { packs: [await sha256(pack)], keys: [`${fingerprint.slice(0, 16)}-q4`], left: [] });
    } finally {
      await browser.close();
      await server.close();
    }
  },
});
