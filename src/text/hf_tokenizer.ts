/**
 * The tokenizer behind `loadTokenizer` (`tokenizer.ts`, which imports this module lazily): a thin
 * wrapper over `@huggingface/tokenizers` plus the facts mesp needs from `tokenizer_config.json` (EOS/pad ids,
 * chat template).
 *
 * @module
 */
// deno-lint-ignore no-import-prefix
import { Tokenizer as HfTokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import type { Tokenizer, TokenizerFiles } from "./tokenizer.ts";

/** GPT-2 `bytes_to_unicode`, reversed: code point of a byte-level char → the byte it stands for. */
function unicodeToBytes(): Map<number, number> {
  const map = new Map<number, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(printable ? b : 256 + extra++, b);
  }
  return map;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

function parseJson(text: string, name: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${name}: invalid JSON: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${name}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** `eos_token` etc. may be a string or an AddedToken-like object `{content}`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

function pickChatTemplate(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  // Newer configs may hold a list of named templates; "default" is what apply_chat_template uses.
  if (Array.isArray(value)) {
    const named = value.find((t) =>
      t && typeof t === "object" && (t as { name?: unknown }).name === "default"
    );
    const template = (named as { template?: unknown } | undefined)?.template;
    return typeof template === "string" ? template : undefined;
  }
  return undefined;
}

/** Builds a tokenizer from its files' text (see `loadTokenizer` in `tokenizer.ts`). */
export function buildTokenizer(files: TokenizerFiles): Tokenizer {
  const json = parseJson(files.tokenizerJson, "tokenizer.json");
  const model = json.model as { type?: unknown; vocab?: unknown } | undefined;
  if (!model || typeof model !== "object") throw new Error("tokenizer.json: missing field 'model'");
  if (model.type !== "BPE") {
    throw new Error(`tokenizer.json: model.type is ${JSON.stringify(model.type)}, expected "BPE"`);
  }
  if (!model.vocab || typeof model.vocab !== "object" || Array.isArray(model.vocab)) {
    throw new Error("tokenizer.json: model.vocab must be an object of token → id");
  }
  const decoder = json.decoder as { type?: unknown } | null | undefined;
  if (!decoder || decoder.type !== "ByteLevel") {
    throw new Error(`tokenizer.json: decoder.type is ${JSON.stringify(decoder?.type)}, expected "ByteLevel"`);
  }
  const addedRaw = json.added_tokens ?? [];
  if (!Array.isArray(addedRaw)) throw new Error("tokenizer.json: added_tokens must be an array");
  const added: AddedTokenJson[] = addedRaw.map((t, i) => {
    if (!t || typeof t !== "object" || !Number.isInteger(t.id) || typeof t.content !== "string") {
      throw new Error(`tokenizer.json: added_tokens[${i}] needs an integer 'id' and a string 'content'`);
    }
    return t as AddedTokenJson;
  });

  let vocabSize = 0;
  for (const id of Object.values(model.vocab as Record<string, unknown>)) {
    if (typeof id === "number" && id + 1 > vocabSize) vocabSize = id + 1;
  }
  for (const t of added) if (t.id + 1 > vocabSize) vocabSize = t.id + 1;

  const config = files.tokenizerConfigJson === undefined
    ? {}
    : parseJson(files.tokenizerConfigJson, "tokenizer_config.json");
  // The library defaults clean_up_tokenization_spaces to true, which would corrupt " ." etc.;
  // Qwen sets it false and byte-level BPE never wants it.
  const libConfig = { ...config, clean_up_tokenization_spaces: config.clean_up_tokenization_spaces === true };
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(json, libConfig);
  } catch (e) {
    throw new Error(`tokenizer.json: cannot build tokenizer: ${(e as Error).message}`);
  }

  const addedById = new Map<number, AddedTokenJson>(added.map((t) => [t.id, t]));
  const special = new Set<number>(added.filter((t) => t.special).map((t) => t.id));
  for (const s of (config.additional_special_tokens ?? []) as unknown[]) {
    const content = tokenContent(s);
    const id = content === undefined ? undefined : hf.token_to_id(content);
    if (id !== undefined) special.add(id);
  }
  const idOf = (value: unknown, field: string): number | undefined => {
    const content = tokenContent(value);
    if (content === undefined) return undefined;
    const id = hf.token_to_id(content);
    if (id === undefined) {
      throw new Error(`tokenizer_config.json: ${field} ${JSON.stringify(content)} is not in tokenizer.json`);
    }
    return id;
  };

  const eos: number[] = [];
  const addEos = (id: number | undefined) => {
    if (id !== undefined && !eos.includes(id)) eos.push(id);
  };
  addEos(idOf(config.eos_token, "eos_token"));
  if (files.generationConfigJson !== undefined) {
    const gen = parseJson(files.generationConfigJson, "generation_config.json");
    const ids = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : [gen.eos_token_id];
    for (const id of ids) if (Number.isInteger(id) && id >= 0 && id < vocabSize) addEos(id);
  }
  // Chat fine-tunes of base models end turns with <|im_end|>; base text ends with <|endoftext|>.
  addEos(hf.token_to_id("<|im_end|>"));
  addEos(hf.token_to_id("<|endoftext|>"));
  const padTokenId = idOf(config.pad_token, "pad_token");
  const chatTemplate = pickChatTemplate(config.chat_template);

  const byteOf = unicodeToBytes();
  const utf8 = new TextEncoder();
  const tokenBytes = (id: number): Uint8Array => {
    const a = addedById.get(id);
    if (a) return utf8.encode(a.content);
    const token = hf.id_to_token(id);
    if (token === undefined) throw new Error(`token id ${id} is not in the vocabulary (size ${vocabSize})`);
    const out: number[] = [];
    for (const ch of token) {
      const b = byteOf.get(ch.codePointAt(0)!);
      if (b !== undefined) out.push(b);
      else out.push(...utf8.encode(ch)); // not a byte-level char (malformed vocab): keep its text
    }
    return Uint8Array.from(out);
  };

  return {
    encode: (text) => hf.encode(text, { add_special_tokens: false }).ids,
    decode: (ids, options) => {
      const list = Array.from(ids);
      if (list.length === 0) return ""; // the library throws on an empty list
      for (const id of list) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new Error(`decode: token id ${id} is out of range 0..${vocabSize - 1}`);
        }
      }
      return hf.decode(list, { skip_special_tokens: options?.skipSpecialTokens === true });
    },
    tokenBytes,
    isSpecialToken: (id) => special.has(id),
    isAddedToken: (id) => addedById.has(id),
    idToToken: (id) => hf.id_to_token(id),
    tokenToId: (token) => hf.token_to_id(token),
    eosTokenIds: eos,
    padTokenId,
    chatTemplate,
    vocabSize,
  };
}
