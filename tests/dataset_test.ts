import assert from "node:assert/strict";
import { type DatasetRecord, parseJsonl, tokenizeDataset, tokenizeExample } from "../src/data/dataset.ts";
import { loadTokenizer, type Tokenizer } from "../src/text/tokenizer.ts";
import { qwenTokenizerFiles } from "../src/text/qwen_tokenizer_files.ts";

let cached: Promise<Tokenizer> | undefined;
function qwen(): Promise<Tokenizer> {
  cached ??= qwenTokenizerFiles().then(loadTokenizer);
  return cached;
}

// Hand-assembled ChatML pieces (ids: <|im_start|>=151644, <|im_end|>=151645, \n=198,
// system=8948, user=872, assistant=77091; content ids from the tokenizer test vectors' tokenizer).
const S = 151644, E = 151645, NL = 198, EOT = 151643;
const DEFAULT_SYSTEM_BLOCK = [
  S,
  8948,
  NL,
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
  E,
  NL,
];
const USER = [S, 872, NL];
const ASSISTANT = [S, 77091, NL];
const SYSTEM = [S, 8948, NL];
const HI = [13048], HELLO = [9707, 0], MIX = [58083, 11, 2732, 11, 52546, 13], BLUE = [10331];
const IT_IS_BLUE = [2132, 374, 6303, 13], THANKS = [12658], WELCOME = [2610, 2299, 10565, 13];
const BE_BRIEF = [3430, 9814, 13], WHAT_COLOR = [3838, 1894, 30];
const CREPES = [74785, 264, 1882, 315, 3259, 1884, 20352, 13];

/** Build expected ids/targets from [ids, trained] segments. */
function expected(...segments: [number[], 0 | 1][]): { ids: number[]; targets: number[] } {
  const ids: number[] = [], targets: number[] = [];
  for (const [seg, t] of segments) for (const id of seg) ids.push(id), targets.push(t);
  targets[0] = 0;
  return { ids, targets };
}

function one(line: string): DatasetRecord {
  const recs = parseJsonl(line, { file: "t.jsonl" });
  assert.equal(recs.length, 1);
  return recs[0];
}

async function check(line: string, want: { ids: number[]; targets: number[] }, seqLen = 512) {
  const ex = tokenizeExample(one(line), await qwen(), { seqLen });
  assert.deepEqual(Array.from(ex.ids), want.ids);
  assert.deepEqual(Array.from(ex.targets), want.targets);
  assert.equal(ex.truncated, 0);
}

Deno.test("dataset: text trains every token and appends <|endoftext|>", async () => {
  await check('{"text": "Hello world"}', expected([[9707, 1879, EOT], 1]));
  await check('{"text": "Hello world<|endoftext|>"}', expected([[9707, 1879, EOT], 1])); // not doubled
  const ex = tokenizeExample(one('{"text": "Hello world"}'), await qwen(), {
    seqLen: 64,
    appendEosToText: false,
  });
  assert.deepEqual(Array.from(ex.ids), [9707, 1879]);
  assert.deepEqual(Array.from(ex.targets), [0, 1]);
});

Deno.test("dataset: prompt/completion strings become a chat; only completion + <|im_end|>\\n trained", async () => {
  await check(
    '{"prompt": "Describe a process of making crepes.", "completion": "Mix, rest, fry."}',
    expected(
      [DEFAULT_SYSTEM_BLOCK, 0],
      [USER, 0],
      [CREPES, 0],
      [[E, NL], 0],
      [ASSISTANT, 0],
      [MIX, 1],
      [[E, NL], 1],
    ),
  );
});

Deno.test("dataset: messages train every assistant turn, mask system/user/headers", async () => {
  const line = JSON.stringify({
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "What color?" },
      { role: "assistant", content: "It is blue." },
      { role: "user", content: "Thanks" },
      { role: "assistant", content: "You're welcome." },
    ],
  });
  await check(
    line,
    expected(
      [SYSTEM, 0],
      [BE_BRIEF, 0],
      [[E, NL], 0],
      [USER, 0],
      [WHAT_COLOR, 0],
      [[E, NL], 0],
      [ASSISTANT, 0],
      [IT_IS_BLUE, 1],
      [[E, NL], 1],
      [USER, 0],
      [THANKS, 0],
      [[E, NL], 0],
      [ASSISTANT, 0],
      [WELCOME, 1],
      [[E, NL], 1],
    ),
  );
  // Default system prompt inserted when the first message is not a system message.
  await check(
    '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}',
    expected([DEFAULT_SYSTEM_BLOCK, 0], [USER, 0], [HI, 0], [[E, NL], 0], [ASSISTANT, 0], [HELLO, 1], [[
      E,
      NL,
    ], 1]),
  );
});

Deno.test("dataset: chatDefaults.defaultSystem null renders no system block", async () => {
  const rec = one(
    '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}',
  );
  const ex = tokenizeExample(rec, await qwen(), { seqLen: 64, chatDefaults: { defaultSystem: null } });
  const want = expected([USER, 0], [HI, 0], [[E, NL], 0], [ASSISTANT, 0], [HELLO, 1], [[E, NL], 1]);
  assert.deepEqual(Array.from(ex.ids), want.ids);
  assert.deepEqual(Array.from(ex.targets), want.targets);
});

Deno.test("dataset: conversational prompt/completion trains only the completion's assistant turns", async () => {
  const line = JSON.stringify({
    prompt: [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!" },
      { role: "user", content: "What color?" },
    ],
    completion: [{ role: "assistant", content: "Blue" }],
  });
  await check(
    line,
    expected(
      [DEFAULT_SYSTEM_BLOCK, 0],
      [USER, 0],
      [HI, 0],
      [[E, NL], 0],
      [ASSISTANT, 0],
      [HELLO, 0], // assistant turn inside the prompt: context only
      [[E, NL], 0],
      [USER, 0],
      [WHAT_COLOR, 0],
      [[E, NL], 0],
      [ASSISTANT, 0],
      [BLUE, 1],
      [[E, NL], 1],
    ),
  );
});

Deno.test("dataset: input_ids train positions 1..T-1; labels -100 mask positions", async () => {
  await check('{"input_ids": [5, 6, 7, 8]}', { ids: [5, 6, 7, 8], targets: [0, 1, 1, 1] });
  await check('{"input_ids": [5, 6, 7, 8], "labels": [5, -100, 7, 8]}', {
    ids: [5, 6, 7, 8],
    targets: [0, 0, 1, 1],
  });
  await assert.rejects(
    async () => tokenizeExample(one('{"input_ids": [1, 151665]}'), await qwen(), { seqLen: 8 }),
    /t\.jsonl:1: input_ids\[1\] = 151665 is outside the tokenizer's vocabulary \(151665 tokens/,
  );
});

Deno.test("dataset: truncation keeps the start and is counted; examples left without targets are dropped", async () => {
  const tok = await qwen();
  const ex = tokenizeExample(one('{"input_ids": [1, 2, 3, 4, 5, 6]}'), tok, { seqLen: 4 });
  assert.deepEqual(Array.from(ex.ids), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(ex.targets), [0, 1, 1, 1]);
  assert.equal(ex.truncated, 2);

  // The crepes chat is 37 prompt tokens + 6 answer + <|im_end|>\n = 45: seqLen 38 keeps one target.
  const pc = '{"prompt": "Describe a process of making crepes.", "completion": "Mix, rest, fry."}';
  const cut = tokenizeExample(one(pc), tok, { seqLen: 38 });
  assert.equal(cut.truncated, 7);
  assert.deepEqual(Array.from(cut.targets).indexOf(1), 37);
  assert.equal(cut.targets.reduce((a, b) => a + b, 0), 1);
  assert.equal(cut.ids[37], MIX[0]);

  const text = [pc, '{"text": "Hello world"}', '{"input_ids": [1, 2, 3, 4, 5, 6]}'].join("\n");
  const records = parseJsonl(text, { file: "t.jsonl" });
  const { examples, stats } = tokenizeDataset(records, tok, { seqLen: 5 });
  // the longest record uncut (what --seq-len keeps every example), tokenized on its own
  const longest = Math.max(...records.map((r) => tokenizeExample(r, tok, { seqLen: 1e9 }).ids.length));
  assert.ok(longest > 6);
  assert.deepEqual(stats, {
    records: 3,
    examples: 2,
    truncated: 2,
    dropped: 1,
    tokens: 3 + 5,
    targets: 2 + 4,
    longest,
  });
  assert.deepEqual(Array.from(examples[0].ids), [9707, 1879, EOT]);
});

Deno.test("dataset: parse shapes, blank lines, CRLF, BOM, unknown keys", () => {
  const text = '\uFEFF{"text": "a", "meta": 1}\r\n\n   \n{"prompt": "p", "completion": "c"}\n' +
    '{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], "tools": []}\n' +
    '{"input_ids": [1, 2]}\n';
  const recs = parseJsonl(text, { file: "d.jsonl" });
  assert.deepEqual(recs.map((r) => [r.kind, r.line]), [["text", 1], ["chat", 4], ["chat", 5], ["tokens", 6]]);
  assert.deepEqual(recs[1], {
    kind: "chat",
    messages: [{ role: "user", content: "p" }, { role: "assistant", content: "c" }],
    trainFrom: 0,
    file: "d.jsonl",
    line: 4,
  });
});

Deno.test("dataset: every bad line names file and 1-based line", () => {
  const bad: [string, RegExp][] = [
    ['{"text": "x"', /invalid JSON/],
    // the column is the line's; V8's own "(line 1 column 9)" would contradict the file's line number
    ['{"a": 1,,}', /:\d+: invalid JSON: Expected double-quoted property name in JSON at column 9$/],
    // a pretty-printed JSON array is named as not JSON Lines
    ["[", /:3: invalid JSON: .*\(this reads JSON Lines: one whole JSON object per line/],
    ["[1, 2]", /each line must be a JSON object, got an array/],
    ["42", /each line must be a JSON object, got a number/],
    ['{"foo": "bar"}', /unknown record shape \(keys: "foo"\)/],
    ['{"prompt": "hi"}', /:\d+: "prompt" without "completion" \(a prompt\+completion record needs both\)$/],
    ['{"completion": "hi", "x": 1}', /:\d+: "completion" without "prompt"/],
    ['{"text": ""}', /"text" is empty/],
    ['{"text": 3}', /"text" must be a string, got a number/],
    ['{"messages": []}', /"messages" is empty/],
    ['{"messages": "hi"}', /"messages" must be an array of messages, got a string/],
    [
      '{"messages": [{"role": "bot", "content": "x"}]}',
      /messages\[0\]: role must be one of system, user, assistant; got "bot"/,
    ],
    [
      '{"messages": [{"role": "user", "content": 5}]}',
      /messages\[0\]: "content" must be a string; got number/,
    ],
    ['{"messages": [{"role": "user", "content": "x"}]}', /no assistant message to train on/],
    ['{"messages": [{"role": "tool", "content": "x"}]}', /tool messages and "tool_calls" are not supported/],
    [
      '{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
      /"tools" are not supported/,
    ],
    [
      '{"prompt": "p", "completion": [{"role": "assistant", "content": "c"}]}',
      /must both be strings or both be message arrays/,
    ],
    [
      '{"prompt": [{"role": "user", "content": "p"}], "completion": [{"role": "user", "content": "c"}]}',
      /"completion" has no assistant/,
    ],
    ['{"input_ids": [1, -2]}', /input_ids\[1\] must be a non-negative integer, got -2/],
    ['{"input_ids": [1, 2.5]}', /input_ids\[1\] must be a non-negative integer, got 2\.5/],
    ['{"input_ids": ["1", 2]}', /input_ids\[0\] must be a non-negative integer, got "1"/],
    ['{"input_ids": [1]}', /needs at least 2 tokens/],
    ['{"input_ids": 7}', /"input_ids" must be an array of integers, got a number/],
    ['{"input_ids": [1, 2], "labels": [1]}', /"labels" has 1 entries but "input_ids" has 2/],
    ['{"input_ids": [1, 2], "labels": [1, 3]}', /labels\[1\] is 3 but input_ids\[1\] is 2/],
    ['{"input_ids": [1, 2], "labels": [1, -100]}', /has no target/],
  ];
  for (const [line, re] of bad) {
    // The bad line is line 3, after a good line and a blank line.
    const text = '{"text": "ok"}\n\n' + line + "\n";
    assert.throws(() => parseJsonl(text, { file: "data/train.jsonl" }), (e: Error) => {
      assert.match(e.message, /^data\/train\.jsonl:3: /, line);
      assert.match(e.message, re, line);
      return true;
    });
  }
});

Deno.test("dataset: an empty dataset is an error", () => {
  assert.throws(() => parseJsonl("", { file: "e.jsonl" }), /e\.jsonl: no records/);
  assert.throws(() => parseJsonl("\n  \n\r\n", { file: "e.jsonl" }), /e\.jsonl: no records/);
});

Deno.test("dataset: a tokenizer that merges across a turn boundary is detected", async () => {
  const real = await qwen();
  // Wraps the real tokenizer but fuses "\n" with a following "Hello" token (9707): rendering the
  // prompt alone then ends in 198 while the full conversation has a fused id there.
  const fused: Tokenizer = {
    ...real,
    encode(text: string) {
      const ids = real.encode(text);
      const out: number[] = [];
      for (const id of ids) {
        if (id === HELLO[0] && out[out.length - 1] === NL) out[out.length - 1] = 999;
        else out.push(id);
      }
      return out;
    },
  };
  const rec = one(
    '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}',
  );
  assert.throws(
    () => tokenizeExample(rec, fused, { seqLen: 64 }),
    /t\.jsonl:1: the tokens of the prompt before message 1 are not a prefix of the conversation's tokens/,
  );
});

Deno.test("dataset: seqLen is validated", async () => {
  assert.throws(
    () => tokenizeExample(one('{"input_ids": [1, 2]}'), {} as Tokenizer, { seqLen: 1 }),
    /seqLen/,
  );
  await Promise.resolve();
});

Deno.test("dataset: the Lumen demo dataset parses and fits in 256 tokens", async () => {
  const tok = await qwen();
  for (const [name, count] of [["train", 100], ["valid", 15]] as const) {
    const file = `data/lumen/${name}.jsonl`;
    const records = parseJsonl(await Deno.readTextFile(new URL(`../${file}`, import.meta.url)), { file });
    assert.equal(records.length, count);
    const { stats } = tokenizeDataset(records, tok, { seqLen: 256 });
    assert.equal(stats.truncated, 0);
    assert.equal(stats.dropped, 0);
  }
});
