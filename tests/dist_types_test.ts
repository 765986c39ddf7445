// dist/mesp.d.ts types dist/mesp.js: a consumer written against the README's library example type-checks
// when it imports the built module (Deno follows mesp.js's @ts-self-types comment, as any URL importer
// would), and misuses of the API are type errors (each `@ts-expect-error` must meet one, else the check
// fails, so types that had decayed to `any` would be caught).
import { assert } from "./_assert.ts";

const DIST = new URL("../dist/mesp.js", import.meta.url).href;

const CONSUMER = `
import { decodeTokenCache, fetchSource, openPack, train, type TrainEvent } from "${DIST}";
import { FileNotFoundError, StalePackError } from "${DIST}";
import type { AdapterConfig, ByteSink, OpenedAdapter, TokenCache } from "${DIST}";

const pack = await openPack(fetchSource("https://example.com/qwen2.5-0.5b-q4.pack"));
const cache = decodeTokenCache(new Uint8Array(8), { name: "train-T256.tokcache" });
const sequences = Array.from({ length: cache.count }, (_, i) => cache.example(i));
const typed: [TokenCache, OpenedAdapter?, AdapterConfig?, ByteSink?] = [cache];
console.log(typed, FileNotFoundError.name, StalePackError.name);
const result = await train(pack, sequences, [], {
  seqLen: 256,
  steps: 100,
  lora: { rank: 8 },
  optimizer: { name: "adamw", lr: 2e-4 },
  onEvent: (e: TrainEvent) => e.type === "step" && console.log(e.step, e.loss),
});
const last: number | undefined = result.losses.at(-1);
console.log(last);
// @ts-expect-error: steps is a number
await train(pack, sequences, [], { seqLen: 256, steps: "100" });
// @ts-expect-error: no such optimizer
await train(pack, sequences, [], { seqLen: 256, optimizer: { name: "adam", lr: 1e-3 } });
// @ts-expect-error: openPack takes a weight source, not a URL string
await openPack("https://example.com/model.pack");
`;

Deno.test("dist/mesp.d.ts: the README's library example type-checks against the built module; misuses do not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesp-dist-types-" });
  try {
    await Deno.writeTextFile(`${dir}/consumer.ts`, CONSUMER);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-lock", "--no-config", `${dir}/consumer.ts`],
      cwd: dir,
      env: { NO_COLOR: "1" },
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert(out.success, `deno check of a dist/mesp.js consumer failed:\n${err}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Every type a public signature names can be named by its users: the types of the parameters and results
// of exported functions and of public class methods, and the members of exported interfaces and types, are
// exported too (read from dist/mesp.d.ts, where an unexported one is a local `interface` or `type`).
// A class's properties are left out: they are the engine's low-level state.
Deno.test("dist/mesp.d.ts: every type named in a public signature is exported", async () => {
  // deno-lint-ignore no-import-prefix
  const { default: ts } = await import("npm:typescript@5.9.3");
  const path = new URL("../dist/mesp.d.ts", import.meta.url);
  const sf = ts.createSourceFile("mesp.d.ts", await Deno.readTextFile(path), ts.ScriptTarget.Latest, true);
  type Node = import("npm:typescript@5.9.3").Node;
  const isExported = (st: Node) =>
    ts.canHaveModifiers(st) &&
    (ts.getModifiers(st) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  const nameOf = (st: Node): string | undefined => {
    if (ts.isVariableStatement(st)) return st.declarationList.declarations[0].name.getText(sf);
    const name = (st as { name?: Node }).name;
    return name?.getText(sf);
  };
  const local = new Set<string>();
  for (const st of sf.statements) if (!isExported(st) && nameOf(st)) local.add(nameOf(st)!);
  const missing = new Map<string, string>();
  const visit = (node: Node | undefined, from: string) => {
    if (!node) return;
    if (ts.isTypeReferenceNode(node) || ts.isTypeQueryNode(node)) {
      const name = (ts.isTypeReferenceNode(node) ? node.typeName : node.exprName).getText(sf);
      if (local.has(name) && !missing.has(name)) missing.set(name, from);
    }
    ts.forEachChild(node, (child) => visit(child, from));
  };
  for (const st of sf.statements) {
    if (!isExported(st)) continue;
    const name = nameOf(st) ?? "?";
    if (ts.isClassDeclaration(st)) {
      for (const m of st.members) {
        const isPrivate = (ts.canHaveModifiers(m) ? ts.getModifiers(m) ?? [] : []).some((x) =>
          x.kind === ts.SyntaxKind.PrivateKeyword
        );
        if (isPrivate || ts.isPropertyDeclaration(m) || ts.isGetAccessor(m)) continue;
        visit(m, `${name}.${m.name?.getText(sf) ?? "constructor"}`);
      }
    } else visit(st, name);
  }
  const list = [...missing].map(([type, from]) => `${type} (named by ${from})`);
  assert(
    list.length === 0,
    `types named in public signatures but not exported from mod.ts:\n${list.join("\n")}`,
  );
});
