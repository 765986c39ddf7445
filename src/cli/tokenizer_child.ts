/**
 * The tokenizer in a process of its own, for `generate`: loading Qwen's `tokenizer.json` costs ~100 MB, which
 * would otherwise sit in the process that holds the model. Reads one JSON request per stdin line and answers
 * with one JSON line on stdout:
 *
 *   (on start)                  → {"eos": [ids], "chatTemplate": string | null}
 *   {"op": "encode", "text": s} → {"ids": [...]}
 *   {"op": "push", "id": n}     → {"text": "…"}   (streaming decode, special tokens skipped)
 *   {"op": "flush"}             → {"text": "…"}   (ends the stream; the next push starts a new one)
 *
 *   deno run -A src/cli/tokenizer_child.ts MODEL_DIR
 *
 * @module
 */
import { createStreamDecoder, loadTokenizer } from "../text/tokenizer.ts";

async function main(dir: string): Promise<void> {
  const read = (n: string) => Deno.readTextFile(`${dir}/${n}`).catch(() => undefined);
  const tokenizerJson = await read("tokenizer.json");
  if (!tokenizerJson) throw new Error(`${dir}/tokenizer.json not found`);
  const tok = await loadTokenizer({
    tokenizerJson,
    tokenizerConfigJson: await read("tokenizer_config.json"),
    generationConfigJson: await read("generation_config.json"),
  });
  const enc = new TextEncoder();
  const send = (o: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(o) + "\n"));
  send({ eos: tok.eosTokenIds, chatTemplate: tok.chatTemplate ?? null });
  let dec = createStreamDecoder(tok, { skipSpecialTokens: true });
  let buffer = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const req = JSON.parse(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      if (req.op === "encode") send({ ids: tok.encode(req.text) });
      else if (req.op === "push") send({ text: dec.push(req.id) });
      else if (req.op === "flush") {
        send({ text: dec.flush() });
        dec = createStreamDecoder(tok, { skipSpecialTokens: true });
      } else throw new Error(`tokenizer child: unknown request ${JSON.stringify(req)}`);
    }
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args[0]);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
