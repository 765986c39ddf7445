// The public API: importable, complete, and free of Deno-only modules (so it runs in browsers and edge
// runtimes).
import { assert, assertEquals } from "./_assert.ts";
import * as mesp from "../mod.ts";
// the types of the API's arguments and results, which a caller names too (a type check fails without them)
import type { AdapterConfig, ByteSink, OpenedAdapter, TokenCache } from "../mod.ts";

Deno.test("mod.ts exports the library surface", () => {
  for (
    const name of [
      "loadKernels",
      "openPack",
      "writePack",
      "train",
      "evaluate",
      "generate",
      "computeGradients",
      "Engine",
      "Backward",
      "fetchSource",
      "opfsRangeCache",
      "opfsSpillFile",
      "hubFiles",
      "loadTokenizer",
      "renderChat",
      "parseJsonl",
      "makeModel",
      "lossCurveSvg",
      "openTrainingState",
      // thrown, so callers tell them apart with instanceof
      "FileNotFoundError",
      "StalePackError",
    ]
  ) {
    assert(typeof (mesp as Record<string, unknown>)[name] === "function", `mod.ts should export ${name}`);
  }
});

Deno.test("mod.ts exports the types of its arguments and results", () => {
  const sink: ByteSink = { write: () => Promise.resolve() };
  const types: [AdapterConfig?, OpenedAdapter?, TokenCache?] = [];
  assert(sink && types.length === 0);
  assert(new mesp.FileNotFoundError("x.pack") instanceof Error, "FileNotFoundError");
  assert(new mesp.StalePackError("x.pack") instanceof Error, "StalePackError");
});

Deno.test("mod.ts keeps the training state's names from before the rename, as aliases", () => {
  assert(mesp.writeCheckpoint === mesp.writeTrainingState, "writeCheckpoint");
  assert(mesp.decodeCheckpoint === mesp.decodeTrainingState, "decodeCheckpoint");
});

Deno.test("mod.ts's module graph holds none of the Deno-edge modules", async () => {
  const root = new URL("../", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", "mod.ts"], cwd: root })
    .output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: { specifier: string }[] };
  const local = graph.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"));
  assert(local.length > 20, `only ${local.length} modules`);
  for (const s of local) {
    const text = await Deno.readTextFile(new URL(s));
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    assert(!/\bDeno\./.test(code) || s.endsWith("/memory.ts"), `${s} uses a Deno API`);
    assert(!/from "node:/.test(code), `${s} imports a node: module`);
  }
});

/**
 * The layers of the code, lowest first. A module may import modules of its own layer (without a cycle) and
 * of the layers below it, never above: src/<folder>/ is the folder's layer, mod.ts, web/ (the page's server)
 * and bench/ sit on top.
 */
const LAYERS = [
  "util",
  "runtime",
  "io",
  "model",
  "text",
  "data",
  "engine",
  "run",
  "mod",
  "cli",
  "web",
  "bench",
];

/** Layer of a repository-relative path, or undefined for a file outside every layer. */
function layerOf(path: string): string | undefined {
  if (path === "mod.ts") return "mod";
  const [top, folder] = path.split("/");
  const layer = top === "src" ? folder : top;
  return LAYERS.includes(layer) ? layer : undefined;
}

/** Import graph: module → modules it imports (code or types), repository-relative paths. */
type Graph = Map<string, string[]>;

/** Every import cycle (modules in a strongly connected component, or importing themselves). */
function importCycles(graph: Graph): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [];
  const onStack = new Set<string>(), cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/** Imports that go up the layers, or from or to a file outside them. */
function upwardImports(graph: Graph): string[] {
  const bad: string[] = [];
  for (const [from, tos] of graph) {
    for (const to of tos) {
      const a = layerOf(from), b = layerOf(to);
      if (a === undefined || b === undefined || LAYERS.indexOf(b) > LAYERS.indexOf(a)) {
        bad.push(`${from} → ${to}`);
      }
    }
  }
  return bad;
}

Deno.test("the import checks find a cycle and an upward import", () => {
  const graph: Graph = new Map([
    ["src/engine/a.ts", ["src/engine/b.ts", "src/model/m.ts"]],
    ["src/engine/b.ts", ["src/engine/a.ts", "src/run/r.ts"]],
    ["src/model/m.ts", ["src/model/m.ts"]],
    ["src/run/r.ts", ["src/engine/a.ts", "src/nowhere/x.ts"]],
  ]);
  assertEquals(importCycles(graph), [["src/model/m.ts"], [
    "src/engine/a.ts",
    "src/engine/b.ts",
    "src/run/r.ts",
  ]]);
  assertEquals(upwardImports(graph), ["src/engine/b.ts → src/run/r.ts", "src/run/r.ts → src/nowhere/x.ts"]);
});

Deno.test("the code's imports go one way: no cycle, nothing imported from a layer above", async () => {
  const root = new URL("../", import.meta.url);
  const files = [] as string[];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      if (e.isDirectory) await walk(`${dir}${e.name}/`);
      else if (e.name.endsWith(".ts")) files.push(`${dir}${e.name}`);
    }
  };
  await walk("src/");
  await walk("web/");
  await walk("bench/");
  // one entry importing every module, so the graph has them all (workers and child processes included)
  const tmp = await Deno.makeTempDir();
  const entry = `${tmp}/all.ts`;
  await Deno.writeTextFile(
    entry,
    ["mod.ts", ...files].map((f) => `import "${new URL(f, root)}";\n`).join(""),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--lock=deno.dev.lock", "--json", entry],
    cwd: root,
  })
    .output();
  await Deno.remove(tmp, { recursive: true });
  assert(out.success, new TextDecoder().decode(out.stderr));
  type Dep = { code?: { specifier: string }; type?: { specifier: string } };
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string; dependencies?: Dep[] }[];
  };
  const rel = (s: string) => (s.startsWith(root.href) ? s.slice(root.href.length) : undefined);
  const graph: Graph = new Map();
  for (const m of info.modules) {
    const from = rel(m.specifier);
    if (from === undefined || from.startsWith("tests/") || from.startsWith("../")) continue;
    const tos = (m.dependencies ?? []).flatMap((d) => [d.code?.specifier, d.type?.specifier])
      .map((s) => (s ? rel(s) : undefined)).filter((s): s is string => s !== undefined);
    graph.set(from, [...new Set(tos)]);
  }
  assert(graph.size > files.length / 2, `only ${graph.size} modules in the graph`);
  assertEquals(importCycles(graph), [], "import cycles");
  assertEquals(
    upwardImports(graph),
    [],
    "imports against the layering (lowest first: " + LAYERS.join(" ← ") + ")",
  );
});

Deno.test("deno.lock holds only what the library and CLI import; deno.dev.lock also what tests, benchmarks and the build do", async () => {
  // Deno installs every package of the lockfile in use on a first run, so a user's first `deno task train`
  // would fetch the test runtimes (workerd, miniflare, playwright, ~400 MB) if deno.lock listed them
  const root = new URL("../", import.meta.url);
  const imported = async (dirs: string[]) => {
    const found = new Set<string>();
    const scan = async (path: string) => {
      const info = await Deno.stat(new URL(path, root));
      if (info.isDirectory) {
        for await (const e of Deno.readDir(new URL(path, root))) await scan(`${path}/${e.name}`);
      } else if (/\.(ts|js)$/.test(path)) {
        const text = await Deno.readTextFile(new URL(path, root));
        for (const m of text.matchAll(/["'](npm:(?:@[\w.-]+\/)?[\w.-]+@[\d][\w.-]*)/g)) found.add(m[1]);
      }
    };
    for (const d of dirs) await scan(d);
    return [...found].sort();
  };
  const locked = async (file: string) =>
    Object.keys(JSON.parse(await Deno.readTextFile(new URL(file, root))).specifiers).sort();
  const runtime = await imported(["mod.ts", "src"]);
  assert(runtime.length > 0, "no npm imports found under src/");
  assertEquals(await locked("deno.lock"), runtime, "deno.lock's packages");
  const all = await imported(["mod.ts", "src", "tests", "bench", "asm"]);
  assertEquals(await locked("deno.dev.lock"), all, "deno.dev.lock's packages");
});
