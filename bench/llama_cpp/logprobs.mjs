// Runs llama.cpp (node-llama-cpp's prebuilt CPU build) on a GGUF model, optionally with a GGUF LoRA adapter,
// and writes the full next-token log-probabilities it computes, for bench/llama_cpp.ts to compare with mesp.
//
//   node logprobs.mjs JOB.json
//
// JOB: { "llamaCpp": dir holding node_modules/node-llama-cpp, "model": GGUF, "lora": GGUF or null, "nVocab",
//        "prompt": token ids, "forced": token ids fed one by one after the prompt,
//        "text": a string to tokenize (checked against mesp's ids), "out": file for the log-probs }
// Writes (forced.length + 1) rows of n_vocab little-endian f32 log-probabilities to `out`, and prints
// { argmax: [...], tokens: llama.cpp's ids for `text` } as JSON.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { getLlama } = await import(
  pathToFileURL(`${job.llamaCpp}/node_modules/node-llama-cpp/dist/index.js`).href
);
// build "never": the prebuilt binary or nothing (no compiling, no download)
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: job.model });
const context = await model.createContext({
  contextSize: Math.max(64, job.prompt.length + job.forced.length + 8),
  batchSize: Math.max(64, job.prompt.length),
  threads: 1,
  // f32 keys and values (GGML_TYPE_F32 = 0; llama.cpp's default cache is f16)
  experimentalKvCacheKeyType: 0,
  experimentalKvCacheValueType: 0,
  lora: job.lora ? { adapters: [{ filePath: job.lora, scale: 1 }] } : undefined,
});
const nVocab = job.nVocab;
const rows = job.forced.length + 1;
const out = new Float32Array(rows * nVocab).fill(-Infinity);
const argmax = [];
const sequence = context.getSequence();
// greedy: the probabilities are the softmax of the raw logits over the whole vocabulary
const steps = sequence.evaluateWithMetadata(job.prompt, { probabilities: true }, { temperature: 0 });
let next = await steps.next();
for (let row = 0; row < rows; row++) {
  if (next.done) throw new Error(`llama.cpp stopped after ${row} rows`);
  const { token, probabilities } = next.value;
  if (probabilities.size !== nVocab) {
    throw new Error(`llama.cpp gave ${probabilities.size} probabilities, the vocabulary has ${nVocab}`);
  }
  argmax.push(token);
  for (const [id, p] of probabilities) out[row * nVocab + id] = Math.log(p);
  if (row + 1 < rows) next = await steps.next(job.forced[row]);
}
await steps.return();
writeFileSync(job.out, new Uint8Array(out.buffer));
const tokens = job.text === undefined ? [] : [...model.tokenize(job.text, true)];
console.log(JSON.stringify({ argmax, tokens }));
await context.dispose();
await model.dispose();
await llama.dispose();
