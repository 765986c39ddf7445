// mesp as a Deno user imports it: `mod.ts` over HTTP from a folder with no deno.json or import map, with
// only --allow-import and --allow-net for that host; and the CLI run from its URL. Both train the tiny
// model 3 steps from a pack read with HTTP Range requests, with the losses of the CLI and the library.
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { CLI_FLAGS, OPTIONS, printed, tinyRun } from "./_tiny_run.ts";

const ROOT = new URL("../", import.meta.url);

const script = (origin: string, pack: string, tokens: string, threads: number) => `
import { decodeTokenCache, fetchSource, openPack, train } from "${origin}/mod.ts";
const pack = await openPack(fetchSource("${origin}/fixture/${pack}"));
const res = await fetch("${origin}/fixture/${tokens}");
const cache = decodeTokenCache(new Uint8Array(await res.arrayBuffer()), { name: "tokens" });
const data = Array.from({ length: cache.count }, (_, i) => cache.example(i));
const r = await train(pack, data, [], { ...${JSON.stringify(OPTIONS)}, threads: ${threads} });
const p = r.params;
console.log(JSON.stringify({ losses: r.losses, params: Array.from(new Uint32Array(p.buffer, p.byteOffset, p.length)) }));
`;

async function run(args: string[], cwd: string, env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd, env: { NO_COLOR: "1", ...env } }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("mod.ts imported over HTTP with only --allow-import and --allow-net trains like the CLI, bit for bit", async () => {
  const ref = await tinyRun();
  const server = serveDir(ROOT, { mounts: { "/fixture/": ref.dir } });
  const dir = await Deno.makeTempDir({ prefix: "mesp-url-" });
  try {
    // 1 and 2 threads side by side (each its own process and script)
    await Promise.all([1, 2].map(async (threads) => {
      await Deno.writeTextFile(
        `${dir}/main${threads}.ts`,
        script(server.origin, ref.pack, ref.tokens, threads),
      );
      const flags = [`--allow-import=${server.host}`, `--allow-net=${server.host}`];
      const r = await run(["run", "--no-prompt", ...flags, `main${threads}.ts`], dir);
      assertEquals(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout);
      assertEquals(got.losses, ref.losses, `threads ${threads}: losses differ from the in-process run`);
      assert(
        got.params.length === ref.params.length &&
          got.params.every((b: number, i: number) => b === ref.params[i]),
        `threads ${threads}: adapters differ`,
      );
    }));
    assertEquals(ref.losses.map(printed), ref.cliLosses, "the library's losses are not the CLI's");
    assert(ref.params.every((b, i) => b === ref.cliParams[i]), "the library's adapter is not the CLI's");
    const packReads = server.requests.filter((q) => q.path === `/fixture/${ref.pack}` && q.range);
    assert(
      packReads.length > 0 && packReads.every((q) => q.status === 206),
      "the pack is not read in ranges",
    );
    const tokenizer = server.requests.filter((q) =>
      q.path.includes("build_tokenizer") || q.path.includes("byte_level_bpe")
    );
    assertEquals(tokenizer.map((q) => q.path), [], "training fetched the tokenizer");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CLI runs from its URL: train prints the same losses as from the repository", async () => {
  const ref = await tinyRun();
  const server = serveDir(ROOT);
  const dir = await Deno.makeTempDir({ prefix: "mesp-url-cli-" });
  try {
    const flags = [
      `--allow-import=${server.host}`,
      `--allow-net=${server.host}`,
      "--allow-read",
      "--allow-write",
      "--allow-env=MESP_CACHE,XDG_CACHE_HOME,HOME,MESP_DEBUG,HF_HOME,HF_HUB_CACHE",
      "--allow-run=deno",
    ];
    const data = decodeURIComponent(new URL("data/lumen/train.jsonl", ROOT).pathname);
    const r = await run(
      [
        "run",
        "--no-prompt",
        ...flags,
        `${server.origin}/src/cli/main.ts`,
        "train",
        "--model",
        `${ref.dir}/model`,
        "--data",
        data,
        "--out",
        `${dir}/run`,
        "--json",
        ...CLI_FLAGS,
      ],
      dir,
      { MESP_CACHE: `${ref.dir}/cache` }, // the reference run's pack and token cache: checked, not rebuilt
    );
    assertEquals(r.code, 0, r.stderr);
    const losses = r.stdout.split("\n").filter((l) => l.startsWith('{"step"')).map((l) => JSON.parse(l).loss);
    assertEquals(losses, ref.cliLosses);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
