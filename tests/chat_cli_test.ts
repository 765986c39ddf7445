// `generate --chat` on stdin: the first reply is what `generate --prompt` gives for the same message (the
// same template and greedy decoding), `/reset` starts a new conversation (so the same message gets the same
// reply again) instead of being sent to the model, an unknown `/command` is named and not sent, and the last
// prompt's line is ended before the summary on stderr; a message that would overflow the model's positions
// or the --max-memory budget is refused and the chat goes on.
import { assert, assertEquals } from "./_assert.ts";
import { tinyRun } from "./_tiny_run.ts";
import { overBudget } from "../src/cli/preflight.ts";
import { readModelConfig } from "../src/model/pack_files.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).href;

async function generate(env: Record<string, string>, stdin: string | undefined, ...args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "generate", ...args],
    env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  const r = { stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  assert(out.success, `generate ${args.join(" ")} failed:\n${r.stderr}`);
  return r;
}

Deno.test("generate --chat: /reset starts over, unknown commands are not sent, the summary starts its own line", async () => {
  const run = await tinyRun();
  const env = { NO_COLOR: "1", MESP_CACHE: `${run.dir}/cache` };
  const common = ["--model", `${run.dir}/model`, "--weights", "f32", "--max-tokens", "6"];
  const message = "What is Lumen?";
  const single = await generate(env, undefined, ...common, "--prompt", message);
  const reply = single.stdout.replace(/\n$/, "");
  assert(reply.length > 0, "no reply to compare with");
  const chat = await generate(env, `${message}\n/reset\n${message}\n/bogus\n\n`, ...common, "--chat");
  // each "> " is a prompt; the commands print nothing on stdout
  assertEquals(chat.stdout, `> ${reply}\n> > ${reply}\n> > \n`);
  assert(chat.stderr.includes("(a new conversation)"), chat.stderr);
  assert(chat.stderr.includes("unknown command /bogus (not sent to the model)"), chat.stderr);
  assert(chat.stderr.includes("/reset starts a new conversation"), chat.stderr);
});

Deno.test("generate --chat: a message that would overflow the model's positions is not sent; the chat goes on", async () => {
  const run = await tinyRun();
  const env = { NO_COLOR: "1", MESP_CACHE: `${run.dir}/cache` };
  const small = await Deno.makeTempDir({ prefix: "mesp-chat-" });
  try {
    for (const f of Deno.readDirSync(`${run.dir}/model`)) {
      await Deno.copyFile(`${run.dir}/model/${f.name}`, `${small}/${f.name}`);
    }
    const cfg = JSON.parse(await Deno.readTextFile(`${small}/config.json`));
    cfg.max_position_embeddings = 60;
    await Deno.writeTextFile(`${small}/config.json`, JSON.stringify(cfg));
    const common = ["--model", small, "--weights", "f32", "--max-tokens", "6", "--chat"];
    const messages = ["What is Lumen?", "And the warranty?", "Tell me more please", "/reset", "hi", ""];
    const chat = await generate(env, messages.join("\n") + "\n", ...common);
    assert(chat.stderr.includes("and the model holds 60 positions: /reset starts a new one"), chat.stderr);
    assert(chat.stderr.includes("(a new conversation)"), chat.stderr);
    // two replies, the refused message, the reset, a reply to "hi", the empty line
    assertEquals(chat.stdout.split("> ").length - 1, 6, chat.stdout);
  } finally {
    await Deno.remove(small, { recursive: true });
  }
});

Deno.test("generate --chat --max-memory: a message whose plan is over the budget is not sent; the chat goes on", async () => {
  const run = await tinyRun();
  const env = { NO_COLOR: "1", MESP_CACHE: `${run.dir}/cache` };
  const cfg = await readModelConfig(`${run.dir}/model`);
  // the predicted peak of a 100-token prompt with its 6 new tokens (a budget of 1 byte is always over):
  // a short message fits under it, a long one does not
  const plan = {
    mode: "generate",
    seqLen: 100,
    maxPositions: 106,
    format: "f32",
    bf16Scales: false,
    resident: false,
  } as const;
  const budget = (await overBudget(cfg, plan, 1, 1))!.peak;
  const long = "Tell me everything about the warranty and the battery and the colours. ".repeat(20);
  const messages = ["What is Lumen?", long, "/reset", "hi", ""];
  const chat = await generate(
    env,
    messages.join("\n") + "\n",
    ...["--model", `${run.dir}/model`, "--weights", "f32", "--max-tokens", "6", "--threads", "1"],
    ...["--max-memory", String(budget), "--chat"],
  );
  assert(
    /with this message \(\d+ tokens, and 6 new\) needs [\d.]+ MB and the budget is/.test(chat.stderr),
    chat.stderr,
  );
  assert(chat.stderr.includes("(a new conversation)"), chat.stderr);
  // a reply, the refused message, the reset, a reply to "hi", the empty line
  assertEquals(chat.stdout.split("> ").length - 1, 5, chat.stdout);
  assert(!chat.stderr.includes("memory plan needs"), chat.stderr);
});

Deno.test("generate: an empty --prompt is warned about with the chat template, refused without it (it failed after packing)", async () => {
  const run = await tinyRun();
  const env = { NO_COLOR: "1", MESP_CACHE: `${run.dir}/cache` };
  const common = ["--model", `${run.dir}/model`, "--weights", "f32", "--max-tokens", "2", "--prompt", ""];
  const templated = await generate(env, undefined, ...common);
  assert(templated.stderr.includes("warning: --prompt is empty: the model replies to an empty message"));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "generate", ...common, "--raw"],
    env,
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 1, stderr);
  assert(
    stderr.includes("error: --prompt is empty: without the chat template there is nothing to continue"),
    stderr,
  );
  assert(!stderr.includes("weight pack"), `refused before the pack is opened:\n${stderr}`);
});
