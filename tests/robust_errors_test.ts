// Root cause 7: raw and unclear errors. Impossible sizes in config.json, --top-p 0, a directory or a FIFO
// where a file belongs, and a full disk all give an error that names what is wrong and where, quickly, and
// leave every existing file as it was.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  assertFails,
  assertUnchanged,
  copyCase,
  idsData,
  MAIN,
  type Ran,
  smallTrain,
  snapshot,
} from "./_robust.ts";
import { parseModelConfig } from "../src/model/config.ts";
import { CLI_PERMISSIONS } from "../src/cli/prepare.ts";
import { dirFiles, writeFileAtomic } from "../src/io/deno_files.ts";
import { openAdapter, readAdapterInto } from "../src/engine/adapter.ts";
import { loraLayout } from "../src/engine/lora.ts";
import { caseDir } from "./_golden.ts";
import { decodeTrainingState } from "../src/run/training_state.ts";

const tmp = await Deno.makeTempDir({ prefix: "mesp-errors-" });
const cache = `${tmp}/cache`;
const data = await idsData(`${tmp}/train.jsonl`);

/** `mesp` that is killed after 60 s: a hang fails the test instead of stalling the suite. */
async function mesp(...args: string[]): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_PERMISSIONS, MAIN, ...args],
    env: { MESP_CACHE: cache, NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("errors: impossible sizes in config.json name the field (no allocation failure, no stack overflow)", async () => {
  const base = JSON.parse(
    await Deno.readTextFile(`${await copyCase("gqa_tied_f32", `${tmp}/cfg`)}/config.json`),
  );
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { vocab_size: 2_000_000_000 },
      /vocab_size: 2000000000 is beyond what any model can hold here \(at most 16777216\)/,
    ],
    [{ intermediate_size: 2_000_000_000 }, /intermediate_size: 2000000000 is beyond/],
    [
      { vocab_size: 16_000_000, hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 8 },
      /vocab_size: 16000000 × hidden_size 4096 is more than 2\^31 weights/,
    ],
    [{ num_hidden_layers: 1e9 }, /num_hidden_layers: 1000000000 is beyond/],
  ];
  for (const [change, want] of cases) {
    const dir = `${tmp}/cfg-${Object.keys(change)[0]}`;
    await copyCase("gqa_tied_f32", dir);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...base, ...change }));
    const before = await snapshot(dir);
    for (
      const cmd of [["plan"], ["eval", "--data", data], ["train", "--data", data, "--out", `${dir}/run`]]
    ) {
      const r = await mesp(...cmd, "--model", dir, "--weights", "f32");
      assertFails(
        r,
        1,
        new RegExp(`${dir}/config\\.json: ${want.source}`),
        `${cmd[0]} ${JSON.stringify(change)}`,
      );
    }
    await assertUnchanged(before, JSON.stringify(change));
    assert(!(await Deno.stat(`${dir}/run`).catch(() => false)), "no run directory left");
  }
  assertEquals(
    parseModelConfig({
      ...base,
      vocab_size: 151936,
      hidden_size: 8192,
      num_attention_heads: 64,
      num_key_value_heads: 8,
    }).vocabSize,
    151936,
    "the largest Qwen2.5 shapes pass",
  );
});

Deno.test("errors: --top-p 0 is refused by name", async () => {
  const r = await mesp("generate", "--model", `${tmp}/none`, "--prompt", "x", "--top-p", "0");
  assertFails(r, 1, /--top-p: must be > 0, got 0/, "top-p");
});

Deno.test("errors: a FIFO or a directory where a file belongs is named at once, never read", async () => {
  const model = await copyCase("gqa_tied_f32", `${tmp}/fifo-model`);
  await Deno.remove(`${model}/model.safetensors`);
  await new Deno.Command("mkfifo", { args: [`${model}/model.safetensors`] }).output();
  const sharded = await copyCase("mqa_f16_sharded", `${tmp}/fifo-shard`);
  const shard = [...Deno.readDirSync(sharded)].map((e) => e.name).find((n) => /-00002-of-/.test(n))!;
  await Deno.remove(`${sharded}/${shard}`);
  await new Deno.Command("mkfifo", { args: [`${sharded}/${shard}`] }).output();
  const dirModel = await copyCase("gqa_tied_f32", `${tmp}/dir-model`);
  await Deno.remove(`${dirModel}/model.safetensors`);
  await Deno.mkdir(`${dirModel}/model.safetensors`);
  const fifoData = `${tmp}/data.fifo`;
  await new Deno.Command("mkfifo", { args: [fifoData] }).output();
  const good = await copyCase("gqa_tied_f32", `${tmp}/good`);
  const cases: [string[], RegExp][] = [
    [
      ["eval", "--model", model, "--data", data],
      /fifo-model\/model\.safetensors is not a regular file \(a FIFO/,
    ],
    [
      ["eval", "--model", sharded, "--data", data],
      new RegExp(`${shard.replaceAll(".", "\\.")} is not a regular file`),
    ],
    [
      ["eval", "--model", dirModel, "--data", data],
      /dir-model\/model\.safetensors is a directory, not a file/,
    ],
    [["eval", "--model", good, "--data", fifoData], /--data .*data\.fifo is not a regular file \(a FIFO/],
    [["train", "--model", good, "--data", tmp, "--out", `${tmp}/r`], /--data .* is a directory; give a file/],
    [
      ["train", "--model", good, "--data", data, "--val", fifoData, "--out", `${tmp}/r`],
      /--val .*data\.fifo is not a regular file/,
    ],
    [
      ["grad", "--model", good, "--data", `${tmp}/missing.jsonl`, "--out", `${tmp}/g.st`],
      /--data .*missing\.jsonl: file not found/,
    ],
    // a file where a directory belongs: each once a raw "Not a directory (os error 20)" naming no flag
    [
      ["eval", "--model", good, "--data", data, "--adapter", data],
      /--adapter .*train\.jsonl is a file; give the directory that holds adapter_config\.json/,
    ],
    [["plan", "--model", data], /train\.jsonl is a file, not a model directory/],
    [
      ["train", "--model", good, "--data", data, "--out", `${data}/run`],
      /train\.jsonl\/run: .*train\.jsonl is a file, not a directory/,
    ],
  ];
  for (const [args, want] of cases) {
    const r = await mesp(...args, "--weights", "f32");
    assertFails(r, 1, want, args.slice(0, 3).join(" "));
  }
});

Deno.test("errors: writing over a directory names it", async () => {
  const dir = `${tmp}/a-dir`;
  await Deno.mkdir(dir);
  await assertRejects(
    () => writeFileAtomic(dir, new Uint8Array(1)),
    `cannot write ${dir}: it is a directory`,
  );
});

Deno.test("errors: a failed write names the file asked for, not only its temporary sibling", async () => {
  const file = `${tmp}/a-file`;
  await Deno.writeTextFile(file, "x");
  // the OS names "a-file/out.bin.tmp-…", which once passed for naming a-file/out.bin
  const err = await assertRejects(
    () => writeFileAtomic(`${file}/out.bin`, new Uint8Array(1)),
    "Not a directory",
  );
  assert(err.message.startsWith(`cannot write ${file}/out.bin: `), err.message);
});

/** A small tmpfs, where the machine allows mounting one (root with CAP_SYS_ADMIN). */
async function smallDisk(path: string, size: string): Promise<boolean> {
  await Deno.mkdir(path, { recursive: true });
  const r = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", path],
    stderr: "null",
  })
    .output().catch(() => undefined);
  return r?.success === true;
}

const disk = `${tmp}/disk`;
const mounted = Deno.build.os === "linux" && await smallDisk(disk, "600k");

Deno.test({
  name: "errors: a full disk fails the save with the file's name; the last training state stays whole",
  ignore: !mounted,
  async fn() {
    try {
      const model = await copyCase("gqa_tied_f32", `${tmp}/disk-model`);
      const out = `${disk}/run`;
      const train = smallTrain(model, data, "--out", out);
      let r = await mesp(...train, "--steps", "1");
      assertEquals(r.code, 0, r.stderr);
      // fill the disk, leaving less than a training state
      const free = () => {
        const df = new TextDecoder().decode(
          new Deno.Command("df", { args: ["-B1", "--output=avail", disk] }).outputSync().stdout,
        );
        return +df.trim().split("\n")[1];
      };
      await Deno.writeFile(`${disk}/filler`, new Uint8Array(Math.max(0, free() - 8192)));
      const before = await snapshot(out);
      r = await mesp(...train, "--resume", "--allow-change", "steps", "--steps", "3");
      assertFails(
        r,
        1,
        // the spill is reserved before the first step, so a full disk is usually found there
        new RegExp(
          `cannot (write|append to) (the spill file )?${out}/[a-z_.]+(-[0-9a-z]+\\.tmp)?: No space left on device`,
        ),
        "disk full",
      );
      const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
      assertEquals(ck.state.step, 1, "the step-1 training state is intact");
      for (const [path, bytes] of before) {
        if (!path.endsWith("metrics.jsonl")) await assertUnchanged(new Map([[path, bytes]]), "disk full");
      }
      const temps = [...Deno.readDirSync(out)].filter((e) => e.name.includes(".tmp-"));
      assertEquals(temps, [], "no temp file left");
    } finally {
      await new Deno.Command("umount", { args: [disk] }).output();
    }
  },
});

Deno.test("errors: an adapter whose config's r differs from its tensors' rank says so, not that the model is another", async () => {
  const model = caseDir("gqa_tied_f32"), dir = `${tmp}/adapter-r`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(`${model}/adapter/adapter_model.safetensors`, `${dir}/adapter_model.safetensors`);
  const config = JSON.parse(await Deno.readTextFile(`${model}/adapter/adapter_config.json`));
  const rank = config.r;
  config.r = rank * 2;
  await Deno.writeTextFile(`${dir}/adapter_config.json`, JSON.stringify(config));
  const cfg = parseModelConfig(JSON.parse(await Deno.readTextFile(`${model}/config.json`)));
  const adapter = await openAdapter(dirFiles(dir));
  const layout = loraLayout(cfg, adapter.config);
  await assertRejects(
    () => readAdapterInto(adapter, layout, new Float32Array(layout.totalElements)),
    `its config's r is ${rank * 2}, but the tensor has rank ${rank}`,
  );
  // an adapter of another model's sizes: the model's shape is named
  const other = await openAdapter(dirFiles(`${caseDir("odd_sizes")}/adapter`));
  await assertRejects(
    () => readAdapterInto(other, loraLayout(cfg, other.config), new Float32Array(1 << 20)),
    "an adapter for a model of other sizes?",
  );
  // the CLI checks it before packing or tokenizing anything (it warned, packed, then failed)
  const r = await mesp(
    "eval",
    "--model",
    model,
    "--data",
    data,
    "--adapter",
    `${caseDir("odd_sizes")}/adapter`,
  );
  assertFails(r, 1, /an adapter for a model of other sizes\?/, "eval with another model's adapter");
  assert(!/packing|tokeniz/i.test(r.stderr), r.stderr);
});

Deno.test("errors: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
