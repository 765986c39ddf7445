/**
 * Evaluation from a URL: a pack served over HTTP Range from 127.0.0.1 and scored through `fetchSource`
 * (no cache), one sequence per pass over the weights next to the default batch (and any `--batches`), in
 * one process, one after another: requests, bytes over the pack's size and seconds, each with its NLL (the
 * same bits for every batch).
 *
 *   deno task make-model --preset tiny --out /tmp/tiny
 *   deno task bench:eval-remote --model /tmp/tiny --sequences 32 --seq-len 64
 *   deno task bench:eval-remote --model /tmp/m05 --sequences 16 --seq-len 256 --repeat 3
 *
 * The pack is built in memory from the model directory (`--weights`, default q4); the sequences are random
 * token ids (seeded). Seconds are the median over `--repeat` rounds, the batches taken in turn each round.
 *
 * @module
 */
import { cpuModel, median } from "./measure.ts";
import { benchArgs } from "./args.ts";
import { rangeReply } from "./range_reply.ts";
import type { CommandSpec } from "../src/cli/args.ts";
import {
  checkpointFingerprint,
  evaluate,
  fetchSource,
  openCheckpoint,
  openPack,
  parseModelConfig,
  writePack,
} from "../mod.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import type { Sequence } from "../src/data/sequence.ts";

const SPEC = {
  name: "bench:eval-remote",
  program: "deno task",
  description: "evaluation of a pack served over HTTP Range, one sequence per pass next to batches",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    sequences: { type: "integer", default: 32, min: 1, description: "sequences scored" },
    seqLen: { type: "integer", default: 64, min: 2, description: "tokens per sequence" },
    batches: {
      type: "list",
      default: ["1", "default"],
      description: "batches to compare (a number, or `default`: what evaluate chooses)",
    },
    weights: { type: "string", choices: ["q4", "f32"], default: "q4", description: "pack format" },
    repeat: { type: "integer", default: 1, min: 1, description: "rounds (seconds: the median)" },
    threads: { type: "integer", default: 1, min: 1, description: "kernel threads" },
  },
} as const satisfies CommandSpec;

const args = benchArgs(SPEC);
const files = dirFiles(args.model);
const cfg = parseModelConfig(JSON.parse(await Deno.readTextFile(`${args.model}/config.json`)));
const ckpt = await openCheckpoint(files);
const chunks: Uint8Array[] = [];
await writePack(ckpt, cfg, { write: (c) => (chunks.push(c.slice()), Promise.resolve()) }, {
  format: args.weights as "q4" | "f32",
  fingerprint: await checkpointFingerprint(files, ckpt),
});
ckpt.close();
const packBytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
chunks.reduce((at, c) => (packBytes.set(c, at), at + c.length), 0);

let s = 0x9e3779b9;
const next = () => (s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0);
const data: Sequence[] = Array.from({ length: args.sequences }, () => ({
  ids: Int32Array.from({ length: args.seqLen }, () => next() % Math.min(cfg.vocabSize, 151643)),
}));

/** Requests and bytes served under each tag (the `x-run` header). */
const counts = new Map<string, { requests: number; bytes: number }>();
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
  const headers = new Headers({ "accept-ranges": "bytes" });
  const { body, status } = rangeReply(req, packBytes, headers);
  const tag = req.headers.get("x-run") ?? "?", c = counts.get(tag) ?? { requests: 0, bytes: 0 };
  counts.set(tag, { requests: c.requests + 1, bytes: c.bytes + body.length });
  return new Response(body, { status, headers });
});
const url = `http://127.0.0.1:${server.addr.port}/model.pack`;

interface Row {
  batch: string;
  chosen: number;
  nll: number;
  seconds: number[];
}
const rows: Row[] = args.batches.map((b: string) => ({ batch: b, chosen: 0, nll: NaN, seconds: [] }));
try {
  for (let round = 1; round <= args.repeat; round++) {
    for (const row of rows) {
      const tag = `${row.batch}~${round}`;
      const tagged: typeof fetch = (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set("x-run", tag);
        return fetch(input, { ...init, headers });
      };
      const pack = await openPack(fetchSource(url, { fetch: tagged }));
      const t0 = performance.now();
      const r = await evaluate(pack, data, {
        seqLen: args.seqLen,
        threads: args.threads,
        batch: row.batch === "default" ? undefined : Number(row.batch),
      });
      row.seconds.push((performance.now() - t0) / 1e3);
      pack.source.close?.();
      if (round > 1 && r.nll !== row.nll) {
        throw new Error(`batch ${row.batch}: NLL ${r.nll}, then ${row.nll}`);
      }
      row.chosen = r.batch;
      row.nll = r.nll;
    }
  }
} finally {
  await server.shutdown();
}

console.log(
  `${cpuModel()}; ${args.sequences} sequences of ${args.seqLen} tokens; pack ${
    (packBytes.length / 1e6).toFixed(1)
  } MB (${args.weights}); ${args.threads} thread(s); seconds: median of ${args.repeat}`,
);
console.log("| batch | requests | MB | × pack | s | NLL |");
console.log("|---|---|---|---|---|---|");
for (const row of rows) {
  const c = counts.get(`${row.batch}~1`)!;
  console.log(
    `| ${row.batch === "default" ? `default (${row.chosen})` : row.chosen} | ${c.requests} | ${
      (c.bytes / 1e6).toFixed(1)
    } | ${(c.bytes / packBytes.length).toFixed(2)} | ${median(row.seconds).toFixed(2)} | ${row.nll} |`,
  );
}
const nlls = new Set(rows.map((r) => r.nll));
if (nlls.size !== 1) throw new Error(`the batches' NLLs differ: ${[...nlls].join(", ")}`);
