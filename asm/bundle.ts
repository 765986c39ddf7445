/**
 * The browser build in `dist/`: ES modules a page imports with a plain `<script type="module">` (no bundler),
 * made with `deno bundle` from the same sources as `mod.ts`, and a copy of `wasm/`:
 *
 *   dist/mesp.js               the library (mod.ts)
 *   dist/worker.js             the kernel pool's worker
 *   dist/tokenizer.js          the tokenizer implementation, imported only when a tokenizer is loaded
 *   dist/tokenize_worker.js    the worker of tokenizeInWorker
 *   dist/wasm/*.wasm           the kernels
 *   dist/mesp.d.ts             the library's types (see `types.ts`)
 *
 * Each module finds the others relative to its own URL: the source's `new URL("…", import.meta.url)`
 * expressions are rewritten to the dist names (the build fails if one is missing). Module-boundary comments
 * are made independent of where the repository and Deno's cache are, so the build is reproducible.
 *
 * @module
 */

/** One output module: its source entry and the asset paths its code names, rewritten for dist/. */
interface Entry {
  source: string;
  out: string;
}

export const ENTRIES: Entry[] = [
  { source: "mod.ts", out: "mesp.js" },
  { source: "src/runtime/worker.ts", out: "worker.js" },
  { source: "src/text/build_tokenizer.ts", out: "tokenizer.js" },
  { source: "src/data/tokenize_worker.ts", out: "tokenize_worker.js" },
];

/** Source paths relative to `import.meta.url` → their place in dist/. */
const REWRITES: [string, string][] = [
  ['"../../wasm/"', '"./wasm/"'],
  ['"./worker.ts"', '"./worker.js"'],
  ['"./build_tokenizer.ts"', '"./tokenizer.js"'],
  ['"./tokenize_worker.ts"', '"./tokenize_worker.js"'],
];

/** Bundles `entry` (run from the repository root) and rewrites it for dist/. */
export async function bundle(entry: Entry): Promise<Uint8Array> {
  const out = await new Deno.Command("deno", {
    args: ["bundle", "--quiet", "--platform", "browser", "--format", "esm", entry.source],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno bundle ${entry.source} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextEncoder().encode(rewrite(new TextDecoder().decode(out.stdout), entry));
}

function rewrite(code: string, entry: Entry): string {
  let text = code.replace(/^\/\/ .*$/gm, (line) => {
    const npm = /registry\.npmjs\.org\/(.+)$/.exec(line);
    return npm ? `// npm:${npm[1]}` : line;
  });
  for (const [from, to] of REWRITES) {
    const pattern = new RegExp(`new URL\\(${escape(from)}, (import\\.meta\\.url|here)\\)`, "g");
    text = text.replace(pattern, (_m, base) => `new URL(${to}, ${base})`);
  }
  const left = /new URL\("[^"]*\.ts"|"\.\.\/\.\.\//.exec(text);
  if (left) throw new Error(`dist/${entry.out}: a source path is left after rewriting: ${left[0]}`);
  if (/\/work\/|\/home\/|\/root\//.test(text)) throw new Error(`dist/${entry.out}: an absolute path is left`);
  // URL importers (Deno, a bundler) take the library's types from here; TypeScript also finds them beside it
  return entry.out === "mesp.js" ? `/* @ts-self-types="./mesp.d.ts" */\n${text}` : text;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
