// Root cause 3: outputs. One rule for every command that writes: an empty path is refused, nothing that
// exists is replaced without --force, a directory is not a file, a run directory is locked while in use,
// and --force starts a clean run (no metrics rows of the old one).
import { assert, assertEquals } from "./_assert.ts";
import {
  assertFails,
  assertUnchanged,
  copyCase,
  idsData,
  mesp,
  mespCommand,
  mespIn,
  smallTrain,
  snapshot,
} from "./_robust.ts";
import { decodeTrainingState } from "../src/run/training_state.ts";
import { exists } from "../src/io/deno_files.ts";

const tmp = await Deno.makeTempDir({ prefix: "mesp-outputs-" });
const cache = `${tmp}/cache`;
const model = await copyCase("gqa_tied_f32", `${tmp}/model`);
const data = await idsData(`${tmp}/train.jsonl`);
const trainArgs = (out: string) => smallTrain(model, data, "--threads", "1", "--out", out);
const gradArgs = ["grad", "--model", model, "--weights", "f32", "--data", data, "--seq-len", "24"];

const metricSteps = async (out: string) =>
  (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l).step);

Deno.test("outputs: grad --out refuses to replace any existing file (the model's own weights) without --force", async () => {
  const before = await snapshot(model);
  const target = `${model}/model.safetensors`;
  const r = await mesp(cache, ...gradArgs, "--out", target);
  assertFails(r, 1, /--out .*model\.safetensors is inside the model directory/, "grad over the model");
  await assertUnchanged(before, "grad over the model");
  await Deno.mkdir(`${tmp}/grads-dir`);
  const dir = await mesp(cache, ...gradArgs, "--out", `${tmp}/grads-dir`);
  assertFails(
    dir,
    1,
    /--out .*grads-dir is a directory; this output is one file: give its path/,
    "grad onto a directory",
  );
  await assertUnchanged(before, "grad onto a directory");
  // a file of the user's that is not the model: replaced only with --force
  const mine = `${tmp}/grads.safetensors`;
  await Deno.writeTextFile(mine, "my old gradients");
  assertFails(await mesp(cache, ...gradArgs, "--out", mine), 1, /already exists/, "grad over a file");
  assertEquals(await Deno.readTextFile(mine), "my old gradients");
  const forced = await mesp(cache, ...gradArgs, "--out", mine, "--force");
  assertEquals(forced.code, 0, forced.stderr);
  assert((await Deno.stat(mine)).size > 1000, "replaced by the gradients");
});

Deno.test("outputs: an empty path ('' from an unset variable) is refused by every writing command", async () => {
  const cwd = `${tmp}/cwd`;
  await Deno.mkdir(cwd);
  await Deno.writeTextFile(`${cwd}/keep.txt`, "x");
  const before = await snapshot(cwd);
  const cases: [string[], RegExp][] = [
    [trainArgs(""), /--out: empty path/],
    [[...gradArgs, "--out", ""], /--out: empty path/],
    [["make-model", "--preset", "tiny", "--out", ""], /--out: empty path/],
    [["make-model", "--preset", "tiny", "--out", " "], /--out: empty path/],
    [["eval", "--model", "", "--data", data], /--model: empty path/],
    [[...trainArgs(`${tmp}/e`), "--cache-dir", ""], /--cache-dir: empty path/],
  ];
  for (const [args, want] of cases) assertFails(await mespIn(cwd, cache, ...args), 1, want, args.join(" "));
  await assertUnchanged(before, "empty paths");
  assertEquals([...(await snapshot(cwd)).keys()], [...before.keys()], "nothing new in the working directory");
});

Deno.test("outputs: export, merge and the cache name the flag at fault: a file where a directory goes, a directory where a file goes, a file on the way", async () => {
  const run = `${tmp}/for-export`;
  const trained = await mesp(cache, ...trainArgs(run), "--steps", "1");
  assertEquals(trained.code, 0, trained.stderr);
  const file = `${tmp}/a-file`, dir = `${tmp}/a-dir`;
  await Deno.writeTextFile(file, "mine");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/keep.txt`, "x");
  await Deno.mkdir(`${tmp}/m-dir-cfg/config.json`, { recursive: true });
  const before = await snapshot(run, dir, `${tmp}/m-dir-cfg`);
  const notDir = /--out .*\/a-file exists and is not a directory/;
  const cases: [string[], RegExp][] = [
    [["merge", "--adapter", run, "--out", file], notDir],
    [["export", "--adapter", run, "--format", "mlx", "--out", file], notDir],
    [
      ["merge", "--adapter", run, "--format", "gguf", "--out", dir, "--force"],
      /--out .*\/a-dir is a directory; this output is one file/,
    ],
    [
      ["export", "--adapter", run, "--format", "gguf", "--out", dir, "--force"],
      /--out .*\/a-dir is a directory; this output is one file/,
    ],
    [
      ["export", "--adapter", run, "--format", "gguf", "--out", `${file}/x.gguf`],
      /--out .*a-file\/x\.gguf: one of the folders on its path is a file/,
    ],
    [["export", "--adapter", run, "--format", "gguf", "--base", dir], /--base .*\/a-dir is a directory/],
    // a path the task's permissions do not reach: Deno's "run again with --allow-all" is not the way out
    [
      ["export", "--adapter", run, "--format", "mlx", "--out", "/proc/mesp-x"],
      /--out \/proc\/mesp-x: Requires all access to "\/proc\/mesp-x" \(not granted to this process: under deno task, give a path its task may use, .* add --allow-all\)$/m,
    ],
    [
      ["export", "--adapter", run, "--format", "gguf", "--out", `${tmp}/x.gguf`, "--base", `${tmp}/x.gguf`],
      /--base .*x\.gguf is --out too/,
    ],
    [
      ["merge", "--adapter", run, "--out", `${tmp}/m-dir-cfg`, "--force"],
      /--out .*m-dir-cfg\/config\.json is a directory/,
    ],
    [["merge", "--adapter", run, "--out", ""], /--out: empty path/],
    [["export", "--adapter", run, "--format", "gguf", "--out", ""], /--out: empty path/],
    [
      [...trainArgs(`${tmp}/c1`), "--cache-dir", file],
      /--cache-dir: .*\/a-file exists and is not a directory/,
    ],
  ];
  for (const [args, want] of cases) assertFails(await mesp(cache, ...args), 1, want, args.join(" "));
  // $MESP_CACHE naming a file (the demo makes its model there first), or empty (not the filesystem's root)
  assertFails(
    await mesp(file, "train", "--steps", "1"),
    1,
    /the cache directory \(\$MESP_CACHE, else ~\/\.cache\/mesp\): .*\/a-file exists and is not a directory/,
    "the demo with $MESP_CACHE a file",
  );
  assertFails(
    await mesp("", ...trainArgs(`${tmp}/c2`)),
    1,
    /\$MESP_CACHE is set but empty/,
    "empty $MESP_CACHE",
  );
  assertEquals(await Deno.readTextFile(file), "mine");
  await assertUnchanged(before, "export and merge refused");
  // an existing MLX export is kept without --force, replaced with it
  const mlx = `${tmp}/mlx`;
  assertEquals((await mesp(cache, "export", "--adapter", run, "--format", "mlx", "--out", mlx)).code, 0);
  const again = await mesp(cache, "export", "--adapter", run, "--format", "mlx", "--out", mlx);
  assertFails(
    again,
    1,
    /--out .*\/mlx already holds adapters\.safetensors; use --force/,
    "export over an export",
  );
  assertEquals(
    (await mesp(cache, "export", "--adapter", run, "--format", "mlx", "--out", mlx, "--force")).code,
    0,
  );
});

Deno.test("outputs: train refuses the model's own directory as --out", async () => {
  const before = await snapshot(model);
  const r = await mesp(cache, ...trainArgs(`${model}/`), "--steps", "1");
  assertFails(
    r,
    1,
    /--out .* is the model .* itself: give the output a place of its own/,
    "train into the model",
  );
  await assertUnchanged(before, "train into the model");
});

Deno.test("outputs: no command writes into the model, even with --force or through ./ and ..", async () => {
  const run = `${tmp}/for-inside`;
  assertEquals((await mesp(cache, ...trainArgs(run), "--steps", "1")).code, 0);
  const before = await snapshot(model);
  const name = model.split("/").at(-1)!;
  const withRun = (command: string) => [command, "--adapter", run, "--model", model];
  const cases: [string[], RegExp][] = [
    [
      [...withRun("merge"), "--out", `${tmp}/./${name}`, "--force"],
      /is the model .* itself/,
    ],
    [[...withRun("merge"), "--out", `${model}/../${name}/`, "--force"], /itself/],
    [
      [...withRun("merge"), "--format", "gguf", "--out", `${model}/m.gguf`, "--force"],
      /--out .*m\.gguf is inside/,
    ],
    [
      [...gradArgs, "--out", `${tmp}/./${name}/model.safetensors`, "--force"],
      /--out .*model\.safetensors is inside the model directory/,
    ],
    [
      [...withRun("export"), "--format", "gguf", "--base", `${model}/base.gguf`, "--force"],
      /--base .*base\.gguf is inside the model directory/,
    ],
  ];
  // a missing folder and `..` (normalised without the disk: mkdir would make the folder and land inside)
  cases.push([
    [...gradArgs, "--out", `${tmp}/no-such/../${name}/model.safetensors`, "--force"],
    /is inside the model directory/,
  ]);
  for (const [args, want] of cases) assertFails(await mesp(cache, ...args), 1, want, args.join(" "));
  await assertUnchanged(before, "the model");
  // a Hub snapshot's files are links into its blobs: a write replaces the link, inside the snapshot
  const blobs = `${tmp}/hub/blobs`, snap = `${tmp}/hub/snapshots/abc`;
  await Deno.mkdir(blobs, { recursive: true });
  await Deno.mkdir(snap, { recursive: true });
  for (const f of Deno.readDirSync(model)) {
    if (!f.isFile) continue;
    await Deno.copyFile(`${model}/${f.name}`, `${blobs}/${f.name}`);
    await Deno.symlink(`../../blobs/${f.name}`, `${snap}/${f.name}`);
  }
  const snapArgs = gradArgs.map((a) => a === model ? snap : a);
  const linked = await mesp(cache, ...snapArgs, "--out", `${snap}/model.safetensors`, "--force");
  assertFails(linked, 1, /is inside the model directory/, "grad over a snapshot's link");
  assert((await Deno.lstat(`${snap}/model.safetensors`)).isSymlink, "the link is still there");
});

Deno.test("outputs: merge replaces another model's weights in --out only with --force, copies no other weights, leaves no --out on a bad base", async () => {
  const run = `${tmp}/for-merge`;
  assertEquals((await mesp(cache, ...trainArgs(run), "--steps", "1")).code, 0);
  // a base with weights of another format beside its safetensors: not the merged model, so not copied
  const base = await copyCase("gqa_tied_f32", `${tmp}/base-with-bin`);
  await Deno.writeTextFile(`${base}/pytorch_model.bin`, "unmerged");
  const out = `${tmp}/merged-over`;
  await Deno.mkdir(out);
  await Deno.writeTextFile(`${out}/model-00001-of-00002.safetensors`, "another model's shard");
  await Deno.writeTextFile(`${out}/notes.txt`, "mine");
  await Deno.writeTextFile(`${out}/training_args.bin`, "a run's own file, not weights");
  const merge = (...more: string[]) =>
    mesp(cache, "merge", "--adapter", run, "--model", base, "--out", out, ...more);
  assertFails(
    await merge(),
    1,
    /--out .* holds another model's weights \(model-00001-of-00002\.safetensors\)/,
    "kept",
  );
  const r = await merge("--force");
  assertEquals(r.code, 0, r.stderr);
  const names = (await Array.fromAsync(Deno.readDir(out))).map((e) => e.name).sort();
  assert(
    !names.includes("model-00001-of-00002.safetensors") && !names.includes("pytorch_model.bin"),
    names.join(),
  );
  assert(names.includes("model.safetensors") && names.includes("config.json"), names.join());
  assertEquals(await Deno.readTextFile(`${out}/notes.txt`), "mine");
  assert(names.includes("training_args.bin"), "a file that is not a model's weights stays");
  // a base whose weights cannot be read: refused before --out is made
  const bad = await copyCase("gqa_tied_f32", `${tmp}/bad-base`);
  await Deno.writeTextFile(`${bad}/model.safetensors`, "not safetensors");
  const failed = await mesp(cache, "merge", "--adapter", run, "--model", bad, "--out", `${tmp}/never`);
  assertEquals(failed.code, 1, failed.stderr);
  assert(!(await exists(`${tmp}/never`)), "no empty --out");
});

Deno.test("outputs: train refuses an --out that holds any file of a run, or is a file", async () => {
  for (const f of ["metrics.jsonl", "loss.svg", "adapter_config.json"]) {
    const out = `${tmp}/holds-${f}`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(`${out}/${f}`, "mine");
    const before = await snapshot(out);
    assertFails(
      await mesp(cache, ...trainArgs(out), "--steps", "1"),
      1,
      new RegExp(`already holds a run \\(${f}\\)`),
      f,
    );
    await assertUnchanged(before, f);
  }
  const file = `${tmp}/a-file`;
  await Deno.writeTextFile(file, "not a directory");
  assertFails(
    await mesp(cache, ...trainArgs(file), "--steps", "1"),
    1,
    /--out: .*a-file exists and is not a directory/,
    "file",
  );
  assertEquals(await Deno.readTextFile(file), "not a directory");
  assertFails(await mesp(cache, ...trainArgs(`${tmp}/x`), "--resume", "--force"), 1, /give one/, "both");
});

Deno.test("outputs: --force starts a clean run: old metrics rows and training state are gone", async () => {
  const out = `${tmp}/forced`;
  let r = await mesp(cache, ...trainArgs(out), "--steps", "3");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(await metricSteps(out), [1, 2, 3]);
  r = await mesp(cache, ...trainArgs(out), "--steps", "2", "--force", "--seed", "5");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(await metricSteps(out), [1, 2], "only the new run's rows");
  const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assertEquals([ck.state.step, ck.state.seed], [2, 5]);
  // export's default outputs in the run folder are the old run's adapter: a resume says so, --force removes
  // them (a file of the user's beside them stays)
  const exported = await mesp(cache, "export", "--adapter", out, "--format", "mlx");
  assertEquals(exported.code, 0, exported.stderr);
  await Deno.writeTextFile(`${out}/notes.txt`, "mine");
  r = await mesp(cache, ...trainArgs(out), "--resume", "--allow-change", "steps", "--steps", "3");
  assertEquals(r.code, 0, r.stderr);
  assert(
    r.stderr.includes(`notice: ${out}/mlx/adapters.safetensors, ${out}/mlx/adapter_config.json hold`),
    r.stderr,
  );
  r = await mesp(cache, ...trainArgs(out), "--steps", "2", "--force");
  assertEquals(r.code, 0, r.stderr);
  assert(!(await exists(`${out}/mlx`)), "the old export is gone");
  // and it says what it removed, by name (the user's notes.txt not among them)
  assert(
    r.stderr.includes(
      `--force: removed checkpoint.safetensors, adapter_model.safetensors, adapter_config.json, metrics.jsonl, ` +
        `loss.svg, mlx/adapters.safetensors, mlx/adapter_config.json, mlx/ from ${out}\n`,
    ),
    r.stderr,
  );
  assertEquals(await Deno.readTextFile(`${out}/notes.txt`), "mine");
  // a user's file in the mlx folder keeps it; a run file that cannot be removed stops --force, named
  // (a non-empty directory stands for one without permission, which root here would remove anyway)
  await Deno.mkdir(`${out}/mlx`);
  await Deno.writeTextFile(`${out}/mlx/mine.txt`, "mine");
  await Deno.remove(`${out}/loss.svg`);
  await Deno.mkdir(`${out}/loss.svg`);
  await Deno.writeTextFile(`${out}/loss.svg/x`, "x");
  r = await mesp(cache, ...trainArgs(out), "--steps", "2", "--force");
  assertFails(
    r,
    1,
    /--force: .*\/forced\/loss\.svg is a directory, not a file of a run/,
    "unremovable run file",
  );
  assert(await exists(`${out}/checkpoint.safetensors`), "refused before anything of the old run was removed");
  // the directory moved away, --force replaces the run; a user's file in the mlx folder keeps it
  await Deno.remove(`${out}/loss.svg`, { recursive: true });
  r = await mesp(cache, ...trainArgs(out), "--steps", "2", "--force");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(await Deno.readTextFile(`${out}/mlx/mine.txt`), "mine");
});

Deno.test("outputs: a run directory in use is locked; a lock left by a killed process is taken over", async () => {
  const out = `${tmp}/locked`;
  await Deno.mkdir(out);
  // a live process holds it (this test, with the OS lock a run takes)
  const held = await Deno.open(`${out}/.lock`, { read: true, write: true, create: true });
  assert(await held.tryLock(true));
  await held.write(new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, started: "earlier" })));
  const before = await snapshot(out);
  const r = await mesp(cache, ...trainArgs(out), "--steps", "1");
  assertFails(
    r,
    1,
    new RegExp(`in use by another run \\(process ${Deno.pid}, since earlier\\)`),
    "live lock",
  );
  await assertUnchanged(before, "live lock");
  held.close();
  // the lock file a killed run leaves (its OS lock went with it)
  const ok = await mesp(cache, ...trainArgs(out), "--steps", "1");
  assertEquals(ok.code, 0, ok.stderr);
  assert(!(await Deno.stat(`${out}/.lock`).catch(() => false)), "released at the end");
});

Deno.test("outputs: a second training into the same --out while one runs is refused, files untouched", async () => {
  const out = `${tmp}/busy`;
  const first = mespCommand(tmp, cache, ...trainArgs(out), "--steps", "100000").spawn();
  const lines = first.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes('"step":2,')) seen += (await lines.read()).value ?? "";
  const second = await mesp(cache, ...trainArgs(out), "--steps", "1", "--force");
  assertFails(second, 1, /in use by another run \(process \d+/, "second run");
  first.kill("SIGTERM");
  lines.cancel();
  const status = await first.status;
  await first.stderr.cancel();
  assertEquals(status.code, 143, "the first run stops with SIGTERM's code");
  const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assert(ck.state.step >= 2, "the first run's training state, not the second's");
});

Deno.test("outputs: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
