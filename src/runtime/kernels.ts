/**
 * Loads the compiled kernels (`wasm/`), choosing the fastest variant this runtime can validate.
 * Works from `file:` and `https:` URLs alike; uses no Deno-only API.
 *
 * @module
 */
import type { KernelExports } from "./kernel_exports.ts";
import { didYouMean } from "../util/nearest.ts";
import { describeValue } from "../util/describe.ts";

/** A compiled flavour of the kernels, in the order they are preferred. */
export type Variant = "relaxed" | "simd";

/** All variants, fastest first. */
export const VARIANTS: readonly Variant[] = ["relaxed", "simd"];

/** Weight element types understood by the kernels (codes shared with `asm/kernels/dtype.ts`). */
export const DTYPE = { f32: 0, f16: 1, bf16: 2, q8: 3, q4: 4 } as const;
/** Name of a weight element type. */
export type WeightDtype = keyof typeof DTYPE;

/**
 * The packed GEMM's register tile, rows × columns (`MR`, `NR` of `asm/kernels/gemm.ts`): the grains by which
 * the pool splits a GEMM, so that threads get whole tiles. Only speed depends on it, never the results; it
 * is a constant (the split helpers are made before any kernel loads), so tests/gemm_test.ts checks it against
 * the kernels' `gemm_tile_rows()` / `gemm_tile_columns()`.
 */
export const GEMM_TILE = { rows: 5, columns: 8 } as const;

/** GEMM operand layouts (codes shared with `asm/kernels/gemm.ts`). */
export const OP = {
  /** C[M,N] = A[M,K] · B[N,K]ᵀ */
  nt: 0,
  /** C[M,N] = A[M,K] · B[K,N] */
  nn: 1,
  /** C[M,N] = A[K,M]ᵀ · B[K,N] */
  tn: 2,
} as const;

/** The raw exports of the kernel module, generated from `asm/kernels/` (see `kernel_exports.ts`). */
export type { KernelExports } from "./kernel_exports.ts";

/** A loaded kernel module. */
export interface Kernels {
  readonly variant: Variant;
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
  /**
   * Whether this is a threads build on a shared `WebAssembly.Memory` (workers can instantiate `module` on
   * `memory`; see `pool.ts`). False for the single-thread builds.
   */
  readonly shared: boolean;
}

/** The kernels' wasm files: one per variant, and one threads build per variant. */
export const KERNEL_FILES = [
  "mesp_relaxed.wasm",
  "mesp_simd.wasm",
  "mesp_relaxed_threads.wasm",
  "mesp_simd_threads.wasm",
] as const;
/** Name of one of the {@linkcode KERNEL_FILES}. */
export type KernelFile = typeof KERNEL_FILES[number];

/**
 * Where the kernels and the pool worker are: the `kernels` option of `train`, `evaluate`, `generate`,
 * `computeGradients` and `Engine.create`, and part of {@linkcode LoadKernelsOptions}. By default both are
 * found next to mesp's own modules (`wasm/` and the worker beside `mod.ts`, or beside `dist/mesp.js`),
 * wherever they are hosted.
 */
export interface KernelLocation {
  /**
   * Base URL of the `.wasm` files: their folder, or any file in it (default: the `wasm/` folder that ships
   * with this module). Relative to the page or worker; a last segment without a dot is taken as a folder.
   */
  wasmBase?: string | URL;
  /**
   * Precompiled modules by file name, e.g. `{ "mesp_simd.wasm": simdModule }` (a runtime that cannot compile
   * wasm from bytes, such as Cloudflare's workerd, hands them in as module imports). When given, nothing is
   * fetched or compiled: a variant without a module here is skipped.
   */
  modules?: Partial<Record<KernelFile, WebAssembly.Module>>;
  /** URL of the pool worker module (default: the one that ships with this module). */
  workerUrl?: string | URL;
}

/** The names of {@linkcode KernelLocation}'s options. */
const KERNEL_LOCATION_OPTIONS = ["wasmBase", "modules", "workerUrl"] as const;
/** The names of {@linkcode LoadKernelsOptions}' options. */
const LOAD_KERNELS_OPTIONS = [...KERNEL_LOCATION_OPTIONS, "variant", "shared", "memoryBytes"] as const;

/**
 * Throws unless `location` (`where`, e.g. `train options.kernels`) is absent or an object of `known` options
 * whose URLs are strings or URLs and whose `modules` are compiled modules of {@linkcode KERNEL_FILES}: bytes in
 * their place would be instantiated as bytes and fail inside, a misspelled option would be ignored.
 */
export function checkKernelLocation(
  location: unknown,
  where: string,
  known: readonly string[] = KERNEL_LOCATION_OPTIONS,
): void {
  if (location === undefined) return;
  if (location === null || typeof location !== "object") {
    throw new TypeError(`${where} must be an object, got ${describeValue(location)}`);
  }
  const o = location as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (!known.includes(name)) {
      throw new TypeError(`${where}: unknown option "${name}"${didYouMean(name, known)}`);
    }
  }
  for (const name of ["wasmBase", "workerUrl"]) {
    const url = o[name];
    if (url !== undefined && typeof url !== "string" && !(url instanceof URL)) {
      throw new TypeError(`${where}: ${name} must be a URL (a string or a URL), got ${describeValue(url)}`);
    }
  }
  const modules = o.modules;
  if (modules === undefined) return;
  if (modules === null || typeof modules !== "object") {
    throw new TypeError(
      `${where}: modules must be an object of modules by file name, got ${describeValue(modules)}`,
    );
  }
  for (const [file, module] of Object.entries(modules)) {
    if (!(KERNEL_FILES as readonly string[]).includes(file)) {
      throw new TypeError(
        `${where}: modules has "${file}", not a kernel file${didYouMean(file, KERNEL_FILES)}; ` +
          `they are ${KERNEL_FILES.join(", ")}`,
      );
    }
    if (module !== undefined && !(module instanceof WebAssembly.Module)) {
      const bytes = module instanceof ArrayBuffer || ArrayBuffer.isView(module);
      throw new TypeError(
        `${where}: modules["${file}"] must be a WebAssembly.Module, got ${describeValue(module)}` +
          (bytes
            ? ": compile the bytes first (await WebAssembly.compile(bytes)); in Cloudflare Workers, import " +
              "the .wasm file, which gives a module"
            : ""),
      );
    }
  }
}

/** Options for {@linkcode loadKernels}. */
export interface LoadKernelsOptions extends KernelLocation {
  /** Force a variant instead of picking the fastest valid one. */
  variant?: Variant;
  /**
   * Load the threads build on a shared memory when this runtime can run a pool (`SharedArrayBuffer`, module
   * `Worker`s, and the build validates); otherwise the single-thread build is loaded. `Kernels.shared` says
   * which one it was.
   */
  shared?: boolean;
  /**
   * With `shared`: give the memory exactly this size (rounded up to 64 KiB pages), never to grow. The module's
   * memory limits are rewritten to min = max before compiling, which lets V8 bounds-check against a constant:
   * on a growable shared memory it reloads the size at every access, and the GEMM runs 25–30 % slower
   * (measured, Deno 2.9, which has no trap handler and checks every access). Falls back to the single-thread
   * build when a memory this large cannot be had. (A precompiled module keeps its limits; the memory is
   * still fixed at this size.)
   */
  memoryBytes?: number;
}

const FILES: Record<Variant, KernelFile> = { relaxed: "mesp_relaxed.wasm", simd: "mesp_simd.wasm" };
const THREAD_FILES: Record<Variant, KernelFile> = {
  relaxed: "mesp_relaxed_threads.wasm",
  simd: "mesp_simd_threads.wasm",
};
/** Pages of the shared memory's maximum, tried in order (the build declares 65536 pages = 4 GiB). */
const SHARED_MAXIMA = [65536, 32768, 16384, 8192];
/** Initial pages of the shared memory (the build's `--initialMemory`). */
const INITIAL_PAGES = 16;
const moduleCache = new Map<string, Promise<WebAssembly.Module | undefined>>();

const bytesCache = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

async function fetchBytes(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  let p = bytesCache.get(url.href);
  if (!p) {
    p = (async () => {
      let res: Response;
      try {
        res = await fetch(url);
      } catch (err) {
        throw new Error(`cannot fetch kernels ${url.href}: ${(err as Error).message}`);
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`cannot fetch kernels ${url.href}: HTTP ${res.status} ${res.statusText}`.trimEnd());
      }
      return new Uint8Array(await res.arrayBuffer());
    })();
    // a failed fetch is not remembered: the next call tries again
    p.catch(() => bytesCache.delete(url.href));
    bytesCache.set(url.href, p);
  }
  return await p;
}

/**
 * The module of `file`: the precompiled one from `location.modules`, or the file fetched and compiled once
 * (per fixed memory size `pages`, if given); undefined if it is not given or not valid here.
 */
async function moduleOf(
  location: KernelLocation,
  file: KernelFile,
  pages?: number,
): Promise<WebAssembly.Module | undefined> {
  if (location.modules) return location.modules[file];
  const url = new URL(file, wasmBaseOf(location));
  const key = pages === undefined ? url.href : `${url.href}#${pages}`;
  let p = moduleCache.get(key);
  if (!p) {
    p = (async () => {
      let bytes = await fetchBytes(url);
      if (pages !== undefined) bytes = withMemoryLimits(bytes, pages, pages);
      if (!WebAssembly.validate(bytes)) return undefined;
      try {
        return await WebAssembly.compile(bytes);
      } catch (err) {
        // valid bytes that do not compile: a runtime that forbids compiling them (workerd's "Wasm code
        // generation disallowed by embedder")
        throw new Error(
          `cannot compile kernels ${url.href}: ${(err as Error).message} (a runtime that forbids compiling ` +
            `WebAssembly from bytes, such as Cloudflare Workers, needs the kernels option { modules }: ` +
            `the .wasm files imported as modules, see "Cloudflare Workers / workerd" in mesp's README)`,
          { cause: err },
        );
      }
    })();
    p.catch(() => moduleCache.delete(key));
    moduleCache.set(key, p);
  }
  return await p;
}

/**
 * The base URL of the wasm files: the option (relative to the page or worker where there is one; a last
 * segment without a dot is a folder, so `…/wasm` means `…/wasm/`), or `wasm/` shipped with this module.
 */
function wasmBaseOf(location: KernelLocation): URL {
  if (location.wasmBase !== undefined) {
    const given = String(location.wasmBase);
    const page = (globalThis as { location?: { href?: string } }).location?.href;
    let url: URL;
    try {
      url = new URL(given, page);
    } catch {
      throw new TypeError(
        `kernels.wasmBase ${JSON.stringify(given)} is not a URL${
          page ? "" : " (no page here to resolve it against)"
        }`,
      );
    }
    const last = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
    if (last !== "" && !last.includes(".")) url.pathname += "/";
    return url;
  }
  // Read only here: some runtimes (workerd) give modules no URL, and they pass `modules` instead.
  const here = import.meta.url;
  try {
    return new URL("../../wasm/", here);
  } catch {
    throw new Error(
      `cannot locate mesp's wasm files: this module has no URL here (import.meta.url is ${here}); ` +
        `pass the kernels option { modules } (precompiled WebAssembly.Modules) or { wasmBase }`,
    );
  }
}

/** Reads an unsigned LEB128 at `at`: [value, next offset]. */
function leb(b: Uint8Array, at: number): [number, number] {
  let v = 0, shift = 0, x: number;
  do {
    x = b[at++];
    v += (x & 0x7f) * 2 ** shift;
    shift += 7;
  } while (x & 0x80);
  return [v, at];
}

/** Unsigned LEB128 bytes of `v`. */
function toLeb(v: number): number[] {
  const out: number[] = [];
  do {
    let x = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) x |= 0x80;
    out.push(x);
  } while (v > 0);
  return out;
}

/** One entry of a wasm import section: its kind and where its description starts and ends. */
interface ImportEntry {
  kind: number;
  /** The first byte after the kind. */
  at: number;
  /** The first byte after the description. */
  end: number;
}

/** The entries of the import section whose body starts at `body` (module and field names skipped). */
function importEntries(wasm: Uint8Array, body: number): ImportEntry[] {
  const entries: ImportEntry[] = [];
  let [count, p] = leb(wasm, body);
  for (; count > 0; count--) {
    for (let name = 0; name < 2; name++) {
      const [len, q] = leb(wasm, p);
      p = q + len;
    }
    const kind = wasm[p++], at = p;
    if (kind === 0) [, p] = leb(wasm, p); // function: type index
    else if (kind === 1) p = wasm[p + 1] & 1 ? leb(wasm, leb(wasm, p + 2)[1])[1] : leb(wasm, p + 2)[1];
    else if (kind === 2) p = wasm[p] & 1 ? leb(wasm, leb(wasm, p + 1)[1])[1] : leb(wasm, p + 1)[1];
    else if (kind === 3) p += 2; // global: value type, mutability
    else if (kind === 4) [, p] = leb(wasm, p + 1); // tag: attribute, type index
    else throw new Error(`kernel module: unknown import kind ${kind}`);
    entries.push({ kind, at, end: p });
  }
  return entries;
}

/**
 * A copy of a wasm binary whose imported shared memory has limits `min`..`max` pages (exported for tests).
 * Throws if the module imports no memory.
 */
export function withMemoryLimits(wasm: Uint8Array, min: number, max: number): Uint8Array<ArrayBuffer> {
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = leb(wasm, at + 1);
    const memory = id === 2 ? importEntries(wasm, body).find((e) => e.kind === 2) : undefined;
    if (memory) {
      const limits = [wasm[memory.at] | 1, ...toLeb(min), ...toLeb(max)];
      const content = [
        ...wasm.subarray(body, memory.at),
        ...limits,
        ...wasm.subarray(memory.end, body + size),
      ];
      return new Uint8Array([
        ...wasm.subarray(0, at),
        2,
        ...toLeb(content.length),
        ...content,
        ...wasm.subarray(body + size),
      ]);
    }
    at = body + size;
  }
  throw new Error("kernel module imports no memory");
}

/** The two constants a memory plan needs before any kernels are instantiated. */
export interface KernelConstants {
  /** The variant they were read from (the one {@linkcode loadKernels} would pick). */
  readonly variant: Variant;
  /** `heap_base()`: the first free byte after the module's static data. */
  readonly heapBase: number;
  /** `gemm_scratch_bytes()`: the scratch one GEMM caller needs. */
  readonly gemmScratchBytes: number;
}

/**
 * `heap_base()` and `gemm_scratch_bytes()` of the kernels {@linkcode loadKernels} would pick, read from the
 * wasm bytes (both functions are a single `i32.const`) so that no instance, memory or compiled module is
 * made only to size a plan. Falls back to instantiating when the bytes are not at hand (precompiled
 * `modules`) or the functions are not constants.
 */
export async function kernelConstants(options: LoadKernelsOptions = {}): Promise<KernelConstants> {
  checkKernelLocation(options, "kernels", LOAD_KERNELS_OPTIONS); // the kernels option and the variant
  if (!options.modules) {
    const candidates = options.variant ? [options.variant] : VARIANTS;
    for (const variant of candidates) {
      const bytes = await fetchBytes(new URL(FILES[variant], wasmBaseOf(options)));
      if (!WebAssembly.validate(bytes)) continue; // what moduleOf would skip
      const c = exportedConstants(bytes, ["heap_base", "gemm_scratch_bytes"]);
      if (c.heap_base !== undefined && c.gemm_scratch_bytes !== undefined) {
        return { variant, heapBase: c.heap_base, gemmScratchBytes: c.gemm_scratch_bytes };
      }
      break;
    }
  }
  const k = await loadKernels({ ...options, shared: false });
  return {
    variant: k.variant,
    heapBase: k.exports.heap_base(),
    gemmScratchBytes: k.exports.gemm_scratch_bytes(),
  };
}

/** Reads a signed LEB128 (32-bit) at `at`. */
function sleb(b: Uint8Array, at: number): [number, number] {
  let v = 0, shift = 0, x: number;
  do {
    x = b[at++];
    v |= (x & 0x7f) << shift;
    shift += 7;
  } while (x & 0x80);
  if (shift < 32 && x & 0x40) v |= -1 << shift;
  return [v, at];
}

/**
 * The values of the exported functions `names` whose body is exactly `i32.const N` (no locals), read from
 * a wasm binary; a name that is missing or not such a constant is left out (exported for tests).
 */
export function exportedConstants(wasm: Uint8Array, names: readonly string[]): Record<string, number> {
  const text = new TextDecoder();
  let imported = 0;
  const wanted = new Map<number, string>(); // function index -> export name
  const out: Record<string, number> = {};
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = leb(wasm, at + 1);
    let p = body;
    if (id === 2) { // imports: functions imported come first in the index space
      imported += importEntries(wasm, p).filter((e) => e.kind === 0).length;
    } else if (id === 7) { // exports
      let count;
      [count, p] = leb(wasm, p);
      for (; count > 0; count--) {
        const [len, q] = leb(wasm, p);
        const name = text.decode(wasm.subarray(q, q + len));
        const kind = wasm[q + len];
        let index;
        [index, p] = leb(wasm, q + len + 1);
        if (kind === 0 && names.includes(name)) wanted.set(index, name);
      }
    } else if (id === 10) { // code
      let count;
      [count, p] = leb(wasm, p);
      for (let i = 0; i < count; i++) {
        const [len, q] = leb(wasm, p);
        const name = wanted.get(imported + i);
        // body: 0 local groups, i32.const (0x41) N, end (0x0b)
        if (name !== undefined && wasm[q] === 0 && wasm[q + 1] === 0x41) {
          const [v, r] = sleb(wasm, q + 2);
          if (r === q + len - 1 && wasm[r] === 0x0b) out[name] = v;
        }
        p = q + len;
      }
    }
    at = body + size;
  }
  return out;
}

/** Why this runtime cannot run a worker pool, or undefined if it can. */
export function threadsUnavailable(): string | undefined {
  const g = globalThis as { SharedArrayBuffer?: unknown; Worker?: unknown; crossOriginIsolated?: boolean };
  // browsers expose SharedArrayBuffer only to cross-origin-isolated pages
  if (g.crossOriginIsolated === false) {
    return "the page is not cross-origin isolated (serve it with the headers Cross-Origin-Opener-Policy: " +
      "same-origin and Cross-Origin-Embedder-Policy: require-corp to get SharedArrayBuffer)";
  }
  if (typeof g.SharedArrayBuffer !== "function") return "this runtime has no SharedArrayBuffer";
  if (typeof g.Worker !== "function") return "this runtime has no Worker";
  if (typeof Atomics !== "object") return "this runtime has no Atomics";
  return undefined;
}

/**
 * A shared memory: fixed at `pages`, or growable up to the largest maximum this runtime will reserve;
 * undefined if none can be had.
 */
function sharedMemory(pages?: number): WebAssembly.Memory | undefined {
  if (pages !== undefined) {
    try {
      return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    } catch {
      return undefined;
    }
  }
  for (const maximum of SHARED_MAXIMA) {
    try {
      return new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum, shared: true });
    } catch {
      // address space too small for this maximum: try a smaller one
    }
  }
  return undefined;
}

/** The imports every instance gets (the shared builds also import their memory). */
export function kernelImports(memory?: WebAssembly.Memory): WebAssembly.Imports {
  const env: Record<string, WebAssembly.ImportValue> = {
    abort(_msg: number, _file: number, line: number, col: number) {
      throw new Error(`kernel abort at ${line}:${col}`);
    },
  };
  if (memory) env.memory = memory;
  return { env };
}

/** The shared build of `variant`, instantiated on a fresh shared memory, or undefined if unavailable. */
async function loadShared(
  location: KernelLocation,
  variant: Variant,
  bytes?: number,
): Promise<Kernels | undefined> {
  if (threadsUnavailable()) return undefined;
  const pages = bytes === undefined ? undefined : Math.max(INITIAL_PAGES, Math.ceil(bytes / 65536));
  if (pages !== undefined && pages > 65536) return undefined;
  const module = await moduleOf(location, THREAD_FILES[variant], pages);
  const memory = module && sharedMemory(pages);
  if (!module || !memory) return undefined;
  const instance = await WebAssembly.instantiate(module, kernelImports(memory));
  const exports = instance.exports as unknown as KernelExports;
  return { variant, module, memory, exports, shared: true };
}

/**
 * Instantiates the kernel module. Each call returns a fresh instance with its own memory; the compiled
 * module is cached. With `shared`, the threads build is preferred (see {@linkcode LoadKernelsOptions}).
 */
export async function loadKernels(options: LoadKernelsOptions = {}): Promise<Kernels> {
  checkKernelLocation(options, "loadKernels options", LOAD_KERNELS_OPTIONS);
  const candidates = options.variant ? [options.variant] : VARIANTS;
  for (const variant of candidates) {
    if (options.shared) {
      const k = await loadShared(options, variant, options.memoryBytes);
      if (k) return k;
    }
    const module = await moduleOf(options, FILES[variant]);
    if (!module) {
      if (options.variant) {
        throw new Error(
          options.modules
            ? `the kernels option gives no module for ${FILES[variant]}`
            : `this runtime cannot run the "${variant}" kernels`,
        );
      }
      continue;
    }
    const instance = await WebAssembly.instantiate(module, kernelImports());
    const exports = instance.exports as unknown as KernelExports;
    return { variant, module, memory: exports.memory, exports, shared: false };
  }
  throw new Error(
    options.modules
      ? `the kernels option gives no module for ${candidates.map((v) => FILES[v]).join(" or ")}`
      : "this runtime supports none of the kernel variants (WebAssembly SIMD is required)",
  );
}
