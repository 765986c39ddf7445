// `--model org/name[@revision]` finds a model in a Hugging Face cache laid out as huggingface_hub leaves it
// (refs/<branch> → commit, snapshots/<commit>/<file> → symlink into blobs/), and uses it in place.
import { assert, assertEquals } from "./_assert.ts";
import { caseDir } from "./_golden.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { readSafetensorsHeader, readTensorBytes } from "../src/model/safetensors.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "mesp-hub-" });
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

async function mesp(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    // the cache alone: no Hub is asked (tests/hub_download_test.ts covers downloading)
    env: { MESP_CACHE: `${tmp}/cache`, NO_COLOR: "1", HF_HUB_OFFLINE: "1", ...env },
    clearEnv: true,
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A hub cache holding golden case `name` as `acme/tiny` at COMMIT, branch main and tag v1. */
async function hubCache(root: string, name: string): Promise<void> {
  const repo = `${root}/models--acme--tiny`;
  await Deno.mkdir(`${repo}/blobs`, { recursive: true });
  await Deno.mkdir(`${repo}/snapshots/${COMMIT}`, { recursive: true });
  await Deno.mkdir(`${repo}/refs`, { recursive: true });
  for (const file of ["config.json", "model.safetensors"]) {
    const bytes = await Deno.readFile(`${caseDir(name)}/${file}`);
    const blob = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    await Deno.writeFile(`${repo}/blobs/${blob}`, bytes);
    await Deno.symlink(`../../blobs/${blob}`, `${repo}/snapshots/${COMMIT}/${file}`);
  }
  await Deno.writeTextFile(`${repo}/refs/main`, COMMIT);
  await Deno.writeTextFile(`${repo}/refs/v1`, COMMIT + "\n");
}

Deno.test("--model org/name[@rev] from the Hugging Face cache: PyTorch's loss; HF_HUB_CACHE, HF_HOME; errors", async () => {
  const name = "gqa_tied_f32";
  await hubCache(`${tmp}/hub`, name);
  await hubCache(`${tmp}/hf-home/hub`, name);
  const f = await readSafetensorsHeader(fileSource(`${caseDir(name)}/expected.safetensors`));
  const ids = [...new Int32Array((await readTensorBytes(f, "input_ids")).buffer)];
  const data = `${tmp}/ids.jsonl`;
  await Deno.writeTextFile(data, JSON.stringify({ input_ids: ids }) + "\n");
  const want = new Float64Array((await readTensorBytes(f, "loss_base")).buffer)[0];
  const cases: [Record<string, string>, string][] = [
    [{ HF_HUB_CACHE: `${tmp}/hub` }, "acme/tiny"],
    [{ HF_HUB_CACHE: `${tmp}/hub` }, `acme/tiny@${COMMIT}`],
    [{ HF_HUB_CACHE: `${tmp}/hub` }, "acme/tiny@v1"],
    [{ HF_HOME: `${tmp}/hf-home` }, "acme/tiny"],
  ];
  for (const [env, model] of cases) {
    const r = await mesp(env, "eval", "--model", model, "--data", data, "--weights", "f32", "--json");
    assertEquals(r.code, 0, r.stderr);
    assert(r.stderr.includes(`/snapshots/${COMMIT} (Hugging Face cache)`), r.stderr);
    const nll = JSON.parse(r.stdout).nll;
    assert(Math.abs(nll - want) <= 1e-4 * want, `${model}: ${nll} vs PyTorch ${want}`);
  }
  const missing = await mesp({ HF_HUB_CACHE: `${tmp}/hub` }, "eval", "--model", "acme/other", "--data", data);
  assertEquals(missing.code, 1);
  assert(missing.stderr.includes("not in the Hugging Face cache"), missing.stderr);
  assert(missing.stderr.includes(`${tmp}/hub/models--acme--other/refs/main`), missing.stderr);
  const badRev = await mesp(
    { HF_HUB_CACHE: `${tmp}/hub` },
    "eval",
    "--model",
    "acme/tiny@v2",
    "--data",
    data,
  );
  assertEquals(badRev.code, 1);
  assert(badRev.stderr.includes("refs/v2"), badRev.stderr);
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
