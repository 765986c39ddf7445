// The page's compute worker: converts a model into a weight pack kept in the Origin Private File System,
// plans, trains, saves training state to OPFS (so a closed tab resumes where it stopped) and hands out the
// adapter. Tokenizing and generating run in short-lived text workers (text.js), so this worker never holds
// the tokenizer (~180 MB). The page talks to it with {id, op, ...} messages; replies carry the same id, and
// progress arrives as {kind: "event", data} messages in between.
import {
  adapterConfigJson,
  blobFiles,
  blobSource,
  bytesSource,
  checkpointFingerprint,
  decodeTokenCache,
  encodeLoraTensors,
  formatMB,
  formatPlan,
  hubFiles,
  loadTokenizer,
  loraLayout,
  memorySpill,
  openCheckpoint,
  openPack,
  openTrainingState,
  opfsRangeCache,
  opfsSpillFile,
  paramCounts,
  parseAdapterConfig,
  parseHubId,
  parseModelConfig,
  planTraining,
  readAdapterInto,
  readSafetensorsHeader,
  train,
  urlFiles,
  writePack,
  writeTrainingState,
} from "../dist/mesp.js";
import * as opfs from "./opfs.js";

/** OPFS folder of the weight files of a model read from a URL, kept while it converts ({@link downloadCaches}). */
const DOWNLOADS = ["downloads"];

const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"];

/**
 * The storage's write lock (Web Locks, shared by this origin's tabs): held shared by each conversion and
 * training run, taken exclusively, only when free, to remove what interrupted writes left (another tab's
 * write under way looks just like a leftover).
 */
const WRITE_LOCK = "mesp-storage-writes";

/** The requests that write to the storage (conversions, training runs): each holds the write lock. */
const WRITES = new Set(["openModel", "train"]);

/** Runs `fn` holding the write lock shared (where the browser has no Web Locks, just runs it). */
function writing(fn) {
  return navigator.locks ? navigator.locks.request(WRITE_LOCK, { mode: "shared" }, fn) : fn();
}

/** Removes leftovers of interrupted writes, unless a tab (this one included) is writing. */
async function cleanStorage() {
  if (!navigator.locks) return; // no way to know that no other tab is writing: left alone
  await navigator.locks.request(WRITE_LOCK, { ifAvailable: true }, async (lock) => {
    if (lock) await opfs.removeLeftovers();
  });
}

/** The session: the opened model, its datasets, the last trained or loaded adapter, the stop flag. */
const session = {
  model: undefined,
  pack: undefined,
  sets: {},
  stop: false,
  result: undefined,
};

const post = (msg, transfer) => self.postMessage(msg, transfer ?? []);
const event = (id, data) => post({ id, kind: "event", data });

/** Threads the kernels may use here: every core when the page is cross-origin isolated, else one. */
function threadCount() {
  if (!self.crossOriginIsolated) return 1;
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8));
}

const ops = {
  env() {
    return {
      isolated: self.crossOriginIsolated === true,
      threads: threadCount(),
      cores: navigator.hardwareConcurrency || 1,
      opfs: typeof navigator.storage?.getDirectory === "function",
      spill: spillWorks(),
    };
  },

  /** The models converted earlier, newest first. */
  async cachedModels() {
    await cleanStorage();
    return await opfs.listModels();
  },

  /**
   * Opens a model: `files` (File objects by name, from a folder picker or a drop) or `url` (a folder served
   * over HTTP), or `key` (one converted earlier). Converts it into a pack in OPFS the first time.
   */
  async openModel(id, args) {
    // the open model stays usable when this one fails: its file handle is let go (a conversion may replace
    // that very file) and reopened by its next read
    const previous = {
      pack: session.pack,
      model: session.model,
      result: session.result,
      loadedAdapter: session.loadedAdapter,
    };
    session.pack?.source.close?.();
    try {
      return await openModelFrom(id, args);
    } catch (e) {
      Object.assign(session, previous);
      throw e;
    }
  },

  /** Forgets a converted model (its pack and any training state). */
  async removeModel(_id, { key }) {
    // its pack is held open for reading, and the browser would keep the files
    if (session.model?.key === key) {
      throw new Error(`${session.model.name} is open: reload the page (or open another model) to remove it`);
    }
    await opfs.remove(["models"], key);
    return await opfs.listModels();
  },

  /** Takes token cache bytes made by a text worker as a dataset (`which`: "train" or "val"). */
  dataset(_id, { which, bytes, name }) {
    const cache = decodeTokenCache(new Uint8Array(bytes), { name });
    const seqs = [];
    for (let i = 0; i < cache.count; i++) seqs.push(cache.example(i));
    session.sets[which] = { seqs, bytes: new Uint8Array(bytes), name };
    return { stats: cache.meta.stats };
  },

  clearDataset(_id, { which }) {
    delete session.sets[which];
    return {};
  },

  /**
   * The memory plan of a training run with `options` on the picked data (the one `train` lays out, for the
   * longest sequence), and whether it fits `budget`.
   */
  async plan(_id, { options, budget }) {
    requireModel();
    const { fromAdapter: _fromAdapter, ...planOptions } = withAdapterLayout(options);
    const plan = await planTraining(
      session.pack,
      {
        ...planOptions,
        threads: options.threads ?? threadCount(),
        // the plan only asks whether there is one: a file that is never written
        spill: options.spill && spillWorks() ? memorySpill() : undefined,
      },
      session.sets.train?.seqs,
      session.sets.val?.seqs ?? [],
    );
    return {
      table: formatPlan(plan),
      arenaBytes: plan.bytes,
      arena: formatMB(plan.bytes),
      fits: !budget || plan.bytes <= budget,
    };
  },

  /** Whether a saved training state exists for this model, and where it stopped. */
  async savedRun() {
    requireModel();
    const saved = await savedState(["models", session.model.key, "run"]);
    if (!saved) return { exists: false };
    return {
      exists: true,
      step: saved.state.step,
      lora: saved.state.lora,
      run: saved.run,
      history: lossHistory(saved.run, saved.state.step),
    };
  },

  /** Trains; with `resume`, continues the saved state of this model. Emits step/val/checkpoint events. */
  async train(id, { options, resume }) {
    requireModel();
    const runDir = ["models", session.model.key, "run"];
    let state;
    let runMeta;
    if (resume) {
      // streamed: checked here, then read by `train` a layer at a time into the arena or the spill
      const decoded = await savedState(runDir);
      if (!decoded) throw new Error("there is no saved run to resume");
      state = decoded.state;
      // the saved run's settings, but the form's memory ones: they change how, not what, it computes
      options = { ...decoded.run.options, budget: options.budget, spill: options.spill };
      runMeta = decoded.run;
      const data = await opfs.readBytes(runDir, "train.tokcache");
      if (!data) throw new Error("the saved run's training data is missing from browser storage");
      ops.dataset(id, { which: "train", bytes: data.buffer, name: decoded.run.data });
      const val = await opfs.readBytes(runDir, "val.tokcache");
      if (val) ops.dataset(id, { which: "val", bytes: val.buffer, name: decoded.run.val });
      else delete session.sets.val;
    } else {
      if (!session.sets.train) throw new Error("no training data yet");
      runMeta = { options, data: session.sets.train.name, val: session.sets.val?.name };
      await opfs.remove(["models", session.model.key], "run");
      await opfs.writeBytes(runDir, "train.tokcache", session.sets.train.bytes);
      if (session.sets.val) await opfs.writeBytes(runDir, "val.tokcache", session.sets.val.bytes);
    }
    const adapter = !resume && options.fromAdapter ? session.loadedAdapter : undefined;
    if (!resume && options.fromAdapter && !adapter) throw new Error("no adapter is loaded to start from");
    // resumed, the saved state's layout is the run's (the form's lora, or an adapter loaded since, is not)
    if (resume) options = { ...options, lora: undefined };
    else options = withAdapterLayout(options);
    const layout = loraLayout(session.pack.config, state?.lora ?? options.lora);
    session.stop = false;
    const threads = options.threads ?? threadCount();
    // spilled: the saved inputs, adapter and AdamW moments in an OPFS file next to the training state, the
    // arena holding one layer's (the page's "Spill" option; the same bits)
    const spill = options.spill && spillWorks()
      ? await opfsSpillFile("spill.tmp", { directory: await opfs.dirOf(runDir) })
      : undefined;
    const history = lossHistory(runMeta, state?.step ?? 0);
    event(id, { type: "history", ...history });
    const save = async (s) => {
      await opfs.writeAtomic(
        runDir,
        "checkpoint.safetensors",
        (sink) => writeTrainingState(sink, s, { ...runMeta, ...history }),
      );
      // the pack is read synchronously, so a step never yields to this worker's event loop: yield here (the
      // page saves every step), so a "stop" message is seen before the next step
      await new Promise((resolve) => setTimeout(resolve, 0));
      // the adapter as it stands, so "download" works during a pause too; spilled, a copy would undo the
      // spill's saving: "download" then reads the state just saved
      session.result = spill ? undefined : { params: s.params.slice(), layout };
    };
    // the page's own choice (start from the loaded adapter) is not one of train's options
    const { fromAdapter: _fromAdapter, ...trainOptions } = options;
    try {
      const result = await train(session.pack, session.sets.train.seqs, session.sets.val?.seqs ?? [], {
        ...trainOptions,
        threads,
        budget: options.budget || undefined,
        resume: state,
        adapter,
        spill,
        onEvent: (e) => {
          if (e.type === "step") history.losses.push(e.loss);
          else if (e.type === "val") history.vals.push({ step: e.step, loss: e.loss });
          event(id, e);
        },
        saveState: save,
        shouldStop: () => session.stop,
      });
      // spilled, `params` is read from the file into an array of its own (before the file goes)
      session.result = { params: spill ? result.params : result.params.slice(), layout };
      return {
        steps: result.steps,
        stopped: result.stopped,
        losses: result.losses,
        valLosses: result.valLosses,
        spilled: spill !== undefined,
      };
    } finally {
      await spill?.remove();
    }
  },

  /** Lets go of the weight pack's file, so a text worker can read it (the next use here reopens it). */
  release() {
    session.pack?.source.close?.();
    return {};
  },

  /** Asks a running training to stop after its current step (it saves first). */
  stop() {
    session.stop = true;
    return {};
  },

  /** The trained adapter as PEFT files (bytes), from the last training or the saved state. */
  async adapter() {
    requireModel();
    let r = session.result;
    if (!r) {
      const saved = await savedState(["models", session.model.key, "run"]);
      if (!saved) throw new Error("nothing trained yet");
      const { state } = saved;
      // the parameters alone are kept; the moments pass through one piece's buffer for the checksum
      const params = new Float32Array(state.length), piece = 1 << 16;
      await state.read(
        piece,
        (t, i) => (t === "params" ? params.subarray(i * piece, (i + 1) * piece) : undefined),
      );
      r = { params, layout: loraLayout(session.pack.config, state.lora) };
    }
    const weights = encodeLoraTensors(r.layout, r.params);
    // a model converted by an older page has no baseModel: its name, as then
    const base = session.model.baseModel === undefined ? session.model.name : session.model.baseModel;
    const config = adapterConfigJson(r.layout, base ?? undefined);
    return { weights: weights.buffer, config };
  },

  /** Checks an uploaded adapter against this model and keeps it as the current adapter. */
  async loadAdapter(_id, { config, weights }) {
    requireModel();
    const cfg = parseAdapterConfig(config, "adapter_config.json");
    const layout = loraLayout(session.pack.config, {
      rank: cfg.rank,
      alpha: cfg.alpha,
      rslora: cfg.rslora,
      targets: cfg.targets,
    });
    const file = await readSafetensorsHeader(
      bytesSource(new Uint8Array(weights), "adapter_model.safetensors"),
    );
    const params = new Float32Array(layout.totalElements);
    const opened = { config: cfg, weights: file, name: "uploaded adapter" };
    await readAdapterInto(opened, layout, params);
    session.result = { params, layout };
    session.loadedAdapter = opened;
    return { rank: cfg.rank, targets: cfg.targets };
  },
};

/** `openModel` from a converted model's `key`, or from `files` or a `url` (converted the first time). */
async function openModelFrom(id, { files, url, key, format, name: given }) {
  if (key) {
    try {
      return { ...await useCached(key), converted: false };
    } catch (e) {
      if (e.name !== "StalePackError") throw e;
      // a pack written by an older mesp: its checkpoint is not here to rebuild it from
      const meta = await opfs.readModelMeta(key);
      throw new Error(
        `${meta?.name ?? key} was converted by an older version of this page (${e.message}); ` +
          `open its folder or URL again and it is converted anew`,
      );
    }
  }
  // `org/name[@revision]` (no scheme) is a model on the Hugging Face Hub, read with its resolve URLs
  const hub = url && !url.includes("://") ? parseHubId(url) : undefined;
  const downloads = url ? await downloadCaches(url) : undefined;
  const dir = hub
    ? hubFiles(hub, { cacheFor: downloads.cacheFor })
    : url
    ? urlFiles(url.endsWith("/") ? url : url + "/", { cacheFor: downloads.cacheFor })
    : blobFiles(files, { name: given ?? "picked files" }); // a folder's name, when one was picked
  try {
    const opened = await convertFrom(id, dir, { url, hub, format, given });
    await downloads?.remove(); // the pack holds the weights now
    return opened;
  } finally {
    await downloads?.close();
  }
}

/**
 * Where a model read from a URL keeps its weight files while it converts: OPFS range caches under
 * downloads/<hash of the URL>/. The fingerprint reads every byte, which they keep, so packing reads them from
 * there: the checkpoint is downloaded once, not twice. A conversion that fails or a closed tab leaves them;
 * the next conversion from a URL removes those of other URLs (one model's at a time).
 */
async function downloadCaches(url) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(url)));
  const name = [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const root = await opfs.dirOf(DOWNLOADS);
  const others = [];
  for await (const [other] of root.entries()) if (other !== name) others.push(other);
  // another tab's conversion holds its files: left to a later one
  for (const other of others) await opfs.remove(DOWNLOADS, other).catch(() => {});
  const directory = await opfs.dirOf([...DOWNLOADS, name]);
  const caches = [];
  return {
    cacheFor(file) {
      if (!file.endsWith(".safetensors")) return undefined; // small files, read whole once
      const cache = opfsRangeCache(encodeURIComponent(file), { directory });
      caches.push(cache);
      return cache;
    },
    close: () => Promise.all(caches.splice(0).map((c) => c.close().catch(() => {}))),
    async remove() {
      await this.close();
      await opfs.remove(DOWNLOADS, name);
    },
  };
}

/** Converts the model in `dir` (its pack kept in OPFS), or opens the pack converted from the same weights. */
async function convertFrom(id, dir, { url, hub, format, given }) {
  const configText = await dir.readText("config.json");
  if (configText === undefined) {
    throw new Error(
      hub
        ? `${dir.name}: the Hub repository has no config.json (not found)`
        : url
        ? `${dir.name}config.json: not found — give the URL of the model's folder, the one holding config.json`
        : `${dir.name}: no config.json — pick the model's folder`,
    );
  }
  let json;
  try {
    json = JSON.parse(configText);
  } catch (e) {
    throw new Error(`${dir.name}/config.json: invalid JSON (${e.message})`);
  }
  const cfg = parseModelConfig(json, { file: `${dir.name}/config.json` });
  const tokenizer = await dir.readText("tokenizer.json");
  if (tokenizer === undefined) {
    throw new Error(`${dir.name}: no tokenizer.json — the page needs it to read your data`);
  }
  const tokenizerFiles = { "tokenizer.json": tokenizer };
  for (const f of TOKENIZER_FILES.slice(1)) tokenizerFiles[f] = await dir.readText(f);
  // loaded as tokenizing will load them: a broken tokenizer is refused here, not stored for later picks
  await checkTokenizer(tokenizerFiles, dir.name);
  event(id, { stage: "convert", message: "reading the checkpoint", done: 0, total: 1 });
  const ckpt = await openCheckpoint(dir);
  try {
    // every byte is read to know the weights (from a URL, one download before the conversion's): shown
    let shown = 0;
    const fingerprint = await checkpointFingerprint(dir, ckpt, undefined, {
      onProgress: (done, total) => {
        if (done < total && done - shown < total / 100) return; // a bar step per percent
        shown = done;
        event(id, {
          stage: "convert",
          message: `reading the checkpoint to know its weights (${formatMB(done)} of ${formatMB(total)})`,
          done,
          total,
        });
      },
    });
    const name = String(
      given || json._name_or_path || hub?.repo || (url && url.replace(/\/+$/, "").split("/").at(-1)) ||
        `Qwen2 model, ${cfg.numLayers} layers × ${cfg.hiddenSize}`,
    );
    // the adapter's base_model_name_or_path: the CLI's is the model's path or Hub id; a page knows a
    // folder's name (not its path), the Hub id or the URL, and loose files only by a recorded name
    const known = given || json._name_or_path || hub?.repo || url?.replace(/\/+$/, "");
    const baseModel = known ? String(known) : null;
    const k = `${fingerprint.slice(0, 16)}-${format}`;
    const existing = await opfs.readModelMeta(k);
    if (existing) {
      try {
        const opened = await useCached(k);
        // the same weights with other tokenizer files (a fixed tokenizer.json): the picked ones replace them
        return { ...opened, converted: false, tokenizerReplaced: await keepTokenizer(k, tokenizerFiles) };
      } catch (e) {
        if (e.name !== "StalePackError") throw e; // an older pack version: converted again below, over it
      }
    }
    const bytes = await opfs.writeAtomic(["models", k], "weights.pack", async (sink) => {
      await writePack(ckpt, cfg, sink, {
        format,
        fingerprint,
        onProgress: (done, total, what) =>
          event(id, { stage: "convert", message: `packed ${what}`, done, total }),
      });
    });
    await keepTokenizer(k, tokenizerFiles);
    const counts = paramCounts(cfg);
    const meta = {
      key: k,
      name,
      baseModel,
      format,
      fingerprint,
      packBytes: bytes,
      params: counts.total,
      layers: cfg.numLayers,
      hidden: cfg.hiddenSize,
      quantization: cfg.quantization ? `MLX ${cfg.quantization.bits}-bit` : undefined,
      savedAt: Date.now(),
    };
    await opfs.writeText(["models", k], "meta.json", JSON.stringify(meta));
    return { ...await useCached(k), converted: true };
  } finally {
    ckpt.close();
  }
}

/**
 * Loads the tokenizer files (`files`: their text by name, undefined where missing) in a short-lived text
 * worker, since this one never holds a tokenizer (~180 MB); throws what is wrong, naming the file in `where`.
 */
async function checkTokenizer(files, where) {
  const args = {
    tokenizerJson: files["tokenizer.json"],
    tokenizerConfigJson: files["tokenizer_config.json"],
    generationConfigJson: files["generation_config.json"],
  };
  // the loader names the file (`tokenizer.json: missing field 'model'`): said with the folder's name
  const named = (message) => {
    const file = TOKENIZER_FILES.some((f) => message.startsWith(`${f}:`)) ? "" : "tokenizer.json: ";
    return new Error(`${where}/${file}${message}`);
  };
  // a browser without workers in workers: loaded here, and left to the garbage collector
  if (typeof self.Worker !== "function") {
    return void await loadTokenizer(args).catch((e) => Promise.reject(named(e.message)));
  }
  const w = new Worker(new URL("./text.js", import.meta.url), { type: "module" });
  await new Promise((resolve, reject) => {
    w.onmessage = (e) => e.data.kind === "done" ? resolve() : reject(named(e.data.message));
    w.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`the text worker failed to load (${e.message || "see the browser console"})`));
    };
    w.postMessage({ op: "checkTokenizer", ...args });
  }).finally(() => w.terminate());
}

/**
 * Makes model `key`'s stored tokenizer files the picked `files` (their text by name, undefined where
 * missing); returns the names of those that changed.
 */
async function keepTokenizer(key, files) {
  const changed = [];
  for (const f of TOKENIZER_FILES) {
    const stored = await opfs.readText(["models", key], f);
    if (stored === files[f]) continue;
    if (files[f] === undefined) await opfs.remove(["models", key], f);
    else await opfs.writeText(["models", key], f, files[f]);
    changed.push(f);
  }
  return changed;
}

/**
 * The training state saved in `runDir`, opened from its OPFS file without holding it (checked whole, through a
 * small buffer), or undefined where there is none.
 */
async function savedState(runDir) {
  const file = await opfs.fileOf(runDir, "checkpoint.safetensors");
  // errors name where the file is: the browser storage (OPFS) path of the saved state
  const name = `saved training state (browser storage: ${[...runDir, "checkpoint.safetensors"].join("/")})`;
  return file ? await openTrainingState(blobSource(file, name), name) : undefined;
}

/**
 * The loss curve of a run up to `step`, kept in its saved state's run metadata (`losses` from step
 * `lossesFrom`, `vals`) so a resumed run's curve goes on; a state saved without it (by an older page, or a
 * new run) starts after `step`.
 */
function lossHistory(run, step) {
  if (!Array.isArray(run.losses) || !Number.isInteger(run.lossesFrom)) {
    return { losses: [], lossesFrom: step + 1, vals: [] };
  }
  return {
    losses: run.losses.slice(0, Math.max(0, step - run.lossesFrom + 1)),
    lossesFrom: run.lossesFrom,
    vals: (Array.isArray(run.vals) ? run.vals : []).filter((v) => v.step <= step),
  };
}

/** Whether training can spill to OPFS here: a sync access handle (dedicated workers, as this one is). */
function spillWorks() {
  return typeof navigator.storage?.getDirectory === "function" &&
    typeof self.FileSystemFileHandle?.prototype.createSyncAccessHandle === "function";
}

function requireModel() {
  if (!session.pack) throw new Error("open a model first");
}

async function useCached(key) {
  const meta = await opfs.readModelMeta(key);
  if (!meta) throw new Error(`converted model ${key} is gone from this browser's storage`);
  const source = await opfs.syncSource(
    ["models", key],
    "weights.pack",
    `browser storage: ${meta.name} (${meta.format})`,
  );
  try {
    session.pack = await openPack(source, { fingerprint: meta.fingerprint, format: meta.format });
  } catch (e) {
    source.close?.(); // the sync access handle locks the file a new conversion would replace
    throw e;
  }
  session.model = meta;
  session.result = undefined;
  session.loadedAdapter = undefined; // checked against the model it was loaded for, not this one
  const c = session.pack.config;
  return {
    ...meta,
    vocab: c.vocabSize,
    maxPositions: c.maxPositionEmbeddings,
    bf16Scales: session.pack.header.bf16Scales,
  };
}

/** `options` with the loaded adapter's rank, alpha and targets when training starts from it. */
function withAdapterLayout(options) {
  const a = options.fromAdapter && session.loadedAdapter?.config;
  if (!a) return options;
  return { ...options, lora: { rank: a.rank, alpha: a.alpha, rslora: a.rslora, targets: a.targets } };
}

// One request at a time, except `stop`, which must reach a running training.
let queue = Promise.resolve();
self.onmessage = (e) => {
  const { id, op, ...args } = e.data;
  const run = async () => {
    try {
      const fn = ops[op];
      if (!fn) throw new Error(`unknown request ${op}`);
      const value = await (WRITES.has(op) ? writing(() => fn(id, args)) : fn(id, args));
      const transfer = value && value.weights instanceof ArrayBuffer ? [value.weights] : [];
      post({ id, kind: "done", value }, transfer);
    } catch (err) {
      console.error(err);
      post({ id, kind: "error", message: err?.message || String(err) });
    }
  };
  if (op === "stop" || op === "env") run();
  else queue = queue.then(run);
};
