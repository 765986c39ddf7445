// A dataset of only {"input_ids": [...]} lines is prepared without starting the tokenizer (its worker peaks
// at ~256 MB for Qwen's tokenizer.json) even when the model folder has one; a mixed dataset still goes
// through the tokenizer (issue 14).
import { assert, assertEquals } from "./_assert.ts";
import { copyCase, idsData } from "./_robust.ts";
import { prepare } from "../src/cli/prepare.ts";
import { qwenTokenizerFiles } from "../src/text/qwen_tokenizer_files.ts";

/** A golden model (vocabulary 256) with the real Qwen2.5 tokenizer files beside it. */
async function modelWithTokenizer(dir: string): Promise<string> {
  const model = await copyCase("gqa_tied_f32", `${dir}/model`);
  const files = await qwenTokenizerFiles();
  await Deno.writeTextFile(`${model}/tokenizer.json`, files.tokenizerJson);
  await Deno.writeTextFile(`${model}/tokenizer_config.json`, files.tokenizerConfigJson);
  return model;
}

async function tokenCaches(cache: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${cache}/tokens`)) if (e.name.endsWith(".tokcache")) names.push(e.name);
  return names;
}

Deno.test("prepare: only input_ids lines use the pre-tokenized cache, never the tokenizer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesp_pretok_" });
  try {
    const model = await modelWithTokenizer(dir);
    const data = await idsData(`${dir}/ids.jsonl`, 3, 20, 250);
    const log: string[] = [];
    const cacheDir = `${dir}/cache`;
    const prepared = await prepare(
      { model, weights: "f32", cacheDir, data: [data], seqLen: 32 },
      (m) => log.push(m),
    );
    prepared.pack.source.close?.();
    const names = await tokenCaches(cacheDir);
    assertEquals(names.length, 1);
    assert(names[0].includes("-pretokenized-"), `cache ${names[0]} is not the pre-tokenized one`);
    assert(!log.some((l) => l.includes("tokenizing")), `the tokenizer ran:\n${log.join("\n")}`);
    // the sequences are the ids written, line by line (reference: the file itself)
    const lines = (await Deno.readTextFile(data)).trim().split("\n").map((l) => JSON.parse(l).input_ids);
    assertEquals(prepared.sets[0].map((s) => [...s.ids]), lines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prepare: a dataset with one text line among input_ids lines goes through the tokenizer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesp_pretok_" });
  try {
    const model = await modelWithTokenizer(dir);
    const data = await idsData(`${dir}/mixed.jsonl`, 2, 20, 250);
    await Deno.writeTextFile(data, JSON.stringify({ text: "ab ab ab ab" }) + "\n", { append: true });
    const log: string[] = [];
    const cacheDir = `${dir}/cache`;
    const prepared = await prepare(
      { model, weights: "f32", cacheDir, data: [data], seqLen: 32 },
      (m) => log.push(m),
    );
    prepared.pack.source.close?.();
    const names = await tokenCaches(cacheDir);
    assertEquals(names.length, 1);
    assert(!names[0].includes("-pretokenized-"), `cache ${names[0]} skipped the tokenizer`);
    assert(log.some((l) => l.includes(`tokenizing ${data}`)), `no tokenizer status line:\n${log.join("\n")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prepare: the summary of pre-tokenized data counts the lines cut to --seq-len", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesp_pretok_" });
  try {
    const model = await modelWithTokenizer(dir);
    const data = `${dir}/ids.jsonl`;
    const lines = [10, 50, 80].map((n) =>
      JSON.stringify({ input_ids: Array.from({ length: n }, (_, i) => i % 250) })
    );
    await Deno.writeTextFile(data, lines.join("\n") + "\n");
    const log: string[] = [];
    const prepared = await prepare(
      { model, weights: "f32", cacheDir: `${dir}/cache`, data: [data], seqLen: 32 },
      (m) => log.push(m),
    );
    prepared.pack.source.close?.();
    // kept: 10 + 32 + 32 tokens, each trained from position 1 on
    const want = `${data}: 3 examples, 74 tokens, 71 trained; 2 cut to --seq-len 32`;
    assert(log.includes(want), `no "${want}" in:\n${log.join("\n")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prepare: a --seq-len that leaves most examples without a trained token is warned about", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesp_pretok_" });
  try {
    const model = await modelWithTokenizer(dir);
    const data = new URL("../data/lumen/train.jsonl", import.meta.url).pathname;
    const log: string[] = [];
    const prepared = await prepare(
      { model, weights: "f32", cacheDir: `${dir}/cache`, data: [data], seqLen: 16 },
      (m) => log.push(m),
    );
    prepared.pack.source.close?.();
    const warning = log.find((l) => l.startsWith(`warning: ${data}: most examples (`));
    assert(
      warning?.endsWith("within the first 16 tokens and are left out: a longer --seq-len keeps them"),
      log.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
