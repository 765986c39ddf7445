// `--model org/name[@rev]` against a Hub stand-in on 127.0.0.1 (tests/_hub_server.ts) serving the tiny model
// `make-model` writes: the download into the cache as huggingface_hub lays it out, an interrupted download
// resumed with Range, the hash check, HF_HUB_OFFLINE, a cache Python left (used with no request beyond one
// HEAD and no copy), 404s and tokens. The CLI runs with the permissions the deno.json tasks grant, so the
// download child's own (the endpoint's host only) are what is exercised.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { blobName, type HubRepo, type HubServer, repoFromDir, serveHub } from "./_hub_server.ts";
import { CLI_PERMISSIONS } from "../src/cli/prepare.ts";
import { hubFileInfo, hubFiles, hubFileUrl, parseHubId } from "../src/io/hub.ts";
import { hubIdOfDir } from "../src/cli/hub_cache.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "mesp-hubdl-" });
const C1 = "1111111111111111111111111111111111111111";
const C2 = "2222222222222222222222222222222222222222";
const SHARD = "model-00001-of-00002.safetensors";
const DATA = new URL("../data/lumen/train.jsonl", import.meta.url).pathname;

async function run(args: string[], env: Record<string, string> = {}): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), { args, env }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

// the tiny model twice: sharded (two safetensors and an index) and in one file
await run([
  "run",
  "-A",
  MAIN,
  "make-model",
  "--preset",
  "tiny",
  "--out",
  `${tmp}/sharded`,
  "--shard-size",
  "20MB",
]);
await run(["run", "-A", MAIN, "make-model", "--preset", "tiny", "--out", `${tmp}/single`, "--seed", "1"]);
const sharded = await repoFromDir(`${tmp}/sharded`, C1);
const single = await repoFromDir(`${tmp}/single`, C2);

interface Ran {
  code: number;
  stderr: string;
}

/** `mesp plan --model <model>` with the tasks' permissions and only the given environment. */
async function plan(model: string, env: Record<string, string>, cwd?: string): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_PERMISSIONS, MAIN, "plan", "--model", model, "--seq-len", "32"],
    cwd,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? tmp,
      MESP_CACHE: `${tmp}/mesp`,
      NO_COLOR: "1",
      ...env,
    },
    clearEnv: true,
    stdin: "null",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

async function withHub<T>(repos: Record<string, HubRepo>, f: (hub: HubServer) => Promise<T>, options = {}) {
  const hub = serveHub(repos, options);
  try {
    return await f(hub);
  } finally {
    await hub.close();
  }
}

/** Checks `cache` holds `repo` at `commit` as huggingface_hub lays it out, with the exact bytes. */
async function assertCacheLayout(cache: string, repo: HubRepo, commit: string): Promise<void> {
  const root = `${cache}/models--acme--tiny`;
  assertEquals((await Deno.readTextFile(`${root}/refs/main`)).trim(), commit);
  for (const [file, bytes] of repo.commits[commit]) {
    const pointer = `${root}/snapshots/${commit}/${file}`;
    assert((await Deno.lstat(pointer)).isSymlink, `${pointer} is not a symlink`);
    const blob = await blobName(file, bytes);
    assertEquals(await Deno.readLink(pointer), `../../blobs/${blob}`, pointer);
    const got = await Deno.readFile(`${root}/blobs/${blob}`);
    assert(got.length === bytes.length && got.every((b, i) => b === bytes[i]), `${file}: bytes differ`);
  }
}

Deno.test("hub: parseHubId and hubFileUrl build the URLs huggingface_hub's hf_hub_url does", async () => {
  assertEquals(parseHubId("Qwen/Qwen2.5-0.5B-Instruct"), {
    repo: "Qwen/Qwen2.5-0.5B-Instruct",
    revision: "main",
  });
  assertEquals(parseHubId("acme/tiny@refs/pr/1"), { repo: "acme/tiny", revision: "refs/pr/1" });
  assertEquals(parseHubId("models/tiny/x"), undefined);
  assertEquals(parseHubId("acme/tiny@../x"), undefined);
  assertEquals(
    hubIdOfDir(`/c/hub/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/${C1}`),
    "Qwen/Qwen2.5-0.5B-Instruct",
  );
  assertEquals(hubIdOfDir(`/c/models/tiny`), undefined);
  // the commit and the ETag become cache paths: only hashes pass
  const info = (h: Record<string, string>) => () => hubFileInfo(new Headers(h), "x");
  assertEquals(info({ "x-repo-commit": C1, etag: 'W/"abc-1"', "content-length": "7" })(), {
    commit: C1,
    etag: "abc-1",
    size: 7,
  });
  await assertRejects(
    info({ "x-repo-commit": C1, etag: '"../../x"', "content-length": "7" }),
    "is not a hash",
  );
  await assertRejects(
    info({ "x-repo-commit": "../main", etag: '"abc"', "content-length": "7" }),
    "not a commit hash",
  );
  await assertRejects(info({ "x-repo-commit": C1, "content-length": "7" }), "has no ETag");
  // the example of hf_hub_url's documentation; a revision with "/" is one escaped segment there too
  assertEquals(
    hubFileUrl("julien-c/EsperBERTo-small", "main", "pytorch_model.bin"),
    "https://huggingface.co/julien-c/EsperBERTo-small/resolve/main/pytorch_model.bin",
  );
  assertEquals(
    hubFileUrl("acme/tiny", "refs/pr/1", "sub dir/a.json", "https://mirror.example/"),
    "https://mirror.example/acme/tiny/resolve/refs%2Fpr%2F1/sub%20dir/a.json",
  );
});

Deno.test("hub: hubFiles reads a Hub model over HTTP (the browser's path): text files and weight ranges", async () => {
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const files = hubFiles({ repo: "acme/tiny", revision: "main" }, { endpoint: hub.endpoint });
    assertEquals(await files.readText("config.json"), await Deno.readTextFile(`${tmp}/sharded/config.json`));
    assertEquals(await files.readText("nothing.json"), undefined);
    const want = sharded.commits[C1].get(SHARD)!;
    const src = files.source(SHARD);
    assertEquals(await src.size(), want.length);
    const got = new Uint8Array(1000);
    await src.read(123_456, got);
    assert(got.every((b, i) => b === want[123_456 + i]), "range bytes differ");
  });
});

Deno.test("hub: hubFiles without a revision reads main, as the CLI does; an id that is not { repo } is named", async () => {
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const files = hubFiles({ repo: "acme/tiny" }, { endpoint: hub.endpoint });
    assertEquals(files.name, "acme/tiny@main");
    assertEquals(await files.readText("config.json"), await Deno.readTextFile(`${tmp}/sharded/config.json`));
    assert(
      hub.requests.some((q) => q.path === "/acme/tiny/resolve/main/config.json"),
      JSON.stringify(hub.requests),
    );
    assert(hub.requests.every((q) => !q.path.includes("undefined")), JSON.stringify(hub.requests));
  });
  const expected =
    'hubFiles: expected { repo: "org/name", revision? } (parseHubId("org/name@revision") makes one), got';
  await assertRejects(() => hubFiles("acme/tiny" as never), `${expected} "acme/tiny"`);
  await assertRejects(() => hubFiles({ repo: "acme/tiny@main" }), `${expected} repo "acme/tiny@main"`);
  await assertRejects(() => hubFiles({ repo: "tiny" }), `${expected} repo "tiny"`);
  await assertRejects(
    () => hubFiles({ repo: "acme/tiny", revision: "" }),
    'hubFiles: revision must be a branch, tag or commit hash (default "main"), got ""',
  );
});

Deno.test("hub: download into the Python cache layout, then use it with one HEAD (and its 307) and no download", async () => {
  const cache = `${tmp}/dl`;
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    const r = await plan("acme/tiny", env);
    assertEquals(r.code, 0, r.stderr);
    assert(
      r.stderr.includes(
        `model acme/tiny@main (${C1.slice(0, 12)}): ${cache}/models--acme--tiny/snapshots/${C1}`,
      ),
      r.stderr,
    );
    assert(r.stderr.includes("downloading acme/tiny@main"), r.stderr);
    await assertCacheLayout(cache, sharded, C1);
    const gets = hub.requests.filter((q) => q.method === "GET");
    // each file fetched once, whole; no token was given, none was sent
    assertEquals(gets.filter((q) => q.path.startsWith("/storage/")).length, 2, JSON.stringify(gets));
    assert(hub.requests.every((q) => !q.auth));
    const before = hub.requests.length;
    const again = await plan("acme/tiny", env);
    assertEquals(again.code, 0, again.stderr);
    assert(!again.stderr.includes("downloading"), again.stderr);
    // the Hub's 307 for a small file, followed on the same host
    assertEquals(hub.requests.slice(before).map((q) => `${q.method} ${q.path} ${q.status}`), [
      `HEAD /acme/tiny/resolve/main/config.json 307`,
      `HEAD /api/resolve-cache/models/acme/tiny/${C1}/config.json 200`,
    ]);

    // a commit hash whose snapshot is complete needs no request at all; offline mode neither
    const n = hub.requests.length;
    assertEquals((await plan(`acme/tiny@${C1}`, env)).code, 0);
    const offline = await plan("acme/tiny", { ...env, HF_HUB_OFFLINE: "1" });
    assertEquals(offline.code, 0, offline.stderr);
    assert(offline.stderr.includes(`snapshots/${C1} (Hugging Face cache)`), offline.stderr);
    assertEquals(hub.requests.length, n);
  });
  // the Hub gone: the cached snapshot of the branch, with a warning
  const gone = await plan("acme/tiny", { HF_HUB_CACHE: cache, HF_ENDPOINT: "http://127.0.0.1:9" });
  assertEquals(gone.code, 0, gone.stderr);
  assert(gone.stderr.includes("warning: cannot reach http://127.0.0.1:9"), gone.stderr);
});

Deno.test("hub: HF_HUB_OFFLINE=1 with the model not in the cache fails clearly, without a request", async () => {
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const r = await plan("acme/tiny", {
      HF_HUB_CACHE: `${tmp}/empty`,
      HF_ENDPOINT: hub.endpoint,
      HF_HUB_OFFLINE: "1",
    });
    assertEquals(r.code, 1);
    assert(
      r.stderr.includes("HF_HUB_OFFLINE is set and acme/tiny@main is not in the Hugging Face cache"),
      r.stderr,
    );
    assert(r.stderr.includes(`${tmp}/empty/models--acme--tiny/refs/main`), r.stderr);
    assertEquals(hub.requests.length, 0);
  });
});

Deno.test("hub: a mistyped local path that looks like a Hub id is named with the local directory nearest it", async () => {
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const cwd = await Deno.makeTempDir({ dir: tmp, prefix: "typo-" });
    await Deno.mkdir(`${cwd}/models/tiny-lumen`, { recursive: true });
    const env = { HF_HUB_CACHE: `${tmp}/typo-cache`, HF_ENDPOINT: hub.endpoint };
    const online = await plan("models/tiny-lumn", env, cwd);
    assertEquals(online.code, 1, online.stderr);
    assert(
      online.stderr.includes(
        "--model models/tiny-lumn: there is no local directory models/tiny-lumn (did you mean " +
          "models/tiny-lumen?), so it was taken as a Hub model id",
      ),
      online.stderr,
    );
    const offline = await plan("models/tiny-lumn", { ...env, HF_HUB_OFFLINE: "1" }, cwd);
    assert(
      offline.stderr.includes(
        "there is no local directory models/tiny-lumn (did you mean models/tiny-lumen?); HF_HUB_OFFLINE is set",
      ),
      offline.stderr,
    );
    // nothing near: no guess
    const far = await plan("models/other", env, cwd);
    assert(far.stderr.includes("there is no local directory models/other, so it was taken"), far.stderr);
  });
});

Deno.test("hub: an interrupted download resumes with a Range request; the bytes match", async () => {
  const cache = `${tmp}/resume`;
  const cut = { file: SHARD, after: 10_000_000 };
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    const first = await plan("acme/tiny", env);
    assertEquals(first.code, 1, first.stderr);
    assert(first.stderr.includes(`${SHARD}: download interrupted at`), first.stderr);
    assert(first.stderr.includes("run the same command again to resume"), first.stderr);
    const blob = await blobName(SHARD, sharded.commits[C1].get(SHARD)!);
    const partial = `${cache}/models--acme--tiny/blobs/${blob}.incomplete`;
    const have = (await Deno.stat(partial)).size;
    assert(have > 0 && have <= cut.after, `partial file has ${have} bytes`);
    // refs/main is written once the snapshot is complete
    assert(!await Deno.stat(`${cache}/models--acme--tiny/refs/main`).then(() => true, () => false));

    const second = await plan("acme/tiny", env);
    assertEquals(second.code, 0, second.stderr);
    assert(second.stderr.includes(`resuming ${SHARD} from ${have} of`), second.stderr);
    const ranged = hub.requests.filter((q) => q.method === "GET" && q.path.startsWith(`/storage/${blob}`));
    assertEquals(ranged.map((q) => [q.range, q.status]), [[null, 200], [`bytes=${have}-`, 206]]);
    await assertCacheLayout(cache, sharded, C1);
  }, { cut });
});

Deno.test("hub: a server that ignores Range gets the file again from the start; the bytes match", async () => {
  const cache = `${tmp}/norange`;
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    assertEquals((await plan("acme/tiny", env)).code, 1);
    const second = await plan("acme/tiny", env);
    assertEquals(second.code, 0, second.stderr);
    assert(second.stderr.includes(`${SHARD}: the server ignored the Range request`), second.stderr);
    const blob = await blobName(SHARD, sharded.commits[C1].get(SHARD)!);
    const gets = hub.requests.filter((q) => q.method === "GET" && q.path.startsWith(`/storage/${blob}`));
    assertEquals(gets.map((q) => [q.range?.startsWith("bytes=") ?? false, q.status]), [[false, 200], [
      true,
      200,
    ]]);
    await assertCacheLayout(cache, sharded, C1);
  }, { cut: { file: SHARD, after: 5_000_000 }, ignoreRange: true });
});

Deno.test("hub: bytes that do not hash to the announced sha256 are refused and not kept", async () => {
  const cache = `${tmp}/corrupt`;
  await withHub({ "acme/tiny": sharded }, async (hub) => {
    const r = await plan("acme/tiny", { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint });
    assertEquals(r.code, 1, r.stderr);
    const sha = await blobName(SHARD, sharded.commits[C1].get(SHARD)!);
    assert(r.stderr.includes(`${SHARD}: the downloaded bytes have sha256 `), r.stderr);
    assert(r.stderr.includes(`but the Hub announced ${sha}`), r.stderr);
    const blobs = [...Deno.readDirSync(`${cache}/models--acme--tiny/blobs`)].map((e) => e.name);
    assert(!blobs.some((b) => b.startsWith(sha)), blobs.join(" "));
  }, { corrupt: SHARD });
});

Deno.test("hub: a cache laid out as Python leaves it is used in place: one HEAD (and its 307), nothing fetched or copied", async () => {
  // what `huggingface-cli download acme/tiny` leaves: blobs named by sha256 / git sha1, relative symlinks
  const cache = `${tmp}/python`;
  const root = `${cache}/models--acme--tiny`;
  await Deno.mkdir(`${root}/blobs`, { recursive: true });
  await Deno.mkdir(`${root}/snapshots/${C2}`, { recursive: true });
  await Deno.mkdir(`${root}/refs`, { recursive: true });
  for (const [file, bytes] of single.commits[C2]) {
    const blob = await blobName(file, bytes);
    await Deno.writeFile(`${root}/blobs/${blob}`, bytes);
    await Deno.symlink(`../../blobs/${blob}`, `${root}/snapshots/${C2}/${file}`);
  }
  await Deno.writeTextFile(`${root}/refs/main`, C2);
  const listing = async () => {
    const names: string[] = [];
    const walk = async (dir: string) => {
      for await (const e of Deno.readDir(dir)) {
        names.push(`${dir.slice(cache.length)}/${e.name}`);
        if (e.isDirectory) await walk(`${dir}/${e.name}`);
      }
    };
    await walk(cache);
    return names.sort();
  };
  const before = await listing();
  await withHub({ "acme/tiny": single }, async (hub) => {
    const r = await plan("acme/tiny", { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint });
    assertEquals(r.code, 0, r.stderr);
    assert(r.stderr.includes(`${root}/snapshots/${C2} (Hugging Face cache)`), r.stderr);
    assertEquals(hub.requests.map((q) => `${q.method} ${q.path}`), [
      "HEAD /acme/tiny/resolve/main/config.json",
      `HEAD /api/resolve-cache/models/acme/tiny/${C2}/config.json`,
    ]);
  });
  assertEquals(await listing(), before);

  // trained on a Hub model, an adapter names it as PEFT adapters do (not the snapshot's path)
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_PERMISSIONS, MAIN, "train", "--model", "acme/tiny", "--data", DATA, "--steps", "1"]
      .concat(["--seq-len", "32", "--out", `${tmp}/run`]),
    env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: "1", MESP_CACHE: `${tmp}/mesp`, NO_COLOR: "1" },
    stdin: "null",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const config = JSON.parse(await Deno.readTextFile(`${tmp}/run/adapter_config.json`));
  assertEquals(config.base_model_name_or_path, "acme/tiny");
  assertEquals(await listing(), before);
});

Deno.test("hub: 404s and a gated model (403) name the repository, revision or file and the URL", async () => {
  const noWeights: HubRepo = {
    refs: { main: C1 },
    commits: { [C1]: new Map([["config.json", sharded.commits[C1].get("config.json")!]]) },
  };
  const lostShard: HubRepo = { refs: { main: C1 }, commits: { [C1]: new Map(sharded.commits[C1]) } };
  lostShard.commits[C1].delete(SHARD);
  const repos = {
    "acme/tiny": sharded,
    "acme/bare": noWeights,
    "acme/lost": lostShard,
    "acme/gated": single,
  };
  await withHub(repos, async (hub) => {
    const env = { HF_HUB_CACHE: `${tmp}/404`, HF_ENDPOINT: hub.endpoint };
    const cases: [string, string[]][] = [
      ["acme/other", [
        "no model acme/other on the Hub",
        `${hub.endpoint}/acme/other/resolve/main/config.json`,
      ]],
      ["acme/tiny@v9", [
        'acme/tiny has no revision "v9"',
        `${hub.endpoint}/acme/tiny/resolve/v9/config.json`,
      ]],
      ["acme/bare", [
        "neither model.safetensors nor model.safetensors.index.json",
        `/acme/bare/resolve/${C1}/model.safetensors`,
      ]],
      ["acme/lost", [
        `names the shard ${SHARD}, which the commit does not have`,
        `/acme/lost/resolve/${C1}/${SHARD}`,
      ]],
      ["acme/gated", [
        "acme/gated@main is gated (HTTP 403): accept its terms on the Hub",
        "not in the authorized list",
      ]],
    ];
    for (const [model, wants] of cases) {
      const r = await plan(model, env);
      assertEquals(r.code, 1, r.stderr);
      for (const want of wants) assert(r.stderr.includes(want), `${model}: ${r.stderr}`);
      assert(
        r.stderr.includes(
          `--model ${model}: there is no local directory ${model}, so it was taken as a Hub model id`,
        ),
        r.stderr,
      );
    }
  }, { gated: ["acme/gated"] });
});

Deno.test("hub: tokens: none or a wrong one is a clear 401 message; the right one (env or token file) works", async () => {
  await withHub({ "acme/tiny": single }, async (hub) => {
    const env = { HF_HUB_CACHE: `${tmp}/tok`, HF_ENDPOINT: hub.endpoint };
    const none = await plan("acme/tiny", env);
    assertEquals(none.code, 1);
    assert(none.stderr.includes("acme/tiny@main needs authentication (HTTP 401)"), none.stderr);
    assert(none.stderr.includes("set HF_TOKEN"), none.stderr);
    const wrong = await plan("acme/tiny", { ...env, HF_TOKEN: "hf_wrong" });
    assertEquals(wrong.code, 1);
    assert(
      wrong.stderr.includes("the Hub refused the token in HF_TOKEN for acme/tiny@main (HTTP 401)"),
      wrong.stderr,
    );
    assert(wrong.stderr.includes("Invalid credentials in Authorization header"), wrong.stderr);
    assert(!wrong.stderr.includes("hf_wrong"), "the token is never printed");
    const right = await plan("acme/tiny", { ...env, HF_TOKEN: "hf_secret" });
    assertEquals(right.code, 0, right.stderr);
    // `huggingface-cli login` keeps the token in $HF_HOME/token
    await Deno.mkdir(`${tmp}/hf-home`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/hf-home/token`, "hf_secret\n");
    const file = await plan("acme/tiny", { HF_HOME: `${tmp}/hf-home`, HF_ENDPOINT: hub.endpoint });
    assertEquals(file.code, 0, file.stderr);
    assert(file.stderr.includes("downloading acme/tiny@main"), file.stderr);
  }, { token: "hf_secret" });
});

Deno.test("hub: the download child reaches the HF_ENDPOINT host alone: a redirect elsewhere is refused", async () => {
  await withHub({ "acme/tiny": single }, async (hub) => {
    const r = await plan("acme/tiny", { HF_HUB_CACHE: `${tmp}/elsewhere`, HF_ENDPOINT: hub.endpoint });
    assertEquals(r.code, 1, r.stderr);
    assert(r.stderr.includes("this process may reach only the Hub's hosts"), r.stderr);
    assert(r.stderr.includes("localhost"), r.stderr);
    assert(!hub.requests.some((q) => q.path.startsWith("/storage/")), "no storage request got through");
  }, { storageHost: "localhost" });
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
