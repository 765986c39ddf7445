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
