// The public API: importable, complete, and free of Deno-only modules (so it runs in browsers and edge
// runtimes).
import { assert } from "./_assert.ts";
import * as mesp from "../mod.ts";

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
      "loadTokenizer",
      "renderChat",
      "parseJsonl",
      "makeModel",
      "lossCurveSvg",
    ]
  ) {
    assert(typeof (mesp as Record<string, unknown>)[name] === "function", `mod.ts should export ${name}`);
  }
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
