// The README's library examples, run as a user runs them: the code block under "## Library", with its
// example.com URLs pointed at the tiny model's pack and token cache served from 127.0.0.1, `mod.ts` imported
// over HTTP, and 2 steps instead of 100; then with the block that makes the result an adapter, evaluates and
// generates with it appended. A README edit that breaks an example (or moves it) fails here.
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { tinyRun } from "./_tiny_run.ts";

const ROOT = new URL("../", import.meta.url);

/** The first ```ts block after the line `heading` of README.md. */
async function snippet(heading: string): Promise<string> {
  const text = await Deno.readTextFile(new URL("README.md", ROOT));
  const at = text.indexOf(`\n${heading}\n`);
  assert(at >= 0, `README.md has no line ${heading}`);
  const block = /```ts\n([\s\S]*?)```/.exec(text.slice(at));
  assert(block, `README.md has no ts block under ${heading}`);
  return block[1];
}

/** `code` with every `[from, to]` replaced; each `from` must occur once, else the README changed. */
function replaced(code: string, pairs: [string, string][]): string {
  for (const [from, to] of pairs) {
    assertEquals(code.split(from).length - 1, 1, `the README example should contain ${from} once`);
    code = code.replace(from, to);
  }
  return code;
}

/** The tiny model's pack and token cache, served from 127.0.0.1 with mesp's modules. */
type Served = { server: ReturnType<typeof serveDir>; ref: Awaited<ReturnType<typeof tinyRun>> };

/** The library example with its URLs pointed at `served` and 2 steps, as a user would run it. */
async function trainingExample({ server, ref }: Served): Promise<string> {
  return replaced(await snippet("## Library"), [
    ['"https://…/mesp/mod.ts"', `"${server.origin}/mod.ts"`],
    ['"https://example.com/qwen2.5-0.5b-q4.pack"', `"${server.origin}/fixture/${ref.pack}"`],
    ['"https://example.com/train-T256.tokcache"', `"${server.origin}/fixture/${ref.tokens}"`],
    ["steps: 100,", "steps: 2,"],
  ]);
}

/** Runs `code` as main.ts in a fresh folder, allowed only to import from and connect to the server. */
async function runMain(served: Served, code: string, check = false): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mesp-readme-" });
  try {
    await Deno.writeTextFile(`${dir}/main.ts`, code);
    const host = served.server.host;
    const flags = [`--allow-import=${host}`, `--allow-net=${host}`, ...(check ? ["--check"] : [])];
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...flags, "main.ts"],
      cwd: dir,
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout), stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    return stdout;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("README: the library example decodes a token cache into examples and trains on them", async () => {
  const ref = await tinyRun();
  const server = serveDir(ROOT, { mounts: { "/fixture/": ref.dir } });
  try {
    const stdout = await runMain({ server, ref }, await trainingExample({ server, ref }));
    // two step events ("step loss"), then the last loss
    const lines = stdout.trim().split("\n");
    assertEquals(lines.length, 3, stdout);
    assertEquals(lines.slice(0, 2).map((l) => l.split(" ")[0]), ["1", "2"], stdout);
    const last = Number(lines[2]);
    assertEquals(Number(lines[1].split(" ")[1]), last, "the result's last loss is the last step's");
    // a random model predicts about uniformly: its loss is near ln(vocabulary size)
    const config = JSON.parse(await Deno.readTextFile(`${ref.dir}/model/config.json`));
    assert(
      Math.abs(last - Math.log(config.vocab_size)) < 0.5,
      `loss ${last}, vocabulary ${config.vocab_size}`,
    );
    const tokens = server.requests.filter((q) => q.path === `/fixture/${ref.tokens}`);
    assertEquals(tokens.length, 1, "the token cache is fetched once");
  } finally {
    await server.close();
  }
});

Deno.test("README: the result-to-adapter example opens the trained adapter, scores it and generates with it", async () => {
  const ref = await tinyRun();
  const server = serveDir(ROOT, { mounts: { "/fixture/": ref.dir } });
  try {
    const after = replaced(
      await snippet("**From a training result to an adapter, its score and its text:**"),
      [
        ['"https://…/mesp/mod.ts"', `"${server.origin}/mod.ts"`],
      ],
    );
    // type-checked too: the block must compile as TypeScript against mod.ts, not only run
    const stdout = await runMain({ server, ref }, (await trainingExample({ server, ref })) + after, true);
    const lines = stdout.trim().split("\n");
    assertEquals(lines.length, 5, stdout); // two steps, the last loss, then this block's two lines
    const [nll, perplexity] = lines[3].split(" ").map(Number);
    assert(Math.abs(perplexity - Math.exp(nll)) < 1e-6 * perplexity, lines[3]);
    const config = JSON.parse(await Deno.readTextFile(`${ref.dir}/model/config.json`));
    assert(Math.abs(nll - Math.log(config.vocab_size)) < 0.5, `nll ${nll}, vocabulary ${config.vocab_size}`);
    const tokens = lines[4].split(" ").map(Number);
    assert(tokens.length >= 1 && tokens.length <= 8, lines[4]);
    assert(tokens.every((t) => Number.isInteger(t) && t >= 0 && t < config.vocab_size), lines[4]);
    // fewer than asked for only when the model's EOS came
    const eos = [config.eos_token_id].flat();
    assert(tokens.length === 8 || eos.includes(tokens.at(-1)), `${lines[4]} (eos ${eos})`);
  } finally {
    await server.close();
  }
});
