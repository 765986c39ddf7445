// The page's storage: the Origin Private File System, laid out as models/<key>/{weights.pack, meta.json,
// tokenizer files, run/{checkpoint.safetensors, train.tokcache, val.tokcache}}. Files that must never be
// half-written (the pack, the training state) are written to a temporary name and moved into place.

/** The directory `path` (folder names from the OPFS root), made where missing unless `create` is false. */
export async function dirOf(path, create = true) {
  let d = await navigator.storage.getDirectory();
  for (const p of path) d = await d.getDirectoryHandle(p, { create });
  return d;
}

async function tryDir(path) {
  try {
    return await dirOf(path, false);
  } catch {
    return undefined;
  }
}

/**
 * Writes `name` in `path` through `fill(sink)` (a ByteSink), into `name.tmp` first, then moved over `name`;
 * returns the bytes written. Uses a synchronous access handle (workers only): no copy of the data is kept.
 */
export async function writeAtomic(path, name, fill) {
  const d = await dirOf(path);
  const tmpName = `${name}.tmp`;
  const tmp = await d.getFileHandle(tmpName, { create: true });
  const h = await tmp.createSyncAccessHandle();
  let at = 0;
  try {
    h.truncate(0);
    await fill({
      write(chunk) {
        let done = 0;
        while (done < chunk.length) done += h.write(chunk.subarray(done), { at: at + done });
        at += chunk.length;
        return Promise.resolve();
      },
    });
    h.flush();
  } finally {
    h.close();
  }
  await d.removeEntry(name).catch(() => {});
  await tmp.move(name);
  return at;
}

export async function writeBytes(path, name, bytes) {
  return await writeAtomic(path, name, (sink) => sink.write(bytes));
}

export async function writeText(path, name, text) {
  return await writeBytes(path, name, new TextEncoder().encode(text));
}

/** The file `name` in `path` as a File, or undefined. */
export async function fileOf(path, name) {
  const d = await tryDir(path);
  if (!d) return undefined;
  try {
    return await (await d.getFileHandle(name)).getFile();
  } catch {
    return undefined;
  }
}

export async function readBytes(path, name) {
  const f = await fileOf(path, name);
  return f ? new Uint8Array(await f.arrayBuffer()) : undefined;
}

export async function readText(path, name) {
  const f = await fileOf(path, name);
  return f ? await f.text() : undefined;
}

/** Removes the entry `name` (a file or a whole folder) from `path`, if it exists. */
export async function remove(path, name) {
  const d = await tryDir(path);
  await d?.removeEntry(name, { recursive: true }).catch((err) => {
    if (err?.name === "NotFoundError") return;
    const open = err?.name === "NoModificationAllowedError"
      ? "it is open in another tab of this browser"
      : "";
    throw new Error(`cannot remove ${[...path, name].join("/")}: ${open || err.message}`);
  });
}

export async function readModelMeta(key) {
  const text = await readText(["models", key], "meta.json");
  if (!text || !(await fileOf(["models", key], "weights.pack"))) return undefined;
  return JSON.parse(text);
}

/** The converted models kept in this browser, newest first. */
export async function listModels() {
  const d = await tryDir(["models"]);
  if (!d) return [];
  const out = [];
  for await (const [key, h] of d.entries()) {
    if (h.kind !== "directory") continue;
    const meta = await readModelMeta(key);
    if (meta) out.push(meta);
  }
  return out.sort((a, b) => b.savedAt - a.savedAt);
}

/**
 * Removes what interrupted writes left under models/: `*.tmp` files (a write cut short, a spill file of a run
 * that was) and model folders without meta.json (a conversion cut short), which no list shows. Only for when
 * no write can be under way (the caller holds the write lock exclusively). Returns the paths removed.
 */
export async function removeLeftovers() {
  const models = await tryDir(["models"]);
  if (!models) return [];
  const found = []; // [folder handle, entry name, path]: collected first, removed after the walk
  const walk = async (d, path) => {
    for await (const [name, h] of d.entries()) {
      if (h.kind === "directory") await walk(h, [...path, name]);
      else if (name.endsWith(".tmp")) found.push([d, name, [...path, name].join("/")]);
    }
  };
  for await (const [key, h] of models.entries()) {
    if (h.kind !== "directory") continue;
    if (await fileOf(["models", key], "meta.json")) await walk(h, ["models", key]);
    else found.push([models, key, `models/${key}/`]);
  }
  const removed = [];
  for (const [d, name, path] of found) {
    // a file another tab still holds open cannot go: it is left for a later visit
    await d.removeEntry(name, { recursive: true }).then(
      () => removed.push(path),
      (err) => console.warn(`mesp: cannot remove ${path} from browser storage (${err.message})`),
    );
  }
  return removed;
}

/**
 * A WeightSource over a file of this storage, read through a synchronous access handle (workers only): each
 * read goes straight into the caller's buffer, with no copy and no round trip to the browser process, which
 * a Blob read costs (the engine reads thousands of vocabulary rows a step). The handle locks the file, so
 * `close()` releases it for another worker; the next read opens it again.
 */
export async function syncSource(path, name, label) {
  const d = await dirOf(path, false);
  const file = await d.getFileHandle(name);
  let handle, opening;
  const open = () =>
    opening ??= file.createSyncAccessHandle().then((h) => (handle = h), (err) => {
      opening = undefined;
      // this tab's workers take turns (the page lets one go before another reads): the holder is another tab
      if (err?.name !== "NoModificationAllowedError") throw err;
      throw new Error(
        `${label}: this model is open in another tab of this browser: close it there, or use that tab`,
      );
    });
  return {
    name: label,
    async size() {
      return (await open()).getSize();
    },
    async read(offset, into) {
      const h = handle ?? await open();
      const n = h.read(into, { at: offset });
      if (n !== into.length) {
        throw new Error(`${label}: short read: wanted bytes ${offset}..${offset + into.length}, got ${n}`);
      }
    },
    close() {
      handle?.close();
      handle = opening = undefined;
    },
  };
}
