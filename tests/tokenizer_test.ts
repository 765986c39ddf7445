import assert from "node:assert/strict";
import { createStreamDecoder, loadTokenizer, type Tokenizer } from "../src/text/tokenizer.ts";
import { qwenTokenizerFiles, stripQwen3AddedTokens } from "../src/text/qwen_tokenizer_files.ts";
import { readTokenizerJson } from "../src/text/tokenizer_json.ts";

let cached: Promise<Tokenizer> | undefined;
/** The real Qwen2.5 tokenizer, loaded once for all tests of this file. */
function qwen(): Promise<Tokenizer> {
  cached ??= qwenTokenizerFiles().then(loadTokenizer);
  return cached;
}

// Public test vectors (transformers docstring, a public LLaMA-Factory log, an independent BPE).
const VECTORS: [string, number[]][] = [
  ["Hello world", [9707, 1879]],
  [" Hello world", [21927, 1879]],
  ["It's 2024!  ok\n\n  x", [2132, 594, 220, 17, 15, 17, 19, 0, 220, 5394, 271, 220, 856]],
  ["你好，世界", [108386, 3837, 99489]],
  ["Hello, 世界! <|im_start|>user", [9707, 11, 220, 99489, 0, 220, 151644, 872]],
  [
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
    "<|im_start|>user\nDescribe a process of making crepes.<|im_end|>\n<|im_start|>assistant\n",
    [
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
    ],
  ],
];

Deno.test("tokenizer: public test vectors encode exactly and decode back", async () => {
  const tok = await qwen();
  for (const [text, ids] of VECTORS) {
    assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
    assert.equal(tok.decode(ids), text);
  }
});

Deno.test("tokenizer: Qwen2.5 facts from tokenizer_config (eos, pad, template, vocab size)", async () => {
  const tok = await qwen();
  assert.equal(tok.vocabSize, 151665);
  assert.deepEqual(tok.eosTokenIds, [151645, 151643]); // <|im_end|> (config eos) then <|endoftext|>
  assert.equal(tok.padTokenId, 151643);
  assert.ok(
    tok.chatTemplate?.includes("You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
  );
  assert.equal(tok.tokenToId("<|im_start|>"), 151644);
  assert.equal(tok.idToToken(1879), "Ġworld");
  assert.equal(tok.isSpecialToken(151645), true);
  assert.equal(tok.isSpecialToken(151657), false); // <tool_call> is added but not special
  assert.equal(tok.isAddedToken(151657), true);
  // Qwen3-only added tokens are gone in the Qwen2.5 flavour: "<think>" is plain BPE text.
  assert.notDeepEqual(tok.encode("<think>"), [151667]);
  assert.equal(tok.decode(tok.encode("<think>")), "<think>");
});

Deno.test("tokenizer: Qwen3 flavour keeps <think> as one token", async () => {
  const tok = await loadTokenizer(await qwenTokenizerFiles({ qwen3: true }));
  assert.equal(tok.vocabSize, 151669);
  assert.deepEqual(tok.encode("<think>"), [151667]);
  assert.deepEqual(tok.encode("Hello world"), [9707, 1879]);
});

Deno.test("qwen files: Qwen2.5 tokenizer.json differs from Qwen3's only by the 4 Qwen3 added tokens", async () => {
  const q25 = await qwenTokenizerFiles();
  const q3 = await qwenTokenizerFiles({ qwen3: true });
  const added = (text: string) => JSON.parse(text).added_tokens.map((t: { id: number }) => t.id);
  const ids25 = added(q25.tokenizerJson);
  assert.equal(ids25.length, 22);
  assert.deepEqual(ids25, Array.from({ length: 22 }, (_, i) => 151643 + i));
  assert.equal(added(q3.tokenizerJson).length, 26);
  const cfg = JSON.parse(q25.tokenizerConfigJson);
  assert.deepEqual([cfg.eos_token, cfg.pad_token, cfg.bos_token], ["<|im_end|>", "<|endoftext|>", null]);
  assert.deepEqual(Object.keys(cfg.added_tokens_decoder), ids25.map(String));
  assert.throws(() => stripQwen3AddedTokens(q25.tokenizerJson), /expected the 4 Qwen3-only added tokens/);
});

Deno.test("tokenizer: decode options, byte view and errors", async () => {
  const tok = await qwen();
  assert.equal(tok.decode([]), "");
  assert.equal(tok.decode([151644, 872, 198, 9707, 151645]), "<|im_start|>user\nHello<|im_end|>");
  assert.equal(tok.decode([151644, 872, 198, 9707, 151645], { skipSpecialTokens: true }), "user\nHello");
  assert.equal(tok.decode(Int32Array.of(9707, 1879)), "Hello world");
  assert.deepEqual(Array.from(tok.tokenBytes(1879)), [0x20, 0x77, 0x6f, 0x72, 0x6c, 0x64]); // " world"
  assert.deepEqual(Array.from(tok.tokenBytes(198)), [0x0a]);
  assert.deepEqual(new TextDecoder().decode(tok.tokenBytes(151645)), "<|im_end|>");
  assert.throws(() => tok.decode([151936]), /out of range/);
  await assert.rejects(loadTokenizer({ tokenizerJson: "{" }), /tokenizer\.json: invalid JSON/);
  await assert.rejects(
    loadTokenizer({ tokenizerJson: JSON.stringify({ model: { type: "WordPiece", vocab: {} } }) }),
    /model\.type is "WordPiece"/,
  );
});

Deno.test("tokenizer: round trip of mixed text", async () => {
  const tok = await qwen();
  const texts = [
    "Ünïcödé — “quotes” … 😀 👩‍👩‍👧 \t tabs\r\nCRLF",
    "def f(x):\n    return x**2  # comment\n",
    "日本語のテキストと한국어 텍스트",
    "   leading and trailing   ",
  ];
  for (const t of texts) assert.equal(tok.decode(tok.encode(t)), t);
});

Deno.test("stream decoder: Chinese and emoji split across byte-level tokens never print U+FFFD", async () => {
  const tok = await qwen();
  // 龘, 𠀀 and 😀 are not single tokens: their UTF-8 bytes are spread over several byte-level tokens.
  const text = "你好，世界。龘𠀀😀 ok<|im_end|>";
  const ids = tok.encode(text);
  assert.ok(ids.some((id) => tok.decode([id]).includes("\uFFFD")), "the test string must split a character");
  const stream = createStreamDecoder(tok);
  const pieces = ids.map((id) => stream.push(id));
  pieces.push(stream.flush());
  for (const p of pieces) assert.ok(!p.includes("\uFFFD"), JSON.stringify(pieces));
  assert.equal(pieces.join(""), text);
  assert.equal(pieces.join(""), tok.decode(ids));
  // Characters come out as soon as their last byte arrives, not later.
  assert.deepEqual(pieces.slice(0, 4), ["你好", "，", "世界", "。"]);

  const skipping = createStreamDecoder(tok, { skipSpecialTokens: true });
  assert.equal(ids.map((id) => skipping.push(id)).join("") + skipping.flush(), "你好，世界。龘𠀀😀 ok");
});

Deno.test("stream decoder: a dangling partial character becomes U+FFFD only at flush", async () => {
  const tok = await qwen();
  const ids = tok.encode("龘");
  assert.ok(ids.length > 1);
  const stream = createStreamDecoder(tok);
  assert.equal(stream.push(ids[0]), "");
  assert.equal(stream.flush(), "\uFFFD");
  assert.equal(stream.flush(), "");
});

Deno.test("loadTokenizer: model files are read (tokenizer.json required, configs optional); anything else is named", async () => {
  const { memoryFiles, FileNotFoundError } = await import("../src/io/source.ts");
  const texts = await qwenTokenizerFiles();
  const enc = new TextEncoder();
  const fromDir = await loadTokenizer(
    memoryFiles({
      "tokenizer.json": enc.encode(texts.tokenizerJson),
      "tokenizer_config.json": enc.encode(texts.tokenizerConfigJson!),
      "generation_config.json": enc.encode(JSON.stringify({ eos_token_id: [151643, 151645] })),
    }, { name: "models/qwen" }),
  );
  const fromTexts = await qwen();
  assert.deepEqual(fromDir.encode("Hello world 你好"), fromTexts.encode("Hello world 你好"));
  assert.equal(fromDir.chatTemplate, fromTexts.chatTemplate); // tokenizer_config.json was read
  assert.ok(fromDir.chatTemplate);
  // without the configs: no template, still a tokenizer
  const bare = await loadTokenizer(memoryFiles({ "tokenizer.json": enc.encode(texts.tokenizerJson) }));
  assert.equal(bare.chatTemplate, undefined);
  assert.deepEqual(bare.encode("Hello world"), [9707, 1879]);
  const err: unknown = await loadTokenizer(
    memoryFiles({ "config.json": enc.encode("{}") }, { name: "models/empty/" }),
  )
    .then(() => undefined, (e) => e);
  assert.ok(err instanceof FileNotFoundError);
  assert.match(
    (err as Error).message,
    /^file not found: models\/empty\/tokenizer\.json \(loadTokenizer needs it\)$/,
  );
  await assert.rejects(
    () => loadTokenizer(undefined as never),
    /loadTokenizer: expected model files or \{ tokenizerJson, tokenizerConfigJson\? \} as strings, got undefined/,
  );
  await assert.rejects(() => loadTokenizer({ tokenizerJson: 3 } as never), /got an object/);
});

Deno.test("tokenizer: dist/mesp.js hosted without tokenizer.js beside it names the module's URL and the way out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesp-notok-" });
  try {
    await Deno.copyFile(new URL("../dist/mesp.js", import.meta.url), `${dir}/mesp.js`);
    const mesp = await import(`file://${dir}/mesp.js`);
    await assert.rejects(
      () => mesp.loadTokenizer({ tokenizerJson: "{}" }),
      (err: Error) => {
        assert.match(
          err.message,
          /^loadTokenizer: cannot load the tokenizer's module file:\/\/.*\/tokenizer\.js \(/,
        );
        assert.match(err.message, /must sit beside mesp\.js, or pass loadTokenizer\(files, \{ module \}\)/);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer: mesp's byte-level BPE encodes and decodes as @huggingface/tokenizers on random mixed text", async () => {
  // the reference: the library mesp used before (a dev dependency only; training and loading never import it)
  // deno-lint-ignore no-import-prefix
  const { Tokenizer: Reference } = await import("npm:@huggingface/tokenizers@0.2.0");
  const files = await qwenTokenizerFiles();
  const reference = new Reference(JSON.parse(files.tokenizerJson), JSON.parse(files.tokenizerConfigJson));
  const tok = await qwen();
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  // letters, digits, every kind of space (U+0085 and U+FEFF, where Rust's \s and JavaScript's differ),
  // contractions in both cases (and the long s), CJK, emoji sequences, combining marks, added tokens
  const pools = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789١٢٣४५६Ⅻ½²",
    "     \t\n\r\n\u00a0\u3000\u2009\u0085\ufeff\u2028",
    ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
    "'s'S'T're'VE'm'LL'd'ſ",
    "你好世界中文测试日本語한국어",
    "😀👩‍👩‍👧🎉❤️",
    "éàüñçÅØ\u0301\u0308ﬁﬂ",
    "<|im_start|><|im_end|><|endoftext|><tool_call>",
    "ΑΒΓαβγкириллица\u200b\u200d",
  ].map((p) => [...p]);
  const texts: string[] = [];
  for (let i = 0; i < 5000; i++) {
    let t = "";
    for (let j = 1 + Math.floor(random() * 40); j > 0; j--) {
      const pool = pools[Math.floor(random() * pools.length)];
      for (let k = random() < 0.5 ? 1 : 1 + Math.floor(random() * 4); k > 0; k--) {
        t += pool[Math.floor(random() * pool.length)];
      }
    }
    texts.push(t);
  }
  texts.push(await Deno.readTextFile(new URL("../README.md", import.meta.url)));
  texts.push(await Deno.readTextFile(new URL("../data/lumen/train.jsonl", import.meta.url)));
  let compared = 0;
  for (const text of texts) {
    const ids = reference.encode(text, { add_special_tokens: false }).ids;
    assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
    assert.equal(
      tok.decode(ids),
      reference.decode(ids, { skip_special_tokens: false }),
      JSON.stringify(text),
    );
    assert.equal(
      tok.decode(ids, { skipSpecialTokens: true }),
      reference.decode(ids, { skip_special_tokens: true }),
      JSON.stringify(text),
    );
    compared++;
  }
  assert.equal(compared, 5002);
  // a config asking for transformers' clean-up of decoded spaces gets it, as the library does it
  const config = JSON.stringify({
    ...JSON.parse(files.tokenizerConfigJson),
    clean_up_tokenization_spaces: true,
  });
  const cleaning = await loadTokenizer({ tokenizerJson: files.tokenizerJson, tokenizerConfigJson: config });
  const cleaningReference = new Reference(JSON.parse(files.tokenizerJson), JSON.parse(config));
  const spaced = "Hello , world . It 's done ! Is n't it ? I 'm , we 're , they 've ' quoted ' .";
  const spacedIds = tok.encode(spaced);
  assert.equal(
    cleaning.decode(spacedIds),
    cleaningReference.decode(spacedIds, { skip_special_tokens: false }),
  );
  assert.equal(
    cleaning.decode(spacedIds),
    "Hello, world. It's done! Isn't it? I'm, we're, they've'quoted '.",
  );
  assert.equal(tok.decode(spacedIds), spaced);
});

Deno.test("tokenizer: tokenizer.json scanned in place gives what JSON.parse gives; an odd layout falls back", async () => {
  const files = await qwenTokenizerFiles();
  const fast = readTokenizerJson(files.tokenizerJson);
  assert.ok(!Array.isArray(fast.vocab), "Qwen's file takes the fast path (the fallback gives arrays)");
  const parsed = JSON.parse(files.tokenizerJson);
  const vocab = [...fast.vocab];
  assert.equal(vocab.length, 151643);
  assert.deepEqual(new Map(vocab), new Map(Object.entries(parsed.model.vocab))); // (a JS object's order differs)
  const merges = [...fast.merges];
  assert.equal(merges.length, parsed.model.merges.length);
  assert.deepEqual(merges.slice(0, 1000), parsed.model.merges.slice(0, 1000));
  assert.deepEqual(merges.at(-1), parsed.model.merges.at(-1));
  assert.deepEqual(fast.json.added_tokens, parsed.added_tokens);
  // escapes, "a b" merges, and a "vocab" key outside the model (the fast path must not take it)
  const odd = JSON.stringify({
    added_tokens: [],
    note: { vocab: { "x": 1 } },
    model: { type: "BPE", vocab: { 'a"b': 0, "\\u00e9": 1, "ab": 2 }, merges: ["a b", ["x", "y"]] },
  });
  const r = readTokenizerJson(odd);
  assert.deepEqual(new Map(r.vocab), new Map([['a"b', 0], ["\\u00e9", 1], ["ab", 2]]));
  assert.deepEqual([...r.merges], [["a", "b"], ["x", "y"]]);
  assert.deepEqual(r.json.note, { vocab: { x: 1 } });
  assert.throws(() => readTokenizerJson("{"), /tokenizer\.json: invalid JSON/);
});
