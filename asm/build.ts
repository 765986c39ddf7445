/**
 * Compiles the AssemblyScript kernels in `asm/kernels/` into the committed `wasm/` variants, then the browser
 * build in `dist/` (see `bundle.ts`).
 *
 *   deno task build            # writes wasm/*.wasm and dist/
 *   deno task build --check    # rebuilds in memory, exits 1 if any committed byte differs
 *
 * The build is reproducible: the same sources and the pinned compiler give the same bytes.
 */
import asc from "assemblyscript/asc";
import { bundle, ENTRIES } from "./bundle.ts";

/** One compiled flavour of the kernels. */
interface Variant {
  file: string;
  flags: string[];
}

const COMMON = ["asm/kernels/index.ts", "-O3", "--runtime", "stub", "--noAssert", "--initialMemory", "16"];

/**
 * Threads builds import one shared memory that the host creates (and workers share). Its maximum is the
 * wasm32 limit, 65536 pages = 4 GiB, so any plan that fits wasm32 fits; the host may create the memory
 * with a lower maximum where address space is scarce.
 */
const THREADS = ["--importMemory", "--sharedMemory", "--maximumMemory", "65536"];

/** The variants, in the order the loader prefers them (threads builds only when a pool is wanted). */
export const VARIANTS: Variant[] = [
  { file: "mesp_relaxed.wasm", flags: ["--enable", "simd,relaxed-simd"] },
  { file: "mesp_simd.wasm", flags: ["--enable", "simd"] },
  { file: "mesp_relaxed_threads.wasm", flags: ["--enable", "simd,relaxed-simd,threads", ...THREADS] },
  { file: "mesp_simd_threads.wasm", flags: ["--enable", "simd,threads", ...THREADS] },
];

async function compile(variant: Variant): Promise<Uint8Array> {
  let binary: Uint8Array | undefined;
  const stderr: string[] = [];
  const { error } = await asc.main([...COMMON, ...variant.flags, "-o", variant.file], {
    writeFile(name: string, contents: Uint8Array | string) {
      if (name === variant.file) binary = contents as Uint8Array;
    },
    stderr: { write: (s: string) => stderr.push(String(s)) },
    stdout: { write: () => {} },
  });
  if (error || !binary) throw new Error(`asc failed for ${variant.file}:\n${stderr.join("")}${error ?? ""}`);
  return binary;
}

/** Writes `bytes` to `path`, or with `check` only compares them; true if the committed bytes differ. */
async function emit(path: string, bytes: Uint8Array, check: boolean): Promise<boolean> {
  if (check) {
    let old: Uint8Array | undefined;
    try {
      old = await Deno.readFile(path);
    } catch { /* missing counts as different */ }
    const same = old !== undefined && old.length === bytes.length && old.every((b, i) => b === bytes[i]);
    console.log(`${same ? "same   " : "DIFFERS"} ${path} (${bytes.length} bytes)`);
    return !same;
  }
  await Deno.writeFile(path, bytes);
  console.log(`wrote ${path} (${bytes.length} bytes)`);
  return false;
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const root = new URL("../", import.meta.url);
  Deno.chdir(root);
  let differ = 0;
  if (!check) await Deno.mkdir("dist/wasm", { recursive: true });
  for (const v of VARIANTS) {
    const bytes = await compile(v);
    if (await emit(`wasm/${v.file}`, bytes, check)) differ++;
    if (await emit(`dist/wasm/${v.file}`, bytes, check)) differ++;
  }
  for (const entry of ENTRIES) {
    if (await emit(`dist/${entry.out}`, await bundle(entry), check)) differ++;
  }
  if (differ) Deno.exit(1);
}
