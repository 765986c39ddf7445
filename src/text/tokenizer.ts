/**
 * Qwen byte-level BPE tokenizer: the typed interface, a loader and a streaming decoder for generation.
 * The implementation (`build_tokenizer.ts`, over `byte_level_bpe.ts`) is imported only when a tokenizer is
 * loaded, so code that imports this module (or `mod.ts`) to train never loads it.
 *
 * Loading the Qwen `tokenizer.json` takes a process to ~130–146 MB of peak RSS (`deno task bench:tokenizer`),
 * so training never holds a tokenizer: see `src/data/token_cache.ts`.
 *
 * @module
 */
import { FileNotFoundError, type ModelFiles } from "../io/source.ts";
import { describeValue } from "../util/describe.ts";
/** The raw text of a model's tokenizer files. */
export interface TokenizerFiles {
  /** Contents of `tokenizer.json`. */
  tokenizerJson: string;
  /** Contents of `tokenizer_config.json` (optional; gives EOS, pad and chat template). */
  tokenizerConfigJson?: string;
  /** Contents of `generation_config.json` (optional; its `eos_token_id` joins {@link Tokenizer.eosTokenIds}). */
  generationConfigJson?: string;
}

/** Options for {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special added tokens (`<|im_end|>`, `<|endoftext|>`, ...) from the output. Default false. */
  skipSpecialTokens?: boolean;
}

/** A loaded tokenizer. All ids are plain numbers; no BOS is ever added (Qwen has none). */
export interface Tokenizer {
  /** Token ids of `text` (added tokens such as `<|im_start|>` are matched atomically). */
  encode(text: string): number[];
  /** Text of `ids` (invalid UTF-8 becomes U+FFFD, like HF `errors="replace"`). */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /** Raw bytes a token stands for (UTF-8 of the content for added tokens). */
  tokenBytes(id: number): Uint8Array;
  /** True for added tokens flagged `special` (the ones `skipSpecialTokens` drops). */
  isSpecialToken(id: number): boolean;
  /** True for any added token (`<|im_end|>`, `<tool_call>`, ...): matched whole, never byte-level. */
  isAddedToken(id: number): boolean;
  /** Token string of an id (byte-level form, e.g. `Ġworld`), or undefined. */
  idToToken(id: number): string | undefined;
  /** Id of a token string (byte-level form or added-token content), or undefined. */
  tokenToId(token: string): number | undefined;
  /** Ids that end generation: the config's `eos_token` first, then `<|im_end|>` and `<|endoftext|>`. */
  readonly eosTokenIds: readonly number[];
  /** Id of the config's `pad_token`, if any. */
  readonly padTokenId?: number;
  /** The config's `chat_template` (Jinja source), if any. */
  readonly chatTemplate?: string;
  /** Tokenizer length: highest id + 1 over vocab and added tokens (151,665 for Qwen2.5). */
  readonly vocabSize: number;
}

/**
 * Load a tokenizer from the text of `tokenizer.json` (and optionally `tokenizer_config.json` and
 * `generation_config.json`), or from model files (`urlFiles`, `r2Files`, `memoryFiles`, ...), whose
 * `tokenizer.json` must exist and whose other two files are read when present.
 *
 * Only byte-level BPE tokenizers (Qwen2/2.5/3) are accepted: mesp's streaming decoder and byte
 * handling rely on the byte-level decoder.
 *
 * @example
 * ```ts ignore
 * const tok = await loadTokenizer(urlFiles("https://example.com/Qwen2.5-0.5B/"));
 * tok.encode("Hello world"); // [9707, 1879]
 * ```
 */
export async function loadTokenizer(
  files: TokenizerFiles | ModelFiles,
  options: LoadTokenizerOptions = {},
): Promise<Tokenizer> {
  if (files && typeof (files as ModelFiles).readText === "function") {
    files = await readTokenizerFiles(files as ModelFiles);
  }
  if (typeof (files as TokenizerFiles)?.tokenizerJson !== "string") {
    throw new TypeError(
      `loadTokenizer: expected model files or { tokenizerJson, tokenizerConfigJson? } as strings, got ${
        describeValue(files)
      }`,
    );
  }
  return await buildFromModule(files as TokenizerFiles, options);
}

/** The tokenizer texts of a model directory; `tokenizer.json` is required, the configs are optional. */
async function readTokenizerFiles(files: ModelFiles): Promise<TokenizerFiles> {
  const [tokenizerJson, tokenizerConfigJson, generationConfigJson] = await Promise.all(
    ["tokenizer.json", "tokenizer_config.json", "generation_config.json"].map((f) => files.readText(f)),
  );
  if (tokenizerJson === undefined) {
    throw new FileNotFoundError(`${files.name.replace(/\/+$/, "")}/tokenizer.json (loadTokenizer needs it)`);
  }
  return { tokenizerJson, tokenizerConfigJson, generationConfigJson };
}

function buildFromModule(files: TokenizerFiles, options: LoadTokenizerOptions): Promise<Tokenizer> {
  if (options.module !== undefined) {
    if (typeof options.module?.buildTokenizer !== "function") {
      return Promise.reject(
        new TypeError(
          "loadTokenizer options.module: expected the tokenizer module (import * as tokenizer from " +
            '"./tokenizer.js", beside mesp.js), which exports buildTokenizer',
        ),
      );
    }
    return Promise.resolve().then(() => options.module!.buildTokenizer(files));
  }
  let url: string;
  try {
    url = tokenizerModule();
  } catch {
    return Promise.reject(
      new Error(
        "loadTokenizer: this runtime gives modules no URL (workerd), so the tokenizer's module cannot be " +
          'found: import it with your worker (import * as tokenizer from "./tokenizer.js", the file beside ' +
          "mesp.js, as an ES module) and pass loadTokenizer(files, { module: tokenizer })",
      ),
    );
  }
  return (import(url) as Promise<TokenizerModule>).then(
    (m) => m.buildTokenizer(files),
    (err) => {
      throw new Error(
        `loadTokenizer: cannot load the tokenizer's module ${url} (${(err as Error)?.message ?? err}): it ` +
          "must sit beside mesp.js, or pass loadTokenizer(files, { module }) with it imported yourself",
        { cause: err },
      );
    },
  );
}

/** Options for {@linkcode loadTokenizer}. */
export interface LoadTokenizerOptions {
  /**
   * The tokenizer's module itself (`dist/tokenizer.js`, imported by the caller), for runtimes that give
   * modules no URL to find it from (workerd). Default: imported from beside this module when first needed.
   */
  module?: TokenizerModule;
}

/** What the tokenizer's module (`hf_tokenizer.ts`, built as `dist/tokenizer.js`) exports. */
export interface TokenizerModule {
  buildTokenizer(files: TokenizerFiles): Tokenizer;
}

/**
 * The implementation's URL, computed rather than a literal so that Deno does not fetch it (and its npm
 * package) with the module graph of every program that imports mesp only to train. Throws where modules
 * have no URL.
 */
function tokenizerModule(): string {
  return new URL("./build_tokenizer.ts", import.meta.url).href;
}

/** Options for {@link createStreamDecoder}. */
export interface StreamDecoderOptions {
  /** Drop special added tokens from the output. Default false (same as {@link Tokenizer.decode}). */
  skipSpecialTokens?: boolean;
}

/** Incremental detokenizer for generation; see {@link createStreamDecoder}. */
export interface StreamDecoder {
  /** Feed one generated id; returns only the text completed by it (may be ""). */
  push(id: number): string;
  /** End of stream: returns what is left (U+FFFD for a dangling partial UTF-8 sequence). */
  flush(): string;
}

/**
 * Create a streaming decoder: pushing ids one at a time yields text that, concatenated (plus
 * `flush()`), equals `tokenizer.decode(allIds)`. A character whose UTF-8 bytes are split across
 * byte-level tokens (common for CJK and emoji) is held back until its last byte arrives, so no
 * U+FFFD is printed mid-stream.
 */
export function createStreamDecoder(tokenizer: Tokenizer, options: StreamDecoderOptions = {}): StreamDecoder {
  const skip = options.skipSpecialTokens === true;
  // ignoreBOM: the byte-level decoder keeps a U+FEFF (as Hugging Face's does)
  const bytes = new TextDecoder("utf-8", { ignoreBOM: true });
  let pendingBytes = false;
  // A non-streaming decode() call emits U+FFFD for held-back bytes and resets the decoder.
  const flushBytes = (): string => {
    if (!pendingBytes) return "";
    pendingBytes = false;
    return bytes.decode();
  };
  return {
    push(id) {
      if (tokenizer.isAddedToken(id)) {
        // Added tokens are decoded on their own (HF decode_chain), so they end any partial character.
        const before = flushBytes();
        return skip && tokenizer.isSpecialToken(id) ? before : before + tokenizer.decode([id]);
      }
      pendingBytes = true;
      return bytes.decode(tokenizer.tokenBytes(id), { stream: true });
    },
    flush: flushBytes,
  };
}
