// The web page (web/) as a person uses it, in headless Chromium, served by the same server as `deno task web`:
// the tiny model's files and the demo dataset given through the file inputs, a bad JSONL line and a budget
// too small refused, 8 training steps whose downloaded adapter is byte-identical to the CLI's `train` with the
// same seed and flags (spilled to OPFS, the page's default), generation equal to the CLI's, the pack reused
// from OPFS after a reload, a paused run resumed after a reload from its state file to the same bytes, in
// memory and spilled (in memory, the adapter read back from that file equal to the paused run's), the adapter
// zip loaded back, and the page reopened offline. Also: a broken tokenizer.json refused when the model is
// opened, and a stored one replaced by a new pick; leftovers of interrupted writes removed at start (not while
// another tab writes); a model open in another tab named as such; the controls that would wait for a run off
// during it; every bad field marked (and only those), its message its description; one focus ring in step 1;
// why Train is off; a loss curve readable at 375 px, and in words.
// Screenshots of each stage (desktop and phone) go to a temporary folder named in the log. Skipped (with a message) where Chromium or playwright-core is missing;
// CI installs both and sets MESP_REQUIRE_RUNTIMES=1, so there it fails instead.
import { assert, assertEquals } from "./_assert.ts";
import { tinyRun } from "./_tiny_run.ts";
import { serveWeb } from "../web/serve.ts";
import { unzipStore, zipStore } from "../src/io/zip.ts";
import { crc32 } from "../src/io/crc32.ts";
import { Buffer } from "node:buffer";
import { launchChromium, type Page, skipWithoutChromium } from "../bench/chromium.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const MAIN = new URL("../src/cli/main.ts", import.meta.url).href;
const DATA = `${ROOT}data/lumen/train.jsonl`;
/** The page's form values and the CLI flags that mean the same (the page's other settings are the CLI's defaults). */
const FORM = { steps: "8", "seq-len": "64", seed: "3", rank: "4", lr: "0.001" };
const CLI_FLAGS = ["--steps", "8", "--seq-len", "64", "--seed", "3", "--rank", "4", "--lr", "0.001"];
const PROMPT = "How long does the Lumen battery last?";

const skip = await skipWithoutChromium("web page tests");

/** Before the page's scripts: every Worker's plan events, kept in `globalThis.mespPlans` (for the test). */
const RECORD_PLANS = `{
  const Base = globalThis.Worker;
  globalThis.Worker = class extends Base {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (e.data?.kind === "event" && e.data.data?.type === "plan") (globalThis.mespPlans ??= []).push(e.data.data);
      });
    }
  };
}`;

async function cli(args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
  }).output();
  assert(out.success, `${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/**
 * Waits until `#id`'s text matches `pattern`, or the page shows an error there, and returns the text. With
 * `from` (the text before the action), that old text never counts, so a stale error is not taken for news.
 */
async function statusOf(page: Page, id: string, pattern: RegExp, timeout = 120_000, from?: string) {
  const waiting = page.waitForFunction(
    ([sel, src, old]) => {
      // deno-lint-ignore no-explicit-any
      const el = (globalThis as any).document.querySelector(sel as string);
      const text = el.textContent ?? "";
      if (old !== null && text === old) return false;
      return new RegExp(src as string).test(text) || (el.className === "error" && !/…$/.test(text));
    },
    [`#${id}`, pattern.source, from ?? null],
    { timeout },
  );
  try {
    await waiting;
  } catch (err) {
    throw new Error(`#${id} never matched ${pattern}: it says "${await page.textContent(`#${id}`)}"`, {
      cause: err,
    });
  }
  return (await page.textContent(`#${id}`)) ?? "";
}

Deno.test({
  name:
    "web page in headless Chromium: data checks, plan refusal, CLI-identical adapter, OPFS reuse and resume",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ref = await tinyRun();
    const model = `${ref.dir}/model`;
    const work = await Deno.makeTempDir({ prefix: "mesp-web-" });
    const shots = `${work}/screenshots`;
    await Deno.mkdir(shots);
    console.log(`web page screenshots: ${shots}`);
    const env = { MESP_CACHE: `${ref.dir}/cache` };
    await cli(
      ["train", "--model", model, "--data", DATA, "--out", `${work}/cli`, "--json", ...CLI_FLAGS],
      env,
    );
    const cliAdapter = await Deno.readFile(`${work}/cli/adapter_model.safetensors`);
    const cliLosses = (await Deno.readTextFile(`${work}/cli/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((m) => m.loss !== undefined).map((m) => m.loss as number);
    const cliBase = (await cli(
      [
        "generate",
        "--model",
        model,
        "--weights",
        "q4",
        "--prompt",
        PROMPT,
        "--temperature",
        "0",
        "--max-tokens",
        "6",
      ],
      env,
    )).trim();

    const server = serveWeb({ root: ROOT, port: 0 });
    const { port } = server.addr as Deno.NetAddr;
    const browser = await launchChromium({
      prefix: "mesp-web-chromium-",
      acceptDownloads: true,
      viewport: { width: 1100, height: 900 },
    });
    const ctx = browser.context;
    await ctx.addInitScript(RECORD_PLANS);
    try {
      const page = await ctx.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      const url = `http://127.0.0.1:${port}/web/`;
      await page.goto(url);
      assert(/Ready: 2 kernel threads|Ready: \d+ kernel thread/.test(await statusOf(page, "env", /Ready/)));

      // before a model, a disabled Train says why
      assertEquals(await page.textContent("#train-why"), "Train needs a model: open one in step 1.");
      assert(await page.isVisible("#train-why"), "the reason Train is off");
      // a focused (hidden) file input shows its focus on its own label, and only there
      await page.focus("#model-url");
      for (const label of ["or choose its files…", "Choose model folder…"]) {
        await page.keyboard.press("Shift+Tab");
        assertEquals(await outlined(page), [label], "outlined in step 1");
      }

      // 1. model, through the file input: converted once
      const files = [...Deno.readDirSync(model)].map((e) => `${model}/${e.name}`);
      await page.setInputFiles("#model-files", files);
      const converted = await statusOf(page, "model-status", /^Ready/);
      assert(converted.includes("converted and kept"), converted);
      assert(((await page.textContent("#model-card")) ?? "").includes("q4"));
      await page.screenshot({ path: `${shots}/1-model.png`, fullPage: true });
      // a wrong pick (config.json alone) is named and leaves the open model usable (the steps below use it)
      const card = await page.textContent("#model-card");
      await page.setInputFiles("#model-files", `${model}/config.json`);
      const onlyConfig = await statusOf(page, "model-status", /tokenizer\.json/, 120_000, converted);
      assert(
        onlyConfig.startsWith("picked files: no tokenizer.json") && onlyConfig.endsWith("is still open."),
        onlyConfig,
      );
      assertEquals(await page.textContent("#model-card"), card);
      // a broken tokenizer.json is refused when the model is opened (loaded as tokenizing will), by name
      const badTok = `${work}/bad-tokenizer`;
      await Deno.mkdir(badTok);
      for (const f of files) await Deno.link(f, `${badTok}/${f.split("/").at(-1)}`);
      await Deno.remove(`${badTok}/tokenizer.json`);
      await Deno.writeTextFile(`${badTok}/tokenizer.json`, '{"nope":1}');
      await page.setInputFiles(
        "#model-files",
        [...Deno.readDirSync(badTok)].map((e) => `${badTok}/${e.name}`),
      );
      const badTokText = await statusOf(page, "model-status", /tokenizer\.json: /, 120_000, onlyConfig);
      assert(
        badTokText.startsWith("picked files/tokenizer.json: missing field 'model'") &&
          badTokText.endsWith("is still open."),
        badTokText,
      );
      // a broken tokenizer.json already stored (by a page that did not check it) is replaced when the model's
      // right files are picked again, and the page says so
      await page.evaluate(async () => {
        // deno-lint-ignore no-explicit-any
        const root = await (globalThis as any).navigator.storage.getDirectory();
        for await (const dir of (await root.getDirectoryHandle("models")).values()) {
          const w = await (await dir.getFileHandle("tokenizer.json")).createWritable();
          await w.write('{"nope":1}');
          await w.close();
        }
      });
      await page.setInputFiles("#model-files", files);
      const fixedTok = await statusOf(page, "model-status", /^Ready/, 120_000, badTokText);
      assert(
        fixedTok.includes("opened from this browser's storage") &&
          fixedTok.includes("stored tokenizer files were replaced by the picked ones (tokenizer.json)"),
        fixedTok,
      );

      // 2. data: a bad line is named with its number, then the real file
      await page.fill("#seq-len", FORM["seq-len"]);
      await page.setInputFiles("#train-file", {
        name: "bad.jsonl",
        mimeType: "application/jsonl",
        buffer: Buffer.from('{"text": "fine"}\n{"text": oops}\n'),
      });
      const bad = await statusOf(page, "data-status", /bad\.jsonl:\d/);
      assert(bad.includes("bad.jsonl:2"), bad);
      await page.screenshot({ path: `${shots}/2-bad-line.png`, fullPage: true });
      await page.setInputFiles("#train-file", DATA);
      const data = await statusOf(page, "data-status", /examples/, 120_000, bad);
      assert(data.includes("100 examples"), data);
      // a wrong pick corrected at once, while it is still tokenizing: the second file stands (the status
      // cleared first, so the old text cannot pass for the new)
      const trainable = await page.isEnabled("#train-button");
      // deno-lint-ignore no-explicit-any
      await page.evaluate(() => (globalThis as any).document.querySelector("#data-status").textContent = "");
      await page.setInputFiles("#train-file", {
        name: "wrong.jsonl",
        mimeType: "application/jsonl",
        buffer: Buffer.from('{"text": oops}\n'),
      });
      await page.setInputFiles("#train-file", DATA);
      const corrected = await statusOf(page, "data-status", /examples/);
      assert(corrected === data, `after a corrected pick: "${corrected}"`);
      assert(trainable && await page.isEnabled("#train-button"), "Train after a corrected pick");
      // the picker is emptied once read (the data is kept), so picking the same file again fires "change"
      assertEquals(await page.inputValue("#train-file"), "", "the training file input after reading");
      // a sequence length too short for every example keeps the picked data: set back, it is tokenized again
      await page.setInputFiles("#train-file", {
        name: "chats.jsonl",
        mimeType: "application/jsonl",
        buffer: Buffer.from(
          '{"prompt": "What colours does the Lumen desk lamp come in?", "completion": "Graphite."}\n',
        ),
      });
      const chats = await statusOf(page, "data-status", /chats\.jsonl: 1 example,/, 120_000, corrected);
      await page.fill("#seq-len", "4");
      await page.press("#seq-len", "Tab"); // "change" fires when the field is left
      const tooShort = await statusOf(page, "data-status", /training target/, 120_000, chats);
      assert(tooShort.includes("within the first 4 tokens (Sequence length)"), tooShort);
      assert(await page.isDisabled("#train-button"), "Train with no usable training data");
      await page.fill("#seq-len", FORM["seq-len"]);
      await page.press("#seq-len", "Tab");
      assertEquals(await statusOf(page, "data-status", /example/, 120_000, tooShort), chats);
      assert(await page.isEnabled("#train-button"), "Train after the sequence length is set back");
      await page.setInputFiles("#train-file", DATA);
      assertEquals(await statusOf(page, "data-status", /100 examples/, 120_000, chats), data);
      // a bad validation file: its error beside the training summary, Train off until it is removed
      await page.setInputFiles("#val-file", {
        name: "val-bad.jsonl",
        mimeType: "application/jsonl",
        buffer: Buffer.from('{"text": oops}\n'),
      });
      const badVal = await statusOf(page, "data-status", /val-bad\.jsonl:1/, 120_000, data);
      assert(badVal.startsWith(data) && badVal.includes("Validation: val-bad.jsonl:1:"), badVal);
      assert(await page.isDisabled("#train-button"), "Train with a bad validation file");
      await page.click("#val-remove");
      assertEquals(await statusOf(page, "data-status", /examples/, 120_000, badVal), data);
      assert(await page.isEnabled("#train-button") && await page.isHidden("#val-remove"), "after Remove");

      // 3. each field is checked on Plan and Train, and named: no training at lr 0, no budget of -5 MB, no
      // green plan for a sequence length Train refuses
      for (const [id, v] of Object.entries(FORM)) if (id !== "seq-len") await page.fill(`#${id}`, v);
      const fieldChecks: [string, string, string, string][] = [
        ["lr", "", "Learning rate: must be a number > 0 (it is empty)", FORM.lr],
        // a fractional seed once trained, then wrote a state no later Train could read
        ["seed", "1.5", "Seed: must be a whole number from 0 to 4294967295 (got 1.5)", FORM.seed],
        ["budget", "-5", "Working-memory budget: must be at least 1 MB, or 0 for none (got -5)", "0"],
        ["budget", "0.001", "Working-memory budget: must be at least 1 MB, or 0 for none (got 0.001)", "0"],
        [
          "seq-len",
          "100000",
          "Sequence length: must be a whole number from 2 to 32,768 (the model's positions) (got 100000)",
          FORM["seq-len"],
        ],
      ];
      for (const [id, bad, message, good] of fieldChecks) {
        await page.fill(`#${id}`, bad);
        for (const [button, status] of [["plan", "plan-status"], ["train", "train-status"]]) {
          await clearStatus(page, status);
          await page.click(`#${button}-button`);
          assertEquals(
            await statusOf(page, status, /must be/, 120_000, ""),
            message,
            `${button}, #${id} ${bad}`,
          );
        }
        assertEquals(await marks(page), { [id]: message }, `#${id} ${bad}: the fields marked`);
        await page.fill(`#${id}`, good);
      }
      // every bad field is marked at once (not only the first), and named; a fixed one loses its mark when edited
      await page.fill("#steps", "0");
      await page.fill("#lr", "");
      await clearStatus(page, "plan-status");
      await page.click("#plan-button");
      const both = {
        steps: "Steps: must be a whole number ≥ 1 (got 0)",
        lr: "Learning rate: must be a number > 0 (it is empty)",
      };
      assertEquals(await statusOf(page, "plan-status", /must be/, 120_000, ""), `${both.steps}; ${both.lr}`);
      assertEquals(await marks(page), both, "two bad fields");
      await page.fill("#steps", FORM.steps);
      await page.press("#steps", "Tab");
      assertEquals(await marks(page), { lr: both.lr }, "after the steps are fixed");
      await page.fill("#lr", FORM.lr);
      await page.press("#lr", "Tab");
      assertEquals(await marks(page), {}, "after both are fixed");
      await page.fill("#budget", "1");
      await page.click("#train-button");
      const refused = await statusOf(page, "train-status", /Not started/);
      assert(refused.includes("does not fit"), refused);
      assert(((await page.textContent("#plan-status")) ?? "").includes("does not fit"));
      assert(((await page.textContent("#plan-table")) ?? "").includes("lora.params"));
      await page.screenshot({ path: `${shots}/3-plan-refused.png`, fullPage: true });
      await page.fill("#budget", "0");

      // 4. train 8 steps, spilled to OPFS (the default where it works); the downloaded adapter is the CLI's,
      // byte for byte (the CLI spills too, to a file on disk)
      assert(await page.isChecked("#spill") && await page.isHidden("#spill-status"), "spill not offered");
      await page.click("#train-button");
      const done = await statusOf(page, "train-status", /^Done/, 300_000, refused);
      assert(done.startsWith("Done: 8 steps"), done);
      const spilled = (await page.textContent("#plan-status")) ?? "";
      assert(spilled.includes("spilling to browser storage"), spilled);
      await page.screenshot({ path: `${shots}/4-trained.png`, fullPage: true });
      sameBytes(await downloadedWeights(page, work, "a"), cliAdapter, "the page's adapter vs the CLI's");

      // 5. generation without the adapter equals the CLI's
      await page.fill("#max-tokens", "6");
      await page.click("#try-button");
      await page.waitForSelector("#try-button:not([disabled])", { timeout: 120_000 });
      assertEquals(((await page.textContent("#out-base")) ?? "").trim(), cliBase);
      assert(((await page.textContent("#out-adapter")) ?? "").length > 0);
      await page.screenshot({ path: `${shots}/5-try.png`, fullPage: true });

      // 6. reload: the pack comes from OPFS; a paused run resumes after another reload to the same bytes, in
      // memory and spilled (its state read from the file into the arena, or into the spill)
      for (const spill of [false, true]) {
        const tag = spill ? "spilled" : "memory";
        await page.reload();
        await statusOf(page, "env", /Ready/);
        await page.click("#cached-list button");
        const reused = await statusOf(page, "model-status", /^Ready/);
        assert(reused.includes("opened from this browser's storage"), reused);
        // the data picked before the reload is gone: Train says so, beside it
        assert(await page.isDisabled("#train-button") && await page.isVisible("#train-why"), `${tag}: Train`);
        assertEquals(
          await page.textContent("#train-why"),
          "Train needs training data: pick it in step 2 (picked data is not kept when the page is reloaded).",
        );
        await page.fill("#seq-len", FORM["seq-len"]);
        await page.setInputFiles("#train-file", DATA);
        await statusOf(page, "data-status", /examples/);
        assert(await page.isHidden("#train-why"), `${tag}: the reason, once the data is picked`);
        for (const [id, v] of Object.entries(FORM)) if (id !== "seq-len") await page.fill(`#${id}`, v);
        await page.setChecked("#spill", spill); // both ways give the CLI's bytes
        // the finished run saved before is replaced only once the user agrees
        const replace = answer(page, true);
        // what a screen reader hears: each status line with its aria-live as it was written
        await page.evaluate(() => {
          // deno-lint-ignore no-explicit-any
          const g = globalThis as any, el = g.document.querySelector("#train-status");
          g.heard = [];
          new g.MutationObserver(() => g.heard.push([el.textContent, el.getAttribute("aria-live")]))
            .observe(el, { childList: true, characterData: true, subtree: true });
        });
        await page.click("#train-button");
        assert((await replace).includes("saved run (finished, 8 steps)"), `${tag}: ${await replace}`);
        await statusOf(page, "train-status", /^Step 1 of 8/);
        // what would wait silently for the run's end (a pick, a new sequence length, another model) is off
        const waiting = [
          "#train-file",
          "#val-file",
          "#train-text-use",
          "#seq-len",
          "#model-files",
          "#model-folder",
          "#model-url-form button",
          "#cached-list button",
        ];
        const enabledOf = () =>
          page.evaluate((sels) =>
            sels.filter((sel) =>
              // deno-lint-ignore no-explicit-any
              [...(globalThis as any).document.querySelectorAll(sel)].some((el) => !el.disabled)
            ), waiting);
        assertEquals(await enabledOf(), [], `${tag}: enabled while training`);
        await page.click("#pause-button");
        const paused = await statusOf(page, "train-status", /^Paused/, 300_000);
        assert(/Paused after step [1-7];/.test(paused), `${tag}: ${paused}`);
        // the run's first step and the pause are announced; the steps between are not read out one by one
        // deno-lint-ignore no-explicit-any
        const heard: [string, string][] = await page.evaluate(() => (globalThis as any).heard);
        const live = (re: RegExp) => heard.filter(([t]) => re.test(t)).map(([, l]) => l);
        assertEquals(live(/^Step 1 of 8/), ["polite"], `${tag}: ${JSON.stringify(heard)}`);
        assert(live(/^Step [2-7] of 8/).every((l) => l === "off"), `${tag}: ${JSON.stringify(heard)}`);
        assertEquals(live(/^Paused/), ["polite"], `${tag}: ${JSON.stringify(heard)}`);
        assertEquals(await enabledOf(), waiting, `${tag}: enabled after the pause`);
        // Train again, declined: the paused run stays (Resume below continues it to the CLI's bytes)
        const declined = answer(page, false);
        await page.click("#train-button");
        const step = paused.match(/Paused after step (\d+)/)![1];
        assert((await declined).includes(`paused at step ${step} of 8`), `${tag}: ${await declined}`);
        const kept = await statusOf(
          page,
          "train-status",
          /^Not started: the saved run is kept/,
          120_000,
          paused,
        );
        assert(kept.includes(`paused at step ${step} of 8`) && await page.isEnabled("#resume-button"), kept);
        // in memory, the adapter at the pause is the run's own copy; after the reload, from the state's file
        const atPause = spill ? undefined : await downloadedWeights(page, work, "paused");
        await page.reload();
        await statusOf(page, "env", /Ready/);
        await page.click("#cached-list button");
        const offer = await statusOf(page, "train-status", /stopped at step/);
        assert(/stopped at step [1-7] of 8/.test(offer), `${tag}: ${offer}`);
        const pausedAt = Number(offer.match(/stopped at step (\d+)/)![1]);
        // the saved run's curve is drawn again, from step 1
        const before = await curveOf(page);
        assertEquals(
          [before.lossesFrom, before.losses.length],
          [1, pausedAt],
          `${tag}: the curve at the offer`,
        );
        if (atPause) {
          sameBytes(
            await downloadedWeights(page, work, "saved"),
            atPause,
            "the saved state's adapter vs the paused run's",
          );
        }
        // the form shows the paused run's settings (not the defaults); an edit to one is refused by name
        for (const [id, v] of Object.entries(FORM)) {
          assertEquals(await page.inputValue(`#${id}`), v, `${tag}: #${id}`);
        }
        assertEquals(await page.isChecked("#spill"), spill, `${tag}: #spill`);
        await page.fill("#lr", "0.002");
        await page.click("#resume-button");
        const refusedEdit = await statusOf(page, "train-status", /^Not resumed/, 120_000, offer);
        assert(refusedEdit.includes("Learning rate (saved 0.001, the form 0.002)"), refusedEdit);
        await page.fill("#lr", FORM.lr);
        // a ticked "start from the loaded adapter" would be ignored by a resume: refused by name too (ticked
        // here by hand: no adapter is loaded in this test)
        const tick = (on: boolean) =>
          page.evaluate((on) => {
            // deno-lint-ignore no-explicit-any
            const box = (globalThis as any).document.getElementById("from-adapter");
            box.disabled = !on;
            box.checked = on;
          }, on);
        await tick(true);
        await page.click("#resume-button");
        const refusedTick = await statusOf(
          page,
          "train-status",
          /Start from the loaded adapter/,
          120_000,
          refusedEdit,
        );
        assert(refusedTick.startsWith("Not resumed"), refusedTick);
        await tick(false);
        await page.click("#resume-button");
        const resumed = await statusOf(page, "train-status", /^Done/, 300_000, refusedTick);
        assert(resumed.startsWith("Done: 8 steps"), `${tag}: ${resumed}`);
        // the curve holds all 8 steps, numbered as the run's: the CLI's losses (metrics.jsonl, 5 decimals)
        const after = await curveOf(page);
        assertEquals(after.lossesFrom, 1, `${tag}: the resumed curve's first step`);
        assertEquals(after.losses.length, cliLosses.length, `${tag}: losses`);
        after.losses.forEach((l, i) =>
          assert(
            Math.abs(l - cliLosses[i]) <= 6e-6,
            `${tag}: step ${i + 1}: loss ${l}, the CLI's ${cliLosses[i]}`,
          )
        );
        assert(
          after.svg.includes('text-anchor="middle">8</text>'),
          `${tag}: the curve's step axis ends at 8`,
        );
        // the ETA of each resumed step is the time per step run since the resume, times the steps left
        assertEquals(after.events.map((e) => e.step)[0], pausedAt + 1, `${tag}: the first resumed step`);
        for (const e of after.events) {
          const expected = e.elapsed / (e.step - pausedAt) * (e.steps - e.step);
          assert(
            Math.abs(e.eta - expected) <= 1e-9 * (1 + expected),
            `${tag}: step ${e.step}: ETA ${e.eta} s, not ${expected} s`,
          );
        }
        // the page shows no plan for a resumed run: its plan event, recorded by RECORD_PLANS
        const plan = await page.evaluate(() =>
          (globalThis as unknown as { mespPlans?: { spill?: string }[] }).mespPlans?.at(-1)
        );
        assertEquals(
          Boolean(plan?.spill),
          spill,
          `${tag}: the resumed run's plan: spill ${JSON.stringify(plan?.spill)}`,
        );
        sameBytes(
          await downloadedWeights(page, work, tag),
          cliAdapter,
          `the resumed adapter (${tag}) vs the CLI's`,
        );
      }

      // an adapter loads back (the zip the page wrote), ready to try or train on from, at its own rank: the
      // rank field shows it and is locked while "Start from the loaded adapter" is checked
      await page.fill("#rank", "8");
      await page.setInputFiles("#adapter-files", `${work}/adapter-memory.zip`);
      const loaded = await statusOf(page, "keep-status", /^Loaded an adapter/);
      assert(loaded.includes("rank 4"), loaded);
      assert(await page.isChecked("#from-adapter"));
      assert(await page.inputValue("#rank") === "4" && await page.isDisabled("#rank"), "the adapter's rank");
      await page.uncheck("#from-adapter");
      assert(
        await page.isEnabled("#rank") && await page.isHidden("#rank-note"),
        "the rank, the adapter unchecked",
      );
      // a zip of a PEFT output folder with a checkpoint copy holds each file twice: refused, naming both
      await clearStatus(page, "keep-status");
      const once = unzipStore(await Deno.readFile(`${work}/adapter-memory.zip`));
      await page.setInputFiles("#adapter-files", {
        name: "run.zip",
        mimeType: "application/zip",
        buffer: Buffer.from(
          zipStore([...once, ...once.map((e) => ({ ...e, name: `checkpoint-1/${e.name}` }))]),
        ),
      });
      const twice = await statusOf(page, "keep-status", /twice/);
      assert(
        twice.includes(
          "run.zip holds adapter_config.json twice (adapter_config.json and " +
            "checkpoint-1/adapter_config.json)",
        ),
        twice,
      );
      // and one zipped with deflate in a folder, as `zip -r` writes it (the status cleared first: it says the same)
      await clearStatus(page, "keep-status");
      const deflated = await deflatedZip(
        unzipStore(await Deno.readFile(`${work}/adapter-memory.zip`)),
        "lora/",
      );
      await page.setInputFiles("#adapter-files", {
        name: "lora.zip",
        mimeType: "application/zip",
        buffer: Buffer.from(deflated),
      });
      const loadedDeflated = await statusOf(page, "keep-status", /^Loaded an adapter/, 120_000, "");
      assert(loadedDeflated.includes("rank 4"), loadedDeflated);
      assert(
        await page.isChecked("#from-adapter") && await page.isDisabled("#rank"),
        "the rank, checked again",
      );
      // opening a model lets the adapter go (it was checked against the model it was loaded for), and says so
      await page.click("#cached-list button");
      const letGo = await statusOf(page, "keep-status", /let go/, 120_000, loadedDeflated);
      assert(letGo.includes("load it again"), letGo);
      assert(
        !await page.isChecked("#from-adapter") && await page.isDisabled("#from-adapter"),
        "Start from, after",
      );
      assert(await page.isEnabled("#rank"), "the rank field after the adapter is let go");
      // the open model cannot be removed (its pack is held open): said, and it stays listed
      await page.click("#cached-list button.secondary");
      const kept = await statusOf(page, "model-status", /is open: reload the page/);
      assert(kept.includes("to remove it"), kept);
      assertEquals(await page.locator("#cached-list li").count(), 1);
      // a second tab cannot open the model this one holds open: said so, not the browser's raw error
      const other = await ctx.newPage();
      await other.goto(url);
      await statusOf(other, "env", /Ready/);
      await other.click("#cached-list button");
      const elsewhere = await statusOf(other, "model-status", /another tab/);
      assert(
        /^browser storage: .+ \(q4\): this model is open in another tab of this browser: close it there, or use that tab\.$/
          .test(elsewhere),
        elsewhere,
      );

      // what interrupted writes leave (a conversion's pack, a spilled run's file, the folder of a conversion
      // cut short) is removed at the next start, but not while another tab writes: there it may be that
      // tab's write under way (a second tab holding the write lock, as its conversions and runs do)
      const before = await opfsFiles(page);
      const key = before.find((f) => f.endsWith("/meta.json"))!.split("/")[1];
      const leftovers = [
        `models/${key}/weights.pack.tmp`,
        `models/${key}/run/spill.tmp`,
        "models/0123456789abcdef-q4/weights.pack",
      ];
      await page.evaluate(async (paths) => {
        // deno-lint-ignore no-explicit-any
        const root = await (globalThis as any).navigator.storage.getDirectory();
        for (const path of paths) {
          let d = root;
          const parts = path.split("/");
          for (const p of parts.slice(0, -1)) d = await d.getDirectoryHandle(p, { create: true });
          const w = await (await d.getFileHandle(parts.at(-1)!, { create: true })).createWritable();
          await w.write("half-written");
          await w.close();
        }
      }, leftovers);
      await other.goto(`${url}style.css`);
      await other.evaluate(() =>
        new Promise<void>((granted) => {
          // deno-lint-ignore no-explicit-any
          const g = globalThis as any;
          g.navigator.locks.request("mesp-storage-writes", { mode: "shared" }, () => {
            granted();
            return new Promise((release) => g.releaseWrites = release);
          });
        })
      );
      for (const writer of [true, false]) {
        if (!writer) {
          await other.evaluate(() => (globalThis as unknown as { releaseWrites(): void }).releaseWrites());
        }
        await page.reload();
        await page.waitForSelector("#cached-list li");
        const stored = await opfsFiles(page);
        const kept = leftovers.filter((f) => stored.includes(f));
        assertEquals(
          kept,
          writer ? leftovers : [],
          `leftovers ${writer ? "while" : "after"} another tab writes`,
        );
        assertEquals(stored.filter((f) => !leftovers.includes(f)), before, "what the user had");
      }
      await other.close();

      // offline: the page and the library come from the service worker's cache, the model from OPFS
      await ctx.setOffline(true);
      await page.reload();
      await statusOf(page, "env", /Ready/);
      await page.click("#cached-list button");
      const offline = await statusOf(page, "model-status", /^Ready/);
      assert(offline.includes("opened from this browser's storage"), offline);
      await ctx.setOffline(false);

      // a pack written by an older mesp (its version field set back to 4): named when opened from the list,
      // converted anew when the model's files are given again
      await page.reload(); // the session closes its handle on the pack
      await statusOf(page, "env", /Ready/);
      await page.evaluate(async () => {
        // deno-lint-ignore no-explicit-any
        const root = await (globalThis as any).navigator.storage.getDirectory();
        const models = await root.getDirectoryHandle("models");
        for await (const dir of models.values()) {
          const pack = await dir.getFileHandle("weights.pack");
          const w = await pack.createWritable({ keepExistingData: true });
          await w.write({ type: "write", position: 8, data: new Uint8Array([4, 0, 0, 0]) });
          await w.close();
        }
      });
      await page.click("#cached-list button");
      const stale = await statusOf(page, "model-status", /older version/);
      assert(stale.includes("pack version 4"), stale);
      await page.setInputFiles("#model-files", files);
      const again = await statusOf(page, "model-status", /^Ready/, 120_000, stale);
      assert(again.includes("converted and kept"), again);

      // a phone-sized screen
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: `${shots}/6-phone.png`, fullPage: true });
      // a 375 px phone: generated text wraps, even one long unbroken run of it (a URL, a token soup), and the
      // page never grows wider than the screen
      await page.setViewportSize({ width: 375, height: 812 });
      await page.fill("#max-tokens", "40");
      await page.click("#try-button");
      await page.waitForSelector("#try-button:not([disabled])", { timeout: 120_000 });
      const unbroken = "https://example.com/" + "a".repeat(400);
      await page.evaluate((t) => {
        // deno-lint-ignore no-explicit-any
        const doc = (globalThis as any).document;
        doc.querySelector("#out-base").textContent += t;
        doc.querySelector("#out-adapter").textContent = t;
      }, unbroken);
      const widths = await page.evaluate(() => ({
        // deno-lint-ignore no-explicit-any
        doc: (globalThis as any).document.documentElement.scrollWidth as number,
        // deno-lint-ignore no-explicit-any
        view: (globalThis as any).innerWidth as number,
      }));
      assert(widths.doc <= widths.view, `at 375 px the page is ${widths.doc} px wide`);
      // the loss curve (the finished run's, 8 steps) keeps readable text there, scrolling in its own box, and
      // says its first and last losses in words
      const curve = await page.evaluate(() => {
        // deno-lint-ignore no-explicit-any
        const doc = (globalThis as any).document, box = doc.querySelector("#curve");
        const svg = box.querySelector("svg");
        return {
          fontPx: 11 * svg.getBoundingClientRect().width / svg.viewBox.baseVal.width,
          scrolls: box.scrollWidth > box.clientWidth,
          label: box.getAttribute("aria-label") as string,
          text: doc.querySelector("#curve-text").textContent as string,
        };
      });
      assert(curve.fontPx >= 9 && curve.scrolls, `the curve at 375 px: ${JSON.stringify(curve)}`);
      const { losses } = await curveOf(page);
      assertEquals(losses.length, 8, "the curve's losses");
      const inWords = `Loss ${losses[0].toFixed(4)} at step 1, ${losses[7].toFixed(4)} at step 8.`;
      assertEquals([curve.label, curve.text], [`Loss curve: ${inWords}`, inWords]);
      await page.screenshot({ path: `${shots}/7-phone-long-output.png`, fullPage: true });
      assertEquals(errors, []);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

/**
 * The fields marked invalid, each with the text of the message its aria-describedby names (checked to be
 * shown), by id.
 */
function marks(page: Page): Promise<Record<string, string>> {
  return page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const doc = (globalThis as any).document;
    const out: Record<string, string> = {};
    for (const el of doc.querySelectorAll("[aria-invalid]")) {
      const note = doc.getElementById(el.getAttribute("aria-describedby"));
      out[el.id] = note && !note.hidden && note.offsetParent
        ? note.textContent
        : `(aria-invalid="${el.getAttribute("aria-invalid")}", no message shown)`;
    }
    return out;
  });
}

/** The text of each element of step 1 drawn with an outline (the hidden inputs themselves aside). */
function outlined(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const g = globalThis as any;
    return [...g.document.querySelectorAll("#model-step *:not(.visually-hidden)")]
      .filter((el) => g.getComputedStyle(el).outlineStyle !== "none")
      .map((el) => el.textContent.trim());
  });
}

/** Every file of the page's browser storage (OPFS), as paths, sorted. */
function opfsFiles(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const out: string[] = [];
    // deno-lint-ignore no-explicit-any
    const walk = async (d: any, path: string) => {
      for await (const [name, h] of d.entries()) {
        if (h.kind === "directory") await walk(h, `${path}${name}/`);
        else out.push(path + name);
      }
    };
    // deno-lint-ignore no-explicit-any
    await walk(await (globalThis as any).navigator.storage.getDirectory(), "");
    return out.sort();
  });
}

/** Empties `#id`'s text, so the next status there cannot be taken for the old one. */
function clearStatus(page: Page, id: string): Promise<void> {
  return page.evaluate((sel) => {
    // deno-lint-ignore no-explicit-any
    (globalThis as any).document.querySelector(sel).textContent = "";
  }, `#${id}`);
}

/** The message of the page's next dialog (a confirm), answered OK (`accept`) or Cancel; fails after 60 s. */
async function answer(page: Page, accept: boolean): Promise<string> {
  const d = await page.waitForEvent("dialog", { timeout: 60_000 }).catch((err) => {
    throw new Error("the page asked nothing (no dialog)", { cause: err });
  });
  const message = d.message();
  await (accept ? d.accept() : d.dismiss());
  return message;
}

/** The page's loss curve: its losses (from step `lossesFrom`), its SVG, and this page load's step events. */
function curveOf(page: Page) {
  type Step = { step: number; steps: number; elapsed: number; eta: number };
  type PageState = { lossesFrom: number; losses: number[]; stepEvents: Step[] };
  return page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const g = globalThis as any, s = g.mespPage as PageState;
    return {
      lossesFrom: s.lossesFrom,
      losses: s.losses,
      events: s.stepEvents,
      svg: g.document.querySelector("#curve").innerHTML as string,
    };
  });
}

/** Clicks "Download adapter", saves the zip and returns its adapter_model.safetensors bytes. */
async function downloadedWeights(page: Page, dir: string, tag: string): Promise<Uint8Array> {
  const download = page.waitForEvent("download");
  await page.click("#download-button");
  const path = `${dir}/adapter-${tag}.zip`;
  await (await download).saveAs(path);
  const entries = unzipStore(await Deno.readFile(path), path);
  assertEquals(entries.map((e) => e.name), ["adapter_config.json", "adapter_model.safetensors"]);
  // the model's files were picked, not its folder: the page knows no name for it (not a made-up one)
  const config = JSON.parse(new TextDecoder().decode(entries[0].data));
  assertEquals(config.base_model_name_or_path, null, `${tag}: base_model_name_or_path`);
  return entries[1].data;
}

/**
 * A ZIP archive of `entries` deflated (method 8) under the folder `dir` (with its folder entry first), as
 * `zip -r` writes one. The page's reader is checked against Python's zipfile and Info-ZIP in zip_test.ts.
 */
async function deflatedZip(entries: { name: string; data: Uint8Array }[], dir: string): Promise<Uint8Array> {
  const files = [
    { name: dir, data: new Uint8Array() },
    ...entries.map((e) => ({ ...e, name: dir + e.name })),
  ];
  const local: Uint8Array[] = [], central: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    const name = new TextEncoder().encode(f.name);
    const packed = new Uint8Array(
      await new Response(
        new Blob([f.data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
          new CompressionStream("deflate-raw"),
        ),
      ).arrayBuffer(),
    );
    const head = new Uint8Array(30 + name.length), dirEntry = new Uint8Array(46 + name.length);
    const h = new DataView(head.buffer), c = new DataView(dirEntry.buffer);
    h.setUint32(0, 0x04034b50, true);
    c.setUint32(0, 0x02014b50, true);
    for (const [v, at] of [[h, 4], [c, 6]] as const) {
      v.setUint16(at, 20, true); // version needed
      v.setUint16(at + 4, 8, true); // deflate
      v.setUint32(at + 10, crc32(f.data), true);
      v.setUint32(at + 14, packed.length, true);
      v.setUint32(at + 18, f.data.length, true);
      v.setUint16(at + 22, name.length, true);
    }
    c.setUint32(42, offset, true);
    head.set(name, 30);
    dirEntry.set(name, 46);
    local.push(head, packed);
    central.push(dirEntry);
    offset += head.length + packed.length;
  }
  const centralBytes = central.reduce((n, b) => n + b.length, 0);
  const end = new Uint8Array(22), e = new DataView(end.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, files.length, true);
  e.setUint16(10, files.length, true);
  e.setUint32(12, centralBytes, true);
  e.setUint32(16, offset, true);
  return new Uint8Array(
    await new Blob([...local, ...central, end] as Uint8Array<ArrayBuffer>[]).arrayBuffer(),
  );
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  const at = a.findIndex((x, i) => x !== b[i]);
  assert(
    a.length === b.length && at < 0,
    `${what}: ${a.length} vs ${b.length} bytes, first difference at ${at}`,
  );
}

Deno.test("deno task web: files have their types, and Deno imports mod.ts from it", async () => {
  const server = serveWeb({ root: ROOT, port: 0 });
  const host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  try {
    for (
      const [path, type] of [
        ["mod.ts", "application/typescript; charset=utf-8"],
        ["dist/mesp.js", "text/javascript; charset=utf-8"],
        ["dist/wasm/mesp_simd.wasm", "application/wasm"],
        ["deno.lock", "application/octet-stream"],
      ]
    ) {
      const res = await fetch(`http://${host}/${path}`);
      await res.body?.cancel();
      assertEquals([res.status, res.headers.get("content-type")], [200, type], path);
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `--allow-import=${host}`,
        `--allow-net=${host}`,
        `const m = await import("http://${host}/mod.ts"); console.log(typeof m.train, typeof m.loadTokenizer);`,
      ],
      // a folder of the user's, with no deno.json or lockfile of this repository's
      cwd: await Deno.makeTempDir({ prefix: "mesp-user-" }),
      env: { NO_COLOR: "1", DENO_DIR: await Deno.makeTempDir({ prefix: "mesp-denodir-" }) },
    }).output();
    const dec = new TextDecoder();
    assertEquals([out.code, dec.decode(out.stdout).trim()], [0, "function function"], dec.decode(out.stderr));
  } finally {
    await server.shutdown();
  }
});

Deno.test("deno task web: a port in use is a one-line error naming it, not a stack trace", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        `--allow-read=${ROOT}`,
        `${ROOT}web/serve.ts`,
        "--port",
        String(port),
      ],
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    assertEquals(
      stderr.trim(),
      `error: --port ${port}: 127.0.0.1:${port} is in use (another server?); try --port ${port + 1}`,
    );
  } finally {
    taken.close();
  }
});
