/**
 * Qwen2/Qwen2.5 ChatML rendering, written out by hand so no Jinja engine is needed.
 *
 * {@link renderChat} reproduces the Qwen2.5-Instruct `chat_template` (docs/formats.md) byte for byte
 * for conversations without tools. Tool use (`tools`, `tool_calls`, role `tool`) is rejected with
 * an error rather than rendered: mesp trains on plain chat, and a half-supported tool format would
 * silently teach the wrong markup.
 *
 * @module
 */

/** Roles {@link renderChat} accepts. */
export type ChatRole = "system" | "user" | "assistant";

/** One chat turn. */
export interface ChatMessage {
  /** Who speaks. */
  role: ChatRole;
  /** What is said (plain text; may contain anything, including ChatML markers). */
  content: string;
}

/** Default system prompt of the Qwen2.5-*-Instruct chat template. */
export const QWEN2_5_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/** Default system prompt of Qwen2 / Qwen2.5 base-model templates. */
export const QWEN2_DEFAULT_SYSTEM = "You are a helpful assistant.";

/** Options for {@link renderChat}. */
export interface RenderChatOptions {
  /** Append `<|im_start|>assistant\n` so the model writes the next assistant turn. Default false. */
  addGenerationPrompt?: boolean;
  /**
   * System prompt inserted when the first message is not a system message. Default
   * {@link QWEN2_5_DEFAULT_SYSTEM}; `null` inserts none (Qwen3 style).
   */
  defaultSystem?: string | null;
}

/** The chat-rendering facts taken from a model's chat template; see {@link chatDefaultsFromTemplate}. */
export interface ChatDefaults {
  /** System prompt inserted when a conversation has none (`null`: none). */
  defaultSystem: string | null;
}

const ROLES: readonly string[] = ["system", "user", "assistant"];

/** Throws a clear error for a message {@link renderChat} cannot render. `where` prefixes messages. */
export function validateChatMessage(message: unknown, where: string): asserts message is ChatMessage {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new Error(`${where}: a message must be an object with "role" and "content"`);
  }
  const m = message as Record<string, unknown>;
  if (m.role === "tool" || m.tool_calls !== undefined) {
    throw new Error(`${where}: tool messages and "tool_calls" are not supported (plain chat only)`);
  }
  if (typeof m.role !== "string" || !ROLES.includes(m.role)) {
    throw new Error(`${where}: role must be one of ${ROLES.join(", ")}; got ${JSON.stringify(m.role)}`);
  }
  if (typeof m.content !== "string") {
    throw new Error(
      `${where}: "content" must be a string; got ${m.content === null ? "null" : typeof m.content}`,
    );
  }
}

/**
 * Render messages as Qwen2.5 ChatML, exactly as the Qwen2.5-Instruct Jinja template does without
 * tools: a system block first (the first message if it is a system message, else the default
 * system prompt unless `defaultSystem` is null), then `<|im_start|>{role}\n{content}<|im_end|>\n`
 * per remaining message, then `<|im_start|>assistant\n` if `addGenerationPrompt`.
 *
 * @example
 * ```ts
 * renderChat([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * // "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
 * // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
 * ```
 */
export function renderChat(messages: readonly ChatMessage[], options: RenderChatOptions = {}): string {
  messages.forEach((m, i) => validateChatMessage(m, `messages[${i}]`));
  const defaultSystem = options.defaultSystem === undefined ? QWEN2_5_DEFAULT_SYSTEM : options.defaultSystem;
  let out = "";
  let start = 0;
  if (messages.length > 0 && messages[0].role === "system") {
    out += `<|im_start|>system\n${messages[0].content}<|im_end|>\n`;
    start = 1;
  } else if (defaultSystem !== null) {
    out += `<|im_start|>system\n${defaultSystem}<|im_end|>\n`;
  }
  for (let i = start; i < messages.length; i++) {
    out += `<|im_start|>${messages[i].role}\n${messages[i].content}<|im_end|>\n`;
  }
  if (options.addGenerationPrompt) out += "<|im_start|>assistant\n";
  return out;
}

const JINJA_ESCAPES: Record<string, string> = { n: "\n", t: "\t", r: "\r", "'": "'", '"': '"', "\\": "\\" };

/**
 * Detect the chat defaults of a model from its `chat_template` (from `tokenizer_config.json`):
 * the literal system block the template inserts when the conversation has no system message.
 * Qwen2.5-Instruct gives {@link QWEN2_5_DEFAULT_SYSTEM}, Qwen2 / base templates
 * {@link QWEN2_DEFAULT_SYSTEM}, Qwen3 (no literal system block) `null`. Without a template
 * (`undefined` or empty) the Qwen2.5-Instruct default is assumed, matching {@link renderChat}.
 * Throws for a template that is not ChatML, since {@link renderChat} would not match it.
 */
export function chatDefaultsFromTemplate(chatTemplate?: string): ChatDefaults {
  if (chatTemplate === undefined || chatTemplate === "") return { defaultSystem: QWEN2_5_DEFAULT_SYSTEM };
  if (!chatTemplate.includes("<|im_start|>")) {
    throw new Error("chat_template is not ChatML (no <|im_start|>); mesp renders only Qwen ChatML chats");
  }
  // A Jinja string literal holding a whole system block: '<|im_start|>system\n...<|im_end|>\n'.
  const literal = /(['"])<\|im_start\|>system\\n((?:\\.|(?!\1)[^\\])*?)<\|im_end\|>\\n\1/.exec(chatTemplate);
  if (!literal) return { defaultSystem: null };
  const defaultSystem = literal[2].replace(/\\(.)/g, (m, c: string) => JINJA_ESCAPES[c] ?? m);
  return { defaultSystem };
}
