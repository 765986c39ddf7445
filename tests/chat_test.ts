import assert from "node:assert/strict";
// Test-only reference engine, pinned inline so it is not a dependency of the library.
// deno-lint-ignore no-import-prefix
import { Template } from "npm:@huggingface/jinja@0.5.11";
import {
  chatDefaultsFromTemplate,
  type ChatMessage,
  QWEN2_5_DEFAULT_SYSTEM,
  QWEN2_DEFAULT_SYSTEM,
  renderChat,
} from "../src/text/chat.ts";
import { loadTokenizer } from "../src/text/tokenizer.ts";
import { qwenTokenizerFiles } from "../src/text/qwen_tokenizer_files.ts";

// Rendered text and ids from a public LLaMA-Factory training log of Qwen2.5-1.5B.
const CREPES_TEXT =
  "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
  "<|im_start|>user\nDescribe a process of making crepes.<|im_end|>\n<|im_start|>assistant\n";
const CREPES_IDS = [
  151644,
  8948,
  198,
  2610,
  525,
  1207,
  16948,
  11,
  3465,
  553,
  54364,
  14817,
  13,
  1446,
  525,
  264,
  10950,
  17847,
  13,
  151645,
  198,
  151644,
  872,
  198,
  74785,
  264,
  1882,
  315,
  3259,
  1884,
  20352,
  13,
  151645,
  198,
  151644,
  77091,
  198,
];

// The real Qwen2.5-Instruct chat_template, committed in the Qwen2.5 tokenizer config.
const QWEN2_5_TEMPLATE: string = JSON.parse(
  await Deno.readTextFile(new URL("../src/text/qwen2_5_tokenizer_config.json", import.meta.url)),
).chat_template;

// Published Qwen2-7B-Instruct chat_template (base-style default system prompt).
const QWEN2_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
  "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + " +
  "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}" +
  "{{ '<|im_start|>assistant\\n' }}{% endif %}";

Deno.test("chat: crepes example is byte-identical, and tokenizes to the published ids", async () => {
  const text = renderChat([{ role: "user", content: "Describe a process of making crepes." }], {
    addGenerationPrompt: true,
  });
  assert.equal(text, CREPES_TEXT);
  const tok = await loadTokenizer(await qwenTokenizerFiles());
  assert.deepEqual(tok.encode(text), CREPES_IDS);
});

Deno.test("chat: explicit system, multi-turn, no generation prompt", () => {
  const messages: ChatMessage[] = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello!" },
    { role: "user", content: "Bye" },
    { role: "assistant", content: "Goodbye." },
  ];
  assert.equal(
    renderChat(messages),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n" +
      "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nGoodbye.<|im_end|>\n",
  );
});

Deno.test("chat: default system variants and generation prompt", () => {
  const m: ChatMessage[] = [{ role: "user", content: "Q" }];
  assert.equal(
    renderChat(m, { defaultSystem: null, addGenerationPrompt: true }),
    "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(
    renderChat(m, { defaultSystem: QWEN2_DEFAULT_SYSTEM }),
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n",
  );
  // A later system message is an ordinary turn.
  assert.equal(
    renderChat([{ role: "user", content: "Q" }, { role: "system", content: "S" }], { defaultSystem: null }),
    "<|im_start|>user\nQ<|im_end|>\n<|im_start|>system\nS<|im_end|>\n",
  );
});

Deno.test("chat: tools and bad messages are rejected with clear errors", () => {
  const bad = (m: unknown) => renderChat([m as ChatMessage]);
  assert.throws(() => bad({ role: "tool", content: "42" }), /messages\[0\]: tool messages .* not supported/);
  assert.throws(
    () => bad({ role: "assistant", content: "", tool_calls: [{ name: "f", arguments: {} }] }),
    /not supported/,
  );
  assert.throws(
    () => bad({ role: "bot", content: "x" }),
    /messages\[0\]: role must be one of system, user, assistant; got "bot"/,
  );
  assert.throws(() => bad({ role: "user", content: null }), /"content" must be a string; got null/);
  assert.throws(() => bad("hi"), /must be an object/);
});

Deno.test("chat: default system prompt detected from chat templates", async () => {
  assert.deepEqual(chatDefaultsFromTemplate(QWEN2_5_TEMPLATE), { defaultSystem: QWEN2_5_DEFAULT_SYSTEM });
  assert.deepEqual(chatDefaultsFromTemplate(QWEN2_TEMPLATE), { defaultSystem: QWEN2_DEFAULT_SYSTEM });
  const qwen3 = JSON.parse((await qwenTokenizerFiles({ qwen3: true })).tokenizerConfigJson).chat_template;
  assert.deepEqual(chatDefaultsFromTemplate(qwen3), { defaultSystem: null });
  assert.deepEqual(chatDefaultsFromTemplate(undefined), { defaultSystem: QWEN2_5_DEFAULT_SYSTEM });
  assert.throws(
    () => chatDefaultsFromTemplate("{{ bos_token }}{% for m in messages %}[INST]{% endfor %}"),
    /not ChatML/,
  );
});

const CONVERSATIONS: ChatMessage[][] = [
  [{ role: "user", content: "Describe a process of making crepes." }],
  [{ role: "system", content: "You are Lumen support." }, { role: "user", content: "Battery life?" }],
  [
    { role: "user", content: "你好" },
    { role: "assistant", content: "你好！有什么可以帮你？" },
    { role: "user", content: "Tell me a joke\nwith two lines." },
    { role: "assistant", content: "" },
  ],
  [
    { role: "system", content: "" },
    { role: "user", content: "  spaces  " },
    { role: "assistant", content: "ok" },
    { role: "system", content: "mid-conversation system" },
    { role: "user", content: "<|im_start|> literal markers <|im_end|>" },
  ],
  [{ role: "assistant", content: "I speak first." }, {
    role: "user",
    content: "'quotes' \"double\" {{ not jinja }}",
  }],
];

Deno.test("chat: matches the real Qwen2.5 Jinja template rendered by @huggingface/jinja", () => {
  const template = new Template(QWEN2_5_TEMPLATE);
  for (const messages of CONVERSATIONS) {
    for (const addGenerationPrompt of [false, true]) {
      const reference = template.render({ messages, add_generation_prompt: addGenerationPrompt });
      assert.equal(renderChat(messages, { addGenerationPrompt }), reference, JSON.stringify(messages));
    }
  }
  // The crepes reference is also what the Jinja engine produces (checks the engine and template).
  assert.equal(template.render({ messages: CONVERSATIONS[0], add_generation_prompt: true }), CREPES_TEXT);
});

Deno.test("chat: defaultSystem from the Qwen2 template matches that template's Jinja rendering", () => {
  const template = new Template(QWEN2_TEMPLATE);
  const { defaultSystem } = chatDefaultsFromTemplate(QWEN2_TEMPLATE);
  for (const messages of CONVERSATIONS) {
    assert.equal(
      renderChat(messages, { defaultSystem, addGenerationPrompt: true }),
      template.render({ messages, add_generation_prompt: true }),
    );
  }
});
