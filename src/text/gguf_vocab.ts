/**
 * A Hugging Face byte-level BPE tokenizer (`tokenizer.json` + `tokenizer_config.json`) as the `tokenizer.*`
 * metadata of a GGUF model, the way llama.cpp's `convert_hf_to_gguf.py` writes it for Qwen2:
 * `tokenizer.ggml.model = "gpt2"`, `pre = "qwen2"`, one token per id up to the model's vocabulary size
 * (ids the tokenizer does not use become `[PAD{id}]`, type UNUSED), the merges as `"a b"` strings, and the
 * special-token ids and chat template from the configs.
 *
 * @module
 */
import type { GgufValue } from "../model/gguf.ts";

/** llama.cpp's `llama_token_type` (gguf `TokenType`). */
export const GGUF_TOKEN_TYPE = Object.freeze({ NORMAL: 1, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5 });

/** Special-token ids from `config.json` / `generation_config.json`, used where the tokenizer names none. */
export interface SpecialIds {
  bos?: number;
  eos?: number;
  pad?: number;
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

/** `<|…|>` and `<…>`-style added tokens count as control tokens, as in the converter. */
function looksSpecial(token: string): boolean {
  return /^<\|.*\|>$/.test(token) || /^<\uff5c.*\uff5c>$/.test(token);
}

function tokenName(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

/**
 * The `tokenizer.*` metadata for a model with `vocabSize` embedding rows. Throws, naming the file, for a
 * tokenizer that is not byte-level BPE or that has more tokens than the model has rows.
 */
export function ggufVocabMetadata(
  tokenizerJson: string,
  tokenizerConfigJson: string | undefined,
  vocabSize: number,
  ids: SpecialIds = {},
  file = "tokenizer.json",
): Record<string, GgufValue> {
  let tok;
  try {
    tok = JSON.parse(tokenizerJson);
  } catch (err) {
    throw new Error(`${file}: invalid JSON (${(err as Error).message})`);
  }
  const model = tok?.model;
  if (model?.type !== "BPE" || typeof model.vocab !== "object" || !Array.isArray(model.merges)) {
    throw new Error(
      `${file}: not a BPE tokenizer (model.type ${JSON.stringify(model?.type)}); GGUF export needs one`,
    );
  }
  const tokens = new Array<string | undefined>(vocabSize);
  const types = new Int32Array(vocabSize);
  const put = (id: number, content: string, type: number) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(
        `${file}: token ${JSON.stringify(content)} has id ${id}, the model has ${vocabSize} rows`,
      );
    }
    tokens[id] = content;
    types[id] = type;
  };
  for (const [content, id] of Object.entries(model.vocab as Record<string, number>)) {
    put(id, content, GGUF_TOKEN_TYPE.NORMAL);
  }
  const added: AddedToken[] = Array.isArray(tok.added_tokens) ? tok.added_tokens : [];
  for (const t of added) {
    const control = t.special || looksSpecial(t.content);
    put(t.id, t.content, control ? GGUF_TOKEN_TYPE.CONTROL : GGUF_TOKEN_TYPE.USER_DEFINED);
  }
  for (let id = 0; id < vocabSize; id++) {
    if (tokens[id] === undefined) put(id, `[PAD${id}]`, GGUF_TOKEN_TYPE.UNUSED);
  }
  const merges = (model.merges as (string | [string, string])[]).map((m, i) => {
    if (typeof m === "string") return m;
    if (Array.isArray(m) && m.length === 2) return `${m[0]} ${m[1]}`;
    throw new Error(`${file}: model.merges[${i}] is neither "a b" nor ["a", "b"]`);
  });

  let config: Record<string, unknown> = {};
  if (tokenizerConfigJson !== undefined) {
    try {
      config = JSON.parse(tokenizerConfigJson);
    } catch (err) {
      throw new Error(`tokenizer_config.json: invalid JSON (${(err as Error).message})`);
    }
  }
  const byContent = new Map(added.map((t) => [t.content, t.id]));
  const idOf = (key: string) => {
    const name = tokenName(config[key]);
    if (name === undefined) return undefined;
    return byContent.get(name) ?? (model.vocab as Record<string, number>)[name];
  };
  const out: Record<string, GgufValue> = {
    "tokenizer.ggml.model": { type: "string", value: "gpt2" },
    "tokenizer.ggml.pre": { type: "string", value: "qwen2" },
    "tokenizer.ggml.tokens": { type: "string[]", value: tokens as string[] },
    "tokenizer.ggml.token_type": { type: "i32[]", value: types },
    "tokenizer.ggml.merges": { type: "string[]", value: merges },
  };
  const special: [string, number | undefined][] = [
    ["bos_token_id", idOf("bos_token") ?? ids.bos],
    ["eos_token_id", idOf("eos_token") ?? ids.eos],
    ["padding_token_id", idOf("pad_token") ?? ids.pad],
  ];
  for (const [key, id] of special) {
    if (id !== undefined) out[`tokenizer.ggml.${key}`] = { type: "u32", value: id };
  }
  out["tokenizer.ggml.add_bos_token"] = { type: "bool", value: config.add_bos_token === true };
  if (typeof config.chat_template === "string") {
    out["tokenizer.chat_template"] = { type: "string", value: config.chat_template };
  }
  return out;
}
