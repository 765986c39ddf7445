// A short-lived worker for the text side: tokenizing a dataset into token cache bytes, and generating from
// a prompt. The page closes it when the job is done, so the tokenizer's memory (~180 MB) goes with it and
// never sits beside a training run.
import {
  buildTokenCache,
  bytesSource,
  chatDefaultsFromTemplate,
  createStreamDecoder,
  generate,
  loadTokenizer,
  openPack,
  parseAdapterConfig,
  readSafetensorsHeader,
  renderChat,
} from "../dist/mesp.js";
import * as opfs from "./opfs.js";

const ops = {
  /** Token cache bytes of a JSONL dataset; errors name the line (`train.jsonl:7: ...`). */
  async tokenize(_post, { key, datasetBytes, datasetFile, options }) {
    const dir = ["models", key];
    const tokenizerJson = await opfs.readBytes(dir, "tokenizer.json");
    if (!tokenizerJson) throw new Error("this model's tokenizer.json is missing from browser storage");
    const bytes = await buildTokenCache({
      datasetBytes: new Uint8Array(datasetBytes),
      datasetFile,
      tokenizerJsonBytes: tokenizerJson,
      tokenizerConfigBytes: await opfs.readBytes(dir, "tokenizer_config.json"),
      options,
      seqLenName: "Sequence length", // the page's field
    });
    return bytes.buffer;
  },

  /** Loads tokenizer files as tokenizing and generating will, so the compute worker refuses broken ones. */
  async checkTokenizer(_post, { tokenizerJson, tokenizerConfigJson, generationConfigJson }) {
    await loadTokenizer({ tokenizerJson, tokenizerConfigJson, generationConfigJson });
    return {};
  },

  /** Streams a completion of `prompt` (a user turn) as {piece} events; with `adapter`, through it. */
  async generate(post, { key, prompt, adapter, maxTokens, threads, streamWeights }) {
    const dir = ["models", key];
    const tokenizerJson = await opfs.readText(dir, "tokenizer.json");
    if (!tokenizerJson) throw new Error("this model's tokenizer.json is missing from browser storage");
    const tok = await loadTokenizer({
      tokenizerJson,
      tokenizerConfigJson: await opfs.readText(dir, "tokenizer_config.json"),
      generationConfigJson: await opfs.readText(dir, "generation_config.json"),
    });
    const meta = JSON.parse(await opfs.readText(dir, "meta.json"));
    const pack = await openPack(await opfs.syncSource(dir, "weights.pack", meta.name), {
      fingerprint: meta.fingerprint,
    });
    let opened;
    if (adapter) {
      opened = {
        config: parseAdapterConfig(adapter.config, "adapter_config.json"),
        weights: await readSafetensorsHeader(
          bytesSource(new Uint8Array(adapter.weights), "adapter_model.safetensors"),
        ),
        name: "adapter",
      };
    }
    const text = tok.chatTemplate === undefined ? prompt : renderChat([{ role: "user", content: prompt }], {
      addGenerationPrompt: true,
      defaultSystem: chatDefaultsFromTemplate(tok.chatTemplate).defaultSystem,
    });
    try {
      return await complete(post, tok, pack, tok.encode(text), opened, { maxTokens, threads, streamWeights });
    } finally {
      pack.source.close(); // the file's lock, for the compute worker
    }
  },
};

/** Streams the completion of `ids` as {piece} events. */
async function complete(post, tok, pack, ids, adapter, { maxTokens, threads, streamWeights }) {
  const eos = new Set([...tok.eosTokenIds, ...pack.config.eosTokenIds]);
  const dec = createStreamDecoder(tok, { skipSpecialTokens: true });
  const started = performance.now();
  let n = 0;
  for await (
    const id of generate(pack, ids, {
      maxTokens,
      temperature: 0,
      eosTokenIds: [...eos],
      adapter,
      streamWeights,
      threads,
    })
  ) {
    if (eos.has(id)) break;
    n++;
    post({ kind: "event", data: { piece: dec.push(id) } });
  }
  post({ kind: "event", data: { piece: dec.flush() } });
  return { tokens: n, seconds: (performance.now() - started) / 1000 };
}

self.onmessage = async (e) => {
  const { op, ...args } = e.data;
  const post = (m) => self.postMessage(m);
  try {
    const value = await ops[op](post, args);
    self.postMessage({ kind: "done", value }, value instanceof ArrayBuffer ? [value] : []);
  } catch (err) {
    self.postMessage({ kind: "error", message: err?.message || String(err) });
  }
};
