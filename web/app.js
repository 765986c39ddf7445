// The page: wires the six steps (model, data, plan, train, try, keep) to the compute worker (session.js) and
// to short-lived text workers (text.js). Nothing heavy runs on this thread, so the page never freezes.
import { formatMB, lossCurveSvg, unzip, zipStore } from "../dist/mesp.js";

const $ = (id) => document.getElementById(id);

// ---- workers -------------------------------------------------------------------------------------------

const session = new Worker(new URL("./session.js", import.meta.url), { type: "module" });
let nextId = 1;
const pending = new Map();
session.onmessage = (e) => {
  const { id, kind } = e.data;
  const p = pending.get(id);
  if (!p) return;
  if (kind === "event") p.onEvent?.(e.data.data);
  else {
    pending.delete(id);
    if (kind === "done") p.resolve(e.data.value);
    else p.reject(new Error(e.data.message));
  }
};
session.onerror = (e) => {
  e.preventDefault();
  const message = `the compute worker failed to load (${e.message || "see the browser console"})`;
  for (const p of pending.values()) p.reject(new Error(message));
  pending.clear();
  setStatus($("env"), message, "error");
};

/** Sends one request to the compute worker; `onEvent` gets its progress messages. */
function ask(op, args = {}, onEvent, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onEvent });
    session.postMessage({ id, op, ...args }, transfer);
  });
}

/** Runs one job in a fresh text worker and closes it afterwards (the tokenizer's memory goes with it). */
function textJob(op, args, onEvent, transfer = []) {
  const w = new Worker(new URL("./text.js", import.meta.url), { type: "module" });
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => {
      if (e.data.kind === "event") onEvent?.(e.data.data);
      else if (e.data.kind === "done") resolve(e.data.value);
      else reject(new Error(e.data.message));
    };
    w.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`the text worker failed to load (${e.message || "see the browser console"})`));
    };
    w.postMessage({ op, ...args }, transfer);
  }).finally(() => w.terminate());
}

// ---- state and small helpers ---------------------------------------------------------------------------

const state = {
  env: undefined,
  model: undefined,
  // each picked set: {bytes, name, seqLen, stats} once tokenized, or its {error}; the bytes are kept, so a
  // new sequence length or model tokenizes them again
  data: { train: undefined, val: undefined },
  training: false,
  trained: false,
  /** The loss curve: training losses from step `lossesFrom`, validation losses by step. */
  losses: [],
  lossesFrom: 1,
  vals: [],
  /** This session's step events (benchmarks read them through `globalThis.mespPage`). */
  stepEvents: [],
};
globalThis.mespPage = state;

function setStatus(el, text, kind = "", announce = true) {
  // a live region re-read at every step would talk over everything: per-step lines pass `announce` false
  if (el.hasAttribute("aria-live")) el.setAttribute("aria-live", announce ? "polite" : "off");
  el.textContent = text;
  el.className = kind;
}

function refresh() {
  // a validation set that failed to tokenize blocks training until it is fixed or removed
  const { train, val } = state.data;
  const ready = state.model && train?.stats && (!val || val.stats) && !state.training && !state.tokenizing;
  $("plan-button").disabled = !ready;
  $("train-button").disabled = !ready;
  $("pause-button").disabled = !state.training;
  $("try-button").disabled = !state.model || state.training;
  $("download-button").disabled = !state.trained || state.training;
  $("val-remove").hidden = !val;
  // a disabled Train says what it waits for
  const why = ready || state.training
    ? ""
    : !state.model
    ? "Train needs a model: open one in step 1."
    : state.tokenizing
    ? ""
    : !train
    ? "Train needs training data: pick it in step 2 (picked data is not kept when the page is reloaded)." +
      ($("resume-button").disabled ? "" : " Resume needs none: the paused run's data is saved with it.")
    : !train.stats
    ? "Train needs usable training data: fix the training set in step 2 (its error is shown there)."
    : "Train needs a usable validation set: fix it in step 2, or remove it.";
  $("train-why").textContent = why;
  $("train-why").hidden = !why;
  // the compute worker does one thing at a time: a pick or a new sequence length would wait for the run's end
  for (const el of document.querySelectorAll(WAIT_FOR_TRAINING)) el.disabled = state.training;
}

/** The controls that ask the compute worker for something, off while it trains. */
const WAIT_FOR_TRAINING =
  "#model-step input, #model-step select, #model-step button, #train-file, #val-file, #val-remove, " +
  "#train-text-use, #seq-len";

const count = (n) => n.toLocaleString("en-US");

function duration(s) {
  if (!Number.isFinite(s)) return "…";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m ? `${m} min ${r} s` : `${r} s`;
}

// ---- environment ---------------------------------------------------------------------------------------

async function showEnv() {
  state.env = await ask("env");
  const e = state.env;
  const threads = `${e.threads} kernel thread${e.threads === 1 ? "" : "s"} of ${e.cores} cores`;
  if (!e.opfs) {
    setStatus(
      $("env"),
      `${threads}. This browser has no Origin Private File System: converted models and training state cannot be kept.`,
      "warn",
    );
  } else if (!e.isolated) {
    setStatus(
      $("env"),
      `${threads}: this page is not cross-origin isolated (no COOP/COEP headers), so the kernels run on one thread. Serve it with "deno task web" for every core.`,
      "warn",
    );
  } else {
    setStatus($("env"), `Ready: ${threads}, cross-origin isolated.`);
  }
  // spill needs an OPFS sync access handle in the compute worker; without one everything stays in memory
  $("spill").disabled = !e.spill;
  $("spill").checked &&= e.spill;
  $("spill-status").hidden = e.spill;
  $("spill-status").textContent = e.spill ? "" : "Spill is not available in this browser (no synchronous " +
    "Origin Private File System access in workers): training keeps everything in memory, which needs more.";
  await showCached();
}

async function showCached(models) {
  models ??= await ask("cachedModels");
  $("cached").hidden = models.length === 0;
  const list = $("cached-list");
  list.replaceChildren();
  for (const m of models) {
    const li = document.createElement("li");
    const use = document.createElement("button");
    use.type = "button";
    use.textContent = `Use ${m.name} (${m.format}, ${formatMB(m.packBytes)})`;
    use.addEventListener("click", () => openModel({ key: m.key }));
    const drop = document.createElement("button");
    drop.type = "button";
    drop.className = "secondary";
    drop.textContent = "Remove";
    drop.setAttribute("aria-label", `Remove ${m.name} (${m.format}) from this browser`);
    drop.addEventListener("click", async () => {
      try {
        showCached(await ask("removeModel", { key: m.key }));
      } catch (err) {
        setStatus($("model-status"), err.message, "error");
      }
    });
    use.disabled = drop.disabled = state.training;
    li.append(use, drop);
    list.append(li);
  }
}

// ---- 1. model ------------------------------------------------------------------------------------------

async function openModel(source) {
  const status = $("model-status"), bar = $("convert-progress");
  setStatus(status, source.key ? "Opening the converted model…" : "Reading the model…");
  bar.hidden = !!source.key;
  bar.value = 0;
  try {
    const model = await ask("openModel", { ...source, format: $("weights").value }, (e) => {
      bar.max = e.total;
      bar.value = e.done;
      setStatus(
        status,
        `Converting to a ${$("weights").value} weight pack (once): ${e.message} (${e.done}/${e.total})`,
      );
    });
    state.model = model;
    state.trained = false;
    dropLoadedAdapter();
    showModel(model);
    refresh(); // what Train waits for now, before the saved run and the data are looked at
    const replaced = model.tokenizerReplaced?.length
      ? ` Its stored tokenizer files were replaced by the picked ones (${
        model.tokenizerReplaced.join(", ")
      }).`
      : "";
    setStatus(
      status,
      (model.converted
        ? `Ready: ${model.name}, converted and kept in this browser for next time.`
        : `Ready: ${model.name}, opened from this browser's storage (no conversion needed).`) + replaced,
      "ok",
    );
    await showCached();
    await offerResume(); // first: it may set the sequence length the data is tokenized for
    await retokenize(true);
  } catch (err) {
    // a failed pick leaves the open model as it was
    const still = state.model ? ` ${state.model.name} is still open.` : "";
    setStatus(status, `${err.message.replace(/\.$/, "")}.${still}`, "error");
  } finally {
    bar.hidden = true;
    refresh();
  }
}

function showModel(m) {
  const card = $("model-card");
  card.replaceChildren();
  const rows = [
    ["Model", m.name],
    ["Parameters", `${(m.params / 1e6).toFixed(1)} M (${m.layers} layers, width ${m.hidden})`],
    ["Weights", `${m.format}${m.quantization ? ` (from ${m.quantization}, copied as is)` : ""}`],
    ["Weight pack", formatMB(m.packBytes)],
    ["Context", `${count(m.maxPositions)} positions, ${count(m.vocab)}-token vocabulary`],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    card.append(dt, dd);
  }
  card.hidden = false;
}

/** The files of a picked folder by name, relative to the folder (subfolders are not model files). */
function filesByName(list) {
  const files = new Map();
  for (const f of list) {
    const rel = (f.webkitRelativePath || f.name).split("/").slice(1).join("/") || f.name;
    if (!rel.includes("/")) files.set(rel, f);
  }
  return files;
}

$("model-folder").addEventListener("change", (e) => {
  const list = e.target.files;
  if (list.length) openModel({ files: filesByName(list), name: list[0].webkitRelativePath.split("/")[0] });
});
$("model-files").addEventListener("change", (e) => {
  if (e.target.files.length) openModel({ files: new Map([...e.target.files].map((f) => [f.name, f])) });
});
$("model-url-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const url = $("model-url").value.trim();
  if (url) openModel({ url });
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (state.training) {
    setStatus($("model-status"), "A model cannot be opened while training runs: pause it first.", "warn");
    return;
  }
  const files = new Map();
  const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  const fileOf = (entry) => new Promise((res, rej) => entry.file(res, rej));
  for (const entry of entries) {
    if (entry.isFile) files.set(entry.name, await fileOf(entry));
    else if (entry.isDirectory) {
      const children = await new Promise((res, rej) => entry.createReader().readEntries(res, rej));
      for (const c of children) if (c.isFile) files.set(c.name, await fileOf(c));
    }
  }
  const folder = entries.length === 1 && entries[0].isDirectory ? entries[0].name : undefined;
  if (files.size) openModel({ files, name: folder });
});

// ---- 2. data -------------------------------------------------------------------------------------------

/** The form's sequence length, checked against the model's positions (the limit Train applies). */
function seqLen() {
  const max = state.model?.maxPositions ?? Infinity;
  return numberField(
    "seq-len",
    `must be a whole number from 2 to ${count(max)} (the model's positions)`,
    (v) => Number.isInteger(v) && v >= 2 && v <= max,
  );
}

/** Tokenizes a dataset in a text worker and hands the token cache to the compute worker. */
async function useData(which, bytes, name) {
  state.data[which] = { bytes, name };
  if (!state.model) {
    setStatus($("data-status"), "Open a model first: its tokenizer reads the data.", "warn");
    return;
  }
  await tokenize(which);
}

/** The latest tokenize job of each file input: an older job's result or error is dropped. */
const tokenizeJobs = { train: 0, val: 0 };

async function tokenize(which) {
  const d = state.data[which], job = ++tokenizeJobs[which];
  const stale = () => tokenizeJobs[which] !== job;
  const status = $("data-status");
  setStatus(status, `Tokenizing ${d.name}…`);
  state.tokenizing = (state.tokenizing ?? 0) + 1;
  refresh();
  let len;
  try {
    len = seqLen();
    const cache = await textJob("tokenize", {
      key: state.model.key,
      datasetBytes: d.bytes.slice().buffer,
      datasetFile: d.name,
      options: { seqLen: len },
    });
    // a later pick (or sequence length) started another job while this one ran: that one reports
    if (stale()) return;
    const { stats } = await ask("dataset", { which, bytes: cache, name: d.name }, undefined, [cache]);
    if (stale()) return;
    Object.assign(d, { seqLen: len, stats, error: undefined });
    showData();
  } catch (err) {
    if (stale()) return;
    Object.assign(d, { seqLen: len, stats: undefined, error: err.message });
    await ask("clearDataset", { which });
    showData();
  } finally {
    state.tokenizing--;
    refresh();
  }
}

/** Each picked set's summary, or its error (a validation set's with how to go on without it). */
function showData() {
  const parts = [];
  for (const which of ["train", "val"]) {
    const d = state.data[which];
    const label = which === "train" ? "Training" : "Validation";
    if (d?.error) {
      const fix = which === "val" ? " Fix the file, or remove it to train without validation." : "";
      parts.push({ text: `${label}: ${d.error.replace(/\.$/, "")}.${fix}`, kind: "error" });
    } else if (d?.stats) {
      const s = d.stats;
      let line = `${label}: ${d.name}: ${count(s.examples)} example${s.examples === 1 ? "" : "s"}, ` +
        `${count(s.tokens)} tokens, ${count(s.targets)} trained`;
      if (s.truncated) line += `; ${count(s.truncated)} cut to ${d.seqLen} tokens`;
      if (s.dropped) line += `; ${count(s.dropped)} without a trained token skipped`;
      parts.push({ text: line + ".", kind: "ok" });
    }
  }
  const status = $("data-status");
  status.className = parts.some((p) => p.kind === "error") ? "error" : "ok";
  status.replaceChildren(...parts.flatMap((p, i) => {
    const span = document.createElement("span");
    span.className = p.kind;
    span.textContent = p.text;
    return i ? [" ", span] : [span];
  }));
}

/** Tokenizes again what was tokenized (or failed) for another model or sequence length. */
async function retokenize(force = false) {
  if (!state.model) return;
  for (const which of ["train", "val"]) {
    const d = state.data[which];
    if (d && (force || d.seqLen !== seqLen())) await tokenize(which);
  }
}

async function readPicked(input, which) {
  const f = input.files[0];
  if (!f) return;
  const bytes = new Uint8Array(await f.arrayBuffer());
  input.value = ""; // kept in state.data: picking the same file again (fixed) must fire "change" again
  await useData(which, bytes, f.name);
}
$("train-file").addEventListener("change", (e) => readPicked(e.target, "train"));
$("val-file").addEventListener("change", (e) => readPicked(e.target, "val"));
$("train-text-use").addEventListener("click", () => {
  const text = $("train-text").value;
  if (text.trim()) useData("train", new TextEncoder().encode(text), "pasted.jsonl");
});
$("seq-len").addEventListener("change", () => {
  try {
    seqLen();
  } catch (err) {
    setStatus($("plan-status"), err.message, "error"); // the data stays as it was tokenized
    return;
  }
  retokenize();
});
$("val-remove").addEventListener("click", async () => {
  tokenizeJobs.val++; // a tokenize job still running for it reports nothing
  state.data.val = undefined;
  await ask("clearDataset", { which: "val" });
  showData();
  refresh();
});

// ---- 3. plan -------------------------------------------------------------------------------------------

/** The fields' names as the form shows them, for messages. */
const LABELS = {
  steps: "Steps",
  lr: "Learning rate",
  rank: "LoRA rank",
  "seq-len": "Sequence length",
  seed: "Seed",
  "val-every": "Validate every",
  budget: "Working-memory budget",
};

/**
 * The number in field `id` if `ok(value)`, else an error naming the field and its `rule` (the field marked,
 * the message beside it); `blank` is what an empty field means (without it, an empty field is refused).
 */
function numberField(id, rule, ok, blank) {
  const el = $(id), text = el.value.trim();
  const v = text === "" ? blank : Number(text);
  if (Number.isFinite(v) && ok(v)) {
    markField(el);
    return v;
  }
  // a number input's value is "" for text it cannot read ("1e", "-") as well as when it is empty
  const what = text !== "" ? `got ${text}` : el.validity?.badInput ? "it is not a number" : "it is empty";
  const message = `${LABELS[id]}: ${rule} (${what})`;
  markField(el, message);
  throw new Error(message);
}

/** Marks field `el` invalid with `message` shown under it (its description), or valid without one. */
function markField(el, message) {
  let note = $(`${el.id}-error`);
  if (message && !note) {
    note = document.createElement("span");
    note.id = `${el.id}-error`;
    note.className = "field-error";
    // inside the field's label: hidden from its name (the label's text), read as its description
    note.setAttribute("aria-hidden", "true");
    el.after(note);
  }
  if (note) {
    note.textContent = message ?? "";
    note.hidden = !message;
  }
  if (message) {
    el.setAttribute("aria-invalid", "true");
    el.setAttribute("aria-describedby", note.id);
  } else {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  }
}

const whole = (min) => (v) => Number.isInteger(v) && v >= min;

/** Each number field's check: its value, or an error naming it (the field marked). */
const FIELDS = {
  "seq-len": () => seqLen(),
  steps: () => numberField("steps", "must be a whole number ≥ 1", whole(1)),
  seed: () =>
    numberField("seed", "must be a whole number from 0 to 4294967295", (v) => whole(0)(v) && v < 2 ** 32),
  rank: () => numberField("rank", "must be a whole number ≥ 1", whole(1)),
  lr: () => numberField("lr", "must be a number > 0", (v) => v > 0),
  "val-every": () => numberField("val-every", "must be a whole number ≥ 0", whole(0), 0),
  budget: () =>
    numberField("budget", "must be at least 1 MB, or 0 for none", (v) => v === 0 || v >= 1, 0) * 1e6,
};

// a marked field is checked again once edited: fixed, its mark goes
$("settings").addEventListener("change", (e) => {
  if (e.target.getAttribute("aria-invalid") !== "true" || !FIELDS[e.target.id]) return;
  try {
    FIELDS[e.target.id]();
  } catch { /* still marked, with the new value's message */ }
});

/**
 * The training options of the form, every field checked (each marked as its value is, not just the first bad
 * one): the CLI's defaults, so the same flags give the same bytes.
 */
function trainOptions() {
  const v = {}, errors = [];
  for (const [id, check] of Object.entries(FIELDS)) {
    try {
      v[id] = check();
    } catch (err) {
      errors.push(err.message);
    }
  }
  if (errors.length) throw new Error(errors.join("; "));
  return {
    seqLen: v["seq-len"],
    steps: v.steps,
    seed: v.seed,
    lora: { rank: v.rank, targets: ["all"] },
    optimizer: { name: $("optimizer").value, lr: v.lr, schedule: "cosine" },
    valEvery: v["val-every"],
    fromAdapter: $("from-adapter").checked,
    saveEvery: 1,
    budget: v.budget,
    spill: $("spill").checked,
  };
}

async function showPlan() {
  const o = trainOptions();
  const plan = await ask("plan", { options: o, budget: o.budget });
  $("plan-table").textContent = plan.table;
  $("plan-details").hidden = false;
  $("plan-details").open = !plan.fits;
  const budget = o.budget ? ` against a budget of ${formatMB(o.budget)}` : "";
  setStatus(
    $("plan-status"),
    `Working memory (the arena): ${plan.arena}${budget}${o.spill ? ", spilling to browser storage" : ""}` +
      (plan.fits
        ? (o.budget ? ": fits." : ".")
        : `: does not fit. Lower the sequence length or the rank, or raise the budget.`),
    plan.fits ? "ok" : "error",
  );
  return plan;
}
$("plan-button").addEventListener(
  "click",
  () => showPlan().catch((err) => setStatus($("plan-status"), err.message, "error")),
);

// ---- 4. train ------------------------------------------------------------------------------------------

async function runTraining(resume) {
  const status = $("train-status"), bar = $("train-progress");
  setStatus(status, resume ? "Resuming…" : "Checking the plan…");
  try {
    if (resume) {
      const saved = await ask("savedRun");
      const changed = saved.exists ? changedSettings(saved) : [];
      // a paused run continues from its own state: a loaded adapter to start from would be ignored silently
      if (saved.exists && $("from-adapter").checked) changed.push("Start from the loaded adapter (ticked)");
      if (changed.length) {
        setStatus(
          status,
          `Not resumed: the paused run continues with its saved settings, and the form differs: ` +
            `${changed.join(", ")}. Set them back to resume, or Train to start a new run with the form's.`,
          "error",
        );
        return;
      }
    } else {
      const plan = await showPlan();
      if (!plan.fits) {
        setStatus(
          status,
          "Not started: the plan does not fit the memory budget (see the plan above).",
          "error",
        );
        return;
      }
      // a new run replaces the saved one: only with the user's word
      const saved = await ask("savedRun");
      if (saved.exists && !confirm(replaceQuestion(saved))) {
        setStatus(status, `Not started: the saved run is kept (${savedRunText(saved)}).`);
        return;
      }
    }
    state.training = true;
    refresh();
    $("resume-button").disabled = true;
    setStatus(status, resume ? "Resuming…" : "Starting…");
    let arena = 0, startStep;
    const result = await ask("train", { options: trainOptions(), resume }, (e) => {
      if (e.type === "plan") arena = e.bytes;
      else if (e.type === "history") showHistory(e);
      else if (e.type === "step") {
        state.losses.push(e.loss);
        // `elapsed` counts from this run's start: a resumed run's first step is not step 1
        startStep ??= e.step - 1;
        const perStep = e.elapsed / (e.step - startStep);
        const eta = perStep * (e.steps - e.step);
        state.stepEvents.push({ ...e, eta });
        bar.max = e.steps;
        bar.value = e.step;
        const heap = performance.memory
          ? `, main thread's JS heap ${formatMB(performance.memory.usedJSHeapSize)}`
          : "";
        setStatus(
          status,
          `Step ${e.step} of ${e.steps} · loss ${e.loss.toFixed(4)} · ${
            Math.round(e.tokensPerSecond)
          } tokens/s · ` +
            `ETA ${duration(eta)} · memory: arena ${formatMB(arena)}${heap}`,
          "",
          e.step === e.steps || (e.step - startStep) % 10 === 1, // the first step of the run, then every 10th
        );
        drawCurve();
      } else if (e.type === "val") {
        state.vals.push({ step: e.step, loss: e.loss });
        drawCurve();
      }
    });
    state.trained = true;
    const last = result.losses.at(-1);
    setStatus(
      status,
      result.stopped
        ? `Paused after step ${result.steps}; the state is saved in this browser. Resume any time, even after closing the tab.`
        : `Done: ${result.steps} steps, last loss ${last?.toFixed(4) ?? "–"}` +
          (result.valLosses.length ? `, validation loss ${result.valLosses.at(-1).loss.toFixed(4)}` : "") +
          ".",
      "ok",
    );
    $("resume-button").disabled = !result.stopped;
  } catch (err) {
    console.error(err);
    setStatus(status, err.message, "error");
  } finally {
    state.training = false;
    refresh();
  }
}

/** A run's loss curve so far (`losses` from step `lossesFrom`, validation losses `vals`), drawn. */
function showHistory({ losses, lossesFrom, vals }) {
  state.losses = [...losses];
  state.lossesFrom = lossesFrom;
  state.vals = [...vals];
  drawCurve();
}

function drawCurve() {
  const shown = state.losses.length > 1;
  $("curve").innerHTML = shown
    ? lossCurveSvg(state.losses, state.vals, { title: "loss", firstStep: state.lossesFrom })
    : "";
  // the numbers in words too: for screen readers (the drawing is one image) and screens too small to read it
  const last = state.lossesFrom + state.losses.length - 1, val = state.vals.at(-1);
  const text = shown
    ? `Loss ${state.losses[0].toFixed(4)} at step ${state.lossesFrom}, ` +
      `${state.losses.at(-1).toFixed(4)} at step ${last}` +
      (val ? `; validation loss ${val.loss.toFixed(4)} at step ${val.step}` : "") + "."
    : "";
  $("curve").setAttribute("aria-label", shown ? `Loss curve: ${text}` : "Loss curve");
  $("curve-text").textContent = text;
  $("curve-text").hidden = !shown;
}

const unfinished = (saved) => saved.step < saved.run?.options?.steps;

function savedRunText(saved) {
  return unfinished(saved)
    ? `paused at step ${saved.step} of ${saved.run.options.steps}`
    : `finished, ${saved.step} steps`;
}

function replaceQuestion(saved) {
  return `This model's saved run (${savedRunText(saved)}) is replaced by a new one` +
    (unfinished(saved)
      ? ": it can no longer be resumed. Train anew anyway? (Cancel keeps it: Resume continues it.)"
      : ", and its adapter is gone unless you downloaded it. Train anew anyway?");
}

async function offerResume() {
  const saved = await ask("savedRun");
  const steps = saved.run?.options?.steps;
  $("resume-button").disabled = !(saved.exists && unfinished(saved));
  // this model's saved curve, or none (not another model's)
  showHistory(saved.history ?? { losses: [], lossesFrom: 1, vals: [] });
  if (saved.exists) {
    state.trained = true;
    if (unfinished(saved)) showSavedSettings(saved);
    setStatus(
      $("train-status"),
      unfinished(saved)
        ? `A run of this model stopped at step ${saved.step} of ${steps}: Resume continues it with its ` +
          `saved settings, now in the form (Train starts a new run with the form's).`
        : `A finished run of this model is saved (${saved.step} steps): its adapter can be downloaded.`,
    );
  }
}

/**
 * The settings a resumed run takes from its saved state, as [field id, label, saved value]: Resume refuses a
 * form that differs in one (the budget and spill are the form's: they change memory, not results).
 */
function savedSettings(saved) {
  const o = saved.run.options;
  return [
    ["steps", "Steps", o.steps],
    ["lr", "Learning rate", o.optimizer.lr],
    ["optimizer", "Optimizer", o.optimizer.name],
    ["rank", "LoRA rank", saved.lora.rank], // the state's: an adapter started from may have set it
    ["seq-len", "Sequence length", o.seqLen],
    ["seed", "Seed", o.seed],
    ["val-every", "Validate every", o.valEvery],
  ];
}

/** Fills the form with a saved run's settings (so what Resume uses is what the page shows). */
function showSavedSettings(saved) {
  for (const [id, , value] of savedSettings(saved)) $(id).value = String(value);
  $("budget").value = String((saved.run.options.budget || 0) / 1e6);
  if (!$("spill").disabled) $("spill").checked = !!saved.run.options.spill;
}

/** The form's settings that differ from the saved run's, as "Label (saved x, the form y)". */
function changedSettings(saved) {
  return savedSettings(saved).filter(([id, , value]) => {
    const v = $(id).value;
    return typeof value === "number" ? Number(v) !== value : v !== value;
  }).map(([id, label, value]) => `${label} (saved ${value}, the form ${$(id).value || "empty"})`);
}

$("train-button").addEventListener("click", () => runTraining(false));
$("resume-button").addEventListener("click", () => runTraining(true));
$("pause-button").addEventListener("click", () => {
  ask("stop");
  setStatus($("train-status"), "Pausing after this step (saving)…");
});

// ---- 5. try it -----------------------------------------------------------------------------------------

$("try-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const prompt = $("prompt").value;
  const maxTokens = Number($("max-tokens").value);
  $("try-button").disabled = true;
  const run = async (out, adapter) => {
    out.textContent = "";
    await ask("release"); // the pack's file is locked by whoever reads it
    const transfer = adapter ? [adapter.weights] : [];
    const r = await textJob(
      "generate",
      {
        key: state.model.key,
        prompt,
        adapter,
        maxTokens,
        threads: state.env.threads,
        // small packs are read into memory whole: each token would otherwise read every layer again
        streamWeights: state.model.packBytes > 256e6,
      },
      (ev) => (out.textContent += ev.piece),
      transfer,
    );
    out.title = `${r.tokens} tokens in ${r.seconds.toFixed(1)} s`;
  };
  try {
    await run($("out-base"), undefined);
    if (state.trained) await run($("out-adapter"), await ask("adapter"));
    else $("out-adapter").textContent = "(train or load an adapter first)";
  } catch (err) {
    $("out-adapter").textContent = err.message;
  } finally {
    refresh();
  }
});

/** "Start from the loaded adapter" trains at the adapter's rank: the field shows it, locked while checked. */
function showAdapterRank() {
  const from = $("from-adapter").checked && state.adapter;
  $("rank").disabled = !!from;
  $("rank-note").hidden = !from;
  if (from) $("rank").value = String(state.adapter.rank);
}
$("from-adapter").addEventListener("change", showAdapterRank);

/** A newly opened model lets the loaded adapter go (the session does too): it was checked against another. */
function dropLoadedAdapter() {
  if (state.adapter) {
    setStatus(
      $("keep-status"),
      "The loaded adapter was let go with the model it was loaded for: load it again to use it with this one.",
      "warn",
    );
  }
  state.adapter = undefined;
  $("from-adapter").checked = false;
  $("from-adapter").disabled = true;
  showAdapterRank();
}

// ---- 6. keep it ----------------------------------------------------------------------------------------

$("download-button").addEventListener("click", async () => {
  try {
    const a = await ask("adapter");
    const zip = zipStore([
      { name: "adapter_config.json", data: new TextEncoder().encode(a.config) },
      { name: "adapter_model.safetensors", data: new Uint8Array(a.weights) },
    ]);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([zip], { type: "application/zip" }));
    link.download = `${state.model.name.split("/").at(-1).replace(/[^\w.-]+/g, "-")}-lora.zip`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    setStatus($("keep-status"), `Downloaded ${link.download} (${formatMB(zip.length)}).`, "ok");
  } catch (err) {
    setStatus($("keep-status"), err.message, "error");
  }
});

$("adapter-files").addEventListener("change", async (e) => {
  const status = $("keep-status");
  try {
    const files = new Map();
    for (const f of e.target.files) {
      const bytes = new Uint8Array(await f.arrayBuffer());
      if (f.name.endsWith(".zip")) {
        const from = new Map(); // file name → its path in the zip
        for (const entry of await unzip(bytes, f.name)) {
          if (entry.name.endsWith("/")) continue; // folders
          const base = entry.name.split("/").at(-1);
          // a PEFT output folder holds checkpoint-N/ copies: pairing one's config with another's weights
          // would pass the shape check at the same rank
          if (from.has(base)) {
            throw new Error(
              `${f.name} holds ${base} twice (${from.get(base)} and ${entry.name}): zip one adapter's files`,
            );
          }
          from.set(base, entry.name);
          files.set(base, entry.data);
        }
      } else files.set(f.name, bytes);
    }
    const config = files.get("adapter_config.json"), weights = files.get("adapter_model.safetensors");
    if (!config || !weights) {
      throw new Error(
        "pick adapter_config.json and adapter_model.safetensors together, or one .zip holding both",
      );
    }
    const w = weights.slice().buffer;
    const r = await ask("loadAdapter", { config: new TextDecoder().decode(config), weights: w }, undefined, [
      w,
    ]);
    state.trained = true;
    state.adapter = r;
    $("from-adapter").disabled = false;
    $("from-adapter").checked = true;
    showAdapterRank();
    setStatus(
      status,
      `Loaded an adapter of rank ${r.rank} on ${
        r.targets.join(", ")
      }: try it above, download it, or train on from it.`,
      "ok",
    );
  } catch (err) {
    setStatus(status, err.message, "error");
  } finally {
    e.target.value = "";
    refresh();
  }
});

// the page and library files, kept for offline visits (service workers need a secure context: https or loopback)
navigator.serviceWorker?.register(new URL("./sw.js", import.meta.url)).catch((err) =>
  console.warn(`mesp: the page will not open offline (${err.message})`)
);
showEnv().catch((err) => setStatus($("env"), err.message, "error"));
refresh();
