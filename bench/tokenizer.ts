/**
 * mesp's byte-level BPE against `@huggingface/tokenizers` (what mesp used before), each loaded in a process
 * of its own from the real Qwen `tokenizer.json`: the process's peak RSS (VmHWM) once loaded, the load time,
 * and the time to encode a text file line by line (median of `--rounds`), with a check that both give the
 * same ids.
 *
 *   deno task bench:tokenizer --data data/lumen/train.jsonl --rounds 5
 *
 * @module
 */
// deno-lint-ignore no-import-prefix
import { Tokenizer as Reference } from "npm:@huggingface/tokenizers@0.2.0";
import { buildTokenizer } from "../src/text/build_tokenizer.ts";
import { qwenTokenizerFiles } from "../src/text/qwen_tokenizer_files.ts";
import { cpuModel, median } from "./measure.ts";

const which = Deno.env.get("MESP_BENCH_TOKENIZER");
const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const data = flag("data", "data/lumen/train.jsonl");
const rounds = +flag("rounds", "5");
const kB = (field: string) =>
  +new RegExp(`${field}:\\s+(\\d+)`).exec(Deno.readTextFileSync("/proc/self/status"))![1];

if (which) {
  // one side, in this process: load, then encode
  const files = await qwenTokenizerFiles();
  const t0 = performance.now();
  const encode = which === "mesp"
    ? ((tok) => (text: string) => tok.encode(text))(buildTokenizer(files))
    : ((tok) => (text: string) => tok.encode(text, { add_special_tokens: false }).ids)(
      new Reference(JSON.parse(files.tokenizerJson), JSON.parse(files.tokenizerConfigJson)),
    );
  const loadMs = performance.now() - t0;
  const peakKb = kB("VmHWM");
  const lines = Deno.readTextFileSync(data).split("\n").filter((l) => l);
  const times: number[] = [];
  let ids: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    ids = lines.flatMap(encode);
    times.push(performance.now() - t);
  }
  console.log(
    JSON.stringify({
      loadMs,
      peakKb,
      encodeMs: median(times),
      tokens: ids.length,
      sum: ids.reduce((a, b) => a + b, 0),
    }),
  );
} else {
  const run = async (side: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--lock=deno.dev.lock", "-A", new URL(import.meta.url).pathname, ...Deno.args],
      env: { MESP_BENCH_TOKENIZER: side },
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error(`${side} failed`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  };
  console.log(`${cpuModel()}; ${data}, ${rounds} encode rounds (median)`);
  const results: Record<
    string,
    { loadMs: number; peakKb: number; encodeMs: number; tokens: number; sum: number }
  > = {};
  for (const side of ["huggingface", "mesp"]) {
    const r = results[side] = await run(side);
    console.log(
      `${side.padEnd(11)} peak ${(r.peakKb / 1024).toFixed(1)} MB once loaded; load ${
        r.loadMs.toFixed(0)
      } ms; ` +
        `encode ${r.encodeMs.toFixed(0)} ms (${r.tokens} tokens)`,
    );
  }
  const [h, m] = [results.huggingface, results.mesp];
  if (h.tokens !== m.tokens || h.sum !== m.sum) throw new Error("the two tokenizers gave different ids");
  console.log(
    `same ids; mesp: ${(h.peakKb / m.peakKb).toFixed(2)}x less peak, ${
      (h.encodeMs / m.encodeMs).toFixed(1)
    }x faster encode`,
  );
}
