/**
 * Compiles the AssemblyScript kernels in `asm/kernels/` into the committed `wasm/` variants, generates the
 * TypeScript interface of their exports (`src/runtime/kernel_exports.ts`, see `interface.ts`), then the
 * browser build in `dist/` (see `bundle.ts`).
 *
 *   deno task build                     # writes wasm/*.wasm, src/runtime/kernel_exports.ts and dist/
 *   deno run --lock=deno.dev.lock -A asm/build.ts --check    # rebuilds in memory, exits 1 if any committed byte differs
 *
 * The build is reproducible: the same sources and the pinned compiler give the same bytes.
 */
// deno-lint-ignore no-import-prefix -- pinned here, no import map: the build is the only user
import asc from "npm:assemblyscript@0.28.20/asc";
import { bundle, ENTRIES } from "./bundle.ts";
import { declarations as typeDeclarations } from "./types.ts";
import { INTERFACE_FILE, interfaceModule, parseDeclarations } from "./interface.ts";

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

/** The binary of `variant` and asc's declarations of its exports (`--bindings raw` leaves the binary as is). */
async function compile(variant: Variant): Promise<{ binary: Uint8Array; declarations: string }> {
  let binary: Uint8Array | undefined, declarations: string | undefined;
  const stderr: string[] = [];
  const dts = variant.file.replace(/\.wasm$/, ".d.ts");
  const { error } = await asc.main([...COMMON, ...variant.flags, "--bindings", "raw", "-o", variant.file], {
    writeFile(name: string, contents: Uint8Array | string) {
      if (name === variant.file) binary = contents as Uint8Array;
      if (name === dts) declarations = contents as string;
    },
    stderr: { write: (s: string) => stderr.push(String(s)) },
    stdout: { write: () => {} },
  });
  if (error || !binary || declarations === undefined) {
    throw new Error(`asc failed for ${variant.file}:\n${stderr.join("")}${error ?? ""}`);
  }
  return { binary, declarations };
}

/** `code` as `deno fmt` formats it with the repository's settings (so the generated file passes fmt --check). */
async function format(code: string): Promise<string> {
  const child = new Deno.Command("deno", {
    args: ["fmt", "--quiet", "--ext=ts", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(`deno fmt of ${INTERFACE_FILE} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
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
  let declarations: string | undefined;
  for (const v of VARIANTS) {
    const out = await compile(v);
    // every variant must export the same functions: the host has one interface for all of them
    declarations ??= out.declarations;
    if (out.declarations !== declarations) {
      throw new Error(`${v.file} declares other exports than ${VARIANTS[0].file}`);
    }
    if (await emit(`wasm/${v.file}`, out.binary, check)) differ++;
    if (await emit(`dist/wasm/${v.file}`, out.binary, check)) differ++;
  }
  const generated = await format(interfaceModule(parseDeclarations(declarations!)));
  if (await emit(INTERFACE_FILE, new TextEncoder().encode(generated), check)) differ++;
  for (const entry of ENTRIES) {
    if (await emit(`dist/${entry.out}`, await bundle(entry), check)) differ++;
  }
  if (await emit("dist/mesp.d.ts", typeDeclarations(), check)) differ++;
  if (differ) Deno.exit(1);
}
