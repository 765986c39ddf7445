// Root cause 4: signals and children. SIGINT, SIGTERM and SIGHUP sent to a real training process save the
// training state and exit 130/143/129; a run killed with -9 leaves temp files and a lock that the next start
// removes; the preparation child (and anything it starts) ends with its parent.
import { assert, assertEquals } from "./_assert.ts";
import {
  allFinite,
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
import { SAME_REQUEST_MS } from "../src/cli/signals.ts";

const CONFIG = new URL("../deno.json", import.meta.url).pathname;

const tmp = await Deno.makeTempDir({ prefix: "mesp-signals-" });
const cache = `${tmp}/cache`;
const model = await copyCase("gqa_tied_f32", `${tmp}/model`);
const data = await idsData(`${tmp}/train.jsonl`);
const trainArgs = (out: string) => smallTrain(model, data, "--threads", "1", "--out", out);

/** Starts a long training run and resolves once it has logged step `step`. */
function startRun(out: string, step: number, extra: string[] = []) {
  return watchRun(mespCommand(tmp, cache, ...trainArgs(out), "--steps", "100000", ...extra).spawn(), step);
}

/** Resolves once the training run `child` (`--json`) has logged step `step`. */
async function watchRun(child: Deno.ChildProcess, step: number) {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes(`"step":${step},`)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the run ended before step ${step}`);
    seen += value;
  }
  const stderr = new Response(child.stderr).text();
  return {
    child,
    async finish() {
      while (!(await reader.read()).done) { /* drain */ }
      return { code: (await child.status).code, stderr: await stderr };
    },
  };
}

const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
for (const [signal, code] of Object.entries(codes) as [Deno.Signal, number][]) {
  Deno.test(`signals: ${signal} saves the training state at a step boundary and exits ${code}`, async () => {
    const out = `${tmp}/${signal}`;
    const run = await startRun(out, 3);
    run.child.kill(signal);
    const { code: got, stderr } = await run.finish();
    assertEquals(got, code, stderr);
    assert(stderr.includes(`${signal}: stopping after this step`), stderr);
    assert(/stopped at step \d+ of 100000 \(training state saved; --resume continues\)/.test(stderr), stderr);
    const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
    const steps = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l).step
    );
    assert(ck.state.step >= 3, `saved at step ${ck.state.step}`);
    assertEquals(steps.at(-1), ck.state.step, "the saved state is the last logged step");
    assert(await allFinite(`${out}/adapter_model.safetensors`));
    assert(!(await Deno.stat(`${out}/.lock`).catch(() => false)), "lock released");
  });
}

Deno.test("signals: a second signal a moment later quits at once (exit 143), saying what is lost; the lock is released", async () => {
  const out = `${tmp}/twice`;
  // steps of 10,000 sequences: the first outlasts the pause between the two signals
  const child = mespCommand(tmp, cache, ...trainArgs(out), "--steps", "100000", "--grad-accum", "10000")
    .spawn();
  const stdout = new Response(child.stdout).text();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  while (!stderr.includes("memory plan:")) { // printed once training has begun
    const { value, done } = await reader.read();
    if (done) throw new Error(`the run ended before training:\n${stderr}`);
    stderr += value;
  }
  child.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, SAME_REQUEST_MS + 300));
  child.kill("SIGTERM");
  for (let r = await reader.read(); !r.done; r = await reader.read()) stderr += r.value;
  assertEquals((await child.status).code, 143, stderr);
  await stdout;
  assert(
    stderr.includes(
      "SIGTERM again: quitting without saving; nothing of this run was saved (--force starts it over)",
    ),
    stderr,
  );
  assert(!(await Deno.stat(`${out}/.lock`).catch(() => false)), "lock released");
  // nothing saved: --resume says so and how to go on
  const again = await mesp(cache, ...trainArgs(out), "--resume");
  assert(again.code !== 0, "resumed a run that saved nothing");
  assert(
    again.stderr.includes("stopped before it saved a training state (metrics.jsonl only)") &&
      again.stderr.includes("--force starts it over"),
    again.stderr,
  );
});

Deno.test("signals: one Ctrl-C in a terminal under `deno task train` (SIGINT to the task and to the run) saves and exits 130", async () => {
  // a session of its own, so that its process group gets the signal as a terminal's Ctrl-C sends it
  const out = `${tmp}/task`;
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "task", "--config", CONFIG, ...trainArgs(out), "--steps", "100000"],
    env: { MESP_CACHE: cache, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const run = await watchRun(child, 3);
  Deno.kill(-child.pid, "SIGINT");
  const { code, stderr } = await run.finish();
  assertEquals(code, 130, stderr);
  assert(/stopped at step \d+ of 100000 \(training state saved; --resume continues\)/.test(stderr), stderr);
  assert(!stderr.includes("quitting without saving"), stderr);
  const ck = await decodeTrainingState(await Deno.readFile(`${out}/checkpoint.safetensors`));
  assert(ck.state.step >= 3, `saved at step ${ck.state.step}`);
});

Deno.test("signals: train --out R --resume alone takes the paths the run recorded, from any working directory", async () => {
  // started with paths relative to tmp, resumed from another directory
  await Deno.mkdir(`${tmp}/elsewhere`, { recursive: true });
  const rel = smallTrain("model", "train.jsonl", "--threads", "1", "--out", "rel", "--steps", "2");
  const first = await mespIn(tmp, cache, ...rel);
  assertEquals(first.code, 0, first.stderr);
  const r = await mespIn(
    `${tmp}/elsewhere`,
    cache,
    ..."train --out ../rel --resume --allow-change steps --steps 3 --json".split(" "),
  );
  assertEquals(r.code, 0, r.stderr);
  assert(r.stderr.includes(`--resume: the run's recorded --model ${model} --data ${data}`), r.stderr);
  assert(r.stderr.includes("resuming ../rel at step 2"), r.stderr);
});

Deno.test("signals: after kill -9, the next start removes the run's *.tmp-* files and the stale lock", async () => {
  const out = `${tmp}/killed`;
  const run = await startRun(out, 3, ["--save-every", "1"]);
  run.child.kill("SIGKILL");
  await run.finish();
  assert(await Deno.stat(`${out}/.lock`).then(() => true, () => false), "kill -9 leaves the lock");
  // what a kill in the middle of an atomic write leaves
  await Deno.writeTextFile(`${out}/checkpoint.safetensors.tmp-1f2e3d4c`, "half a checkpoint");
  await Deno.writeTextFile(`${out}/adapter_model.safetensors.tmp-99aa`, "half an adapter");
  await Deno.writeTextFile(`${out}/notes.tmp-draft`, "not ours: not a temp name"); // kept
  // on a loaded machine the run may be past step 3 when the kill lands: resume to 3 steps past what it logged
  const logged = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").length;
  const total = logged + 3;
  const r = await mesp(
    cache,
    ...trainArgs(out),
    "--resume",
    "--allow-change",
    "steps",
    "--steps",
    String(total),
  );
  assertEquals(r.code, 0, r.stderr);
  // the two planted ones, and any the kill itself left mid-save
  assert(/removed [2-9] interrupted write\(s\)/.test(r.stderr), r.stderr);
  for (const t of ["adapter_model.safetensors.tmp-99aa", "checkpoint.safetensors.tmp-1f2e3d4c"]) {
    assert(r.stderr.includes(t), `${t} named:\n${r.stderr}`);
  }

  const left = [...(await snapshot(out)).keys()].map((p) => p.slice(out.length + 1)).sort();
  assertEquals(left, [
    "adapter_config.json",
    "adapter_model.safetensors",
    "checkpoint.safetensors",
    "loss.svg",
    "metrics.jsonl",
    "notes.tmp-draft",
  ]);
  const steps = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).step
  );
  assertEquals(
    steps,
    Array.from({ length: total }, (_, i) => i + 1),
    "each step once, even those logged after the last save",
  );
});

Deno.test("signals: the temp files of a run are removed even when the start then fails", async () => {
  const out = `${tmp}/complete`;
  assertEquals((await mesp(cache, ...trainArgs(out), "--steps", "2")).code, 0);
  const before = await snapshot(out);
  await Deno.writeTextFile(`${out}/loss.svg.tmp-abc`, "<svg");
  const r = await mesp(cache, ...trainArgs(out), "--resume");
  assertFails(
    r,
    1,
    /the run in .* is complete \(step 2 of 2\); --allow-change steps --steps N trains it further/,
    "complete",
  );
  await assertUnchanged(before, "complete run");
  assert(!(await Deno.stat(`${out}/loss.svg.tmp-abc`).catch(() => false)), "temp removed");
});

/** Every live descendant of process `pid` (Linux /proc). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      parent.set(+e.name, +stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) if (pp === p) (found.push(c), walk(c));
  };
  walk(pid);
  return found;
}

const alive = (pid: number) => {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/\) Z /.test(stat); // a zombie has ended
  } catch {
    return false;
  }
};

Deno.test({
  name: "signals: kill -9 of the parent while it prepares ends the preparation child and its tokenizer",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // a model with the real tokenizer and a dataset that takes a while to tokenize
    const tiny = `${tmp}/tiny`;
    assertEquals((await mesp(cache, "make-model", "--preset", "tiny", "--out", tiny)).code, 0);
    const text = `${tmp}/text.jsonl`;
    const line = JSON.stringify({
      text: "The Lumen battery lasts about nine hours of mixed use. ".repeat(40),
    });
    await Deno.writeTextFile(text, (line + "\n").repeat(4000));
    const parent = mespCommand(tmp, cache, "train", "--model", tiny, "--data", text, "--out", `${tmp}/prep`)
      .spawn();
    let kids: number[] = [];
    const t0 = Date.now();
    while (kids.length === 0 && Date.now() - t0 < 20000) {
      await new Promise((r) => setTimeout(r, 50));
      kids = descendants(parent.pid);
    }
    assert(kids.length > 0, "the preparation child was started");
    await new Promise((r) => setTimeout(r, 500)); // into its work
    kids = descendants(parent.pid);
    parent.kill("SIGKILL");
    await parent.status;
    await parent.stdout.cancel();
    await parent.stderr.cancel();
    const t1 = Date.now();
    while (kids.some(alive) && Date.now() - t1 < 10000) await new Promise((r) => setTimeout(r, 50));
    assertEquals(kids.filter(alive), [], "every child of the killed parent has ended");
  },
});

Deno.test("signals: SIGTERM while preparing exits 143 at once, releases the lock and leaves no empty --out", async () => {
  const big = `${tmp}/big.jsonl`;
  await idsData(big, 20000, 24);
  const out = `${tmp}/early`;
  const child = mespCommand(tmp, `${tmp}/cache-early`, ...trainArgs(out).map((a) => a === data ? big : a))
    .spawn();
  // wait for the lock to be taken (the file holds the run's pid once the OS lock is held): the run owns its
  // directory and is preparing
  const owner = async () => {
    try {
      return JSON.parse(await Deno.readTextFile(`${out}/.lock`)).pid; // missing, empty or half written: not yet
    } catch {
      return undefined;
    }
  };
  while (await owner() !== child.pid) await new Promise((r) => setTimeout(r, 20));
  child.kill("SIGTERM");
  const status = await child.status;
  await child.stdout.cancel();
  const stderr = await new Response(child.stderr).text();
  assertEquals(status.code, 143);
  assert(
    stderr.includes(`SIGTERM: stopped before training began; removed ${out} (made for this run)`),
    stderr,
  );
  assert(!(await Deno.stat(`${out}/.lock`).catch(() => false)), "lock released");
  // the run made its --out and wrote nothing into it: nothing is left behind, as after a failed start
  assert(!(await Deno.stat(out).catch(() => false)), `${out} is left behind`);
});

Deno.test("signals: exitCleanlyOnSignal (every command but train, and the packing child, installs it) removes half-written files and what onStop names, says so, and exits 130/143", async () => {
  const signals = new URL("../src/cli/signals.ts", import.meta.url).href;
  const files = new URL("../src/io/deno_files.ts", import.meta.url).href;
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const dir = await Deno.makeTempDir({ dir: tmp, prefix: "partial-" });
    // a write that never ends, as a merge's of a large model is when the signal comes
    // and an output the command made, registered with onStop (merge's --out)
    const made = `${dir}/made`;
    await Deno.mkdir(`${made}/sub`, { recursive: true });
    const script = `import { exitCleanlyOnSignal, onStop } from "${signals}";
import { writeFileAtomic } from "${files}";
exitCleanlyOnSignal();
onStop(() => { Deno.removeSync("${made}", { recursive: true }); return "${made} (made)"; });
onStop(() => undefined);
const unwanted = onStop(() => { throw new Error("a cleanup no longer wanted ran"); });
unwanted();
setTimeout(() => {}, 60_000);
await writeFileAtomic("${dir}/model.safetensors", async (sink) => {
  await sink.write(new Uint8Array(1 << 20));
  console.log("writing");
  await new Promise(() => {});
});`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-lock", script],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    for (let seen = ""; !seen.includes("writing");) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the writer ended early");
      seen += value;
    }
    const names = async () => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
    assert(
      (await names()).some((n) => n.startsWith("model.safetensors.tmp-")),
      "a temporary file while writing",
    );
    child.kill(signal);
    const { code: got } = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const stderr = await new Response(child.stderr).text();
    assertEquals(got, code, stderr);
    assertEquals(await names(), [], "nothing half-written is left");
    assert(
      new RegExp(
        `${signal}: stopped; removed the partial ${dir}/model\\.safetensors\\.tmp-\\w+, ${made} \\(made\\)\n`,
      )
        .test(stderr),
      stderr,
    );
  }
});

Deno.test("signals: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
