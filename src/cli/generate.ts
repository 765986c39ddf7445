/**
 * `generate`: KV-cached decoding that prints text as it is produced; `--chat` for an interactive chat.
 * By default the weights stream one layer at a time (as in training) and the tokenizer runs in a child
 * process, so the peak is the engine's plan plus the runtime; `--resident` keeps every layer in memory.
 *
 * @module
 */
import { MAX_SEED } from "../run/run_options.ts";
import {
  type CommandSpec,
  givenFlags,
  ignoredFlag,
  parseArgs,
  type ParsedArgs,
  UsageError,
  usageLine,
} from "./args.ts";
import { chooseWeights } from "./weights.ts";
import { bf16ScalesOf, overBudget, type PreflightPlan, refuseOverBudget } from "./preflight.ts";
import { formatMB } from "../runtime/arena.ts";
import { readModelConfig } from "../model/pack_files.ts";
import type { ModelConfig } from "../model/config.ts";
import { loraLayout } from "../engine/lora.ts";
import {
  adapterRun,
  adapterWeightsDefault,
  arenaBudget,
  MODEL_FLAGS,
  MODEL_OR_BASE_FLAG,
  modelOrBase,
  openAdapterFor,
  peakMemoryLine,
  prepareRun,
  shownSize,
  stderrLog,
  threadsOf,
  variantOf,
  warnOtherBase,
} from "./common.ts";
import { generate } from "../run/generate.ts";
import { TokenizerProcess } from "./tokenizer_process.ts";
import { chatDefaultsFromTemplate, type ChatMessage, renderChat } from "../text/chat.ts";
import type { Pack } from "../model/pack.ts";
import type { OpenedAdapter } from "../engine/adapter.ts";

/** One line for the command list. */
export const description = "generate text (streams as it decodes); --chat for a conversation";

/** The command's flags. */
export const SPEC = {
  name: "generate",
  description,
  flags: {
    ...MODEL_FLAGS,
    model: MODEL_OR_BASE_FLAG,
    prompt: {
      type: "string",
      value: "TEXT",
      description: "the prompt (a user turn when the model has a chat template)",
    },
    chat: {
      type: "boolean",
      description: "interactive chat on stdin (/reset starts over; an empty line, /exit or Ctrl-D ends)",
    },
    raw: { type: "boolean", description: "send --prompt as plain text, without the chat template" },
    system: {
      type: "string",
      value: "TEXT",
      description: "system prompt (default: the model's template default)",
    },
    adapter: { type: "string", value: "DIR", description: "apply a PEFT LoRA adapter" },
    maxTokens: { type: "integer", default: 128, min: 1, description: "most new tokens" },
    temperature: { type: "number", default: 0.7, min: 0, description: "sampling temperature (0 = greedy)" },
    topP: { type: "number", default: 0.8, greaterThan: 0, max: 1, description: "nucleus sampling mass" },
    seed: { type: "integer", default: 0, min: 0, max: MAX_SEED, description: "sampler seed" },
    resident: {
      type: "boolean",
      description:
        "keep every layer's weights in memory (faster per token, more memory; default: stream them)",
    },
  },
  epilog:
    'example: deno task generate --model ~/.cache/mesp/models/demo-2 --adapter runs/lumen --prompt "How long is the warranty?" --temperature 0',
} as const satisfies CommandSpec;

/** Streams one completion of `ids` to stdout; returns the text. */
export async function streamCompletion(
  pack: Pack,
  tok: TokenizerProcess,
  ids: number[],
  options: {
    maxTokens: number;
    temperature: number;
    topP: number;
    seed: number;
    adapter?: OpenedAdapter;
    budget?: number;
    resident?: boolean;
    variant?: string;
    threads?: number;
  },
  write: (text: string) => void,
): Promise<string> {
  const eos = new Set([...tok.eosTokenIds, ...pack.config.eosTokenIds]);
  let text = "";
  for await (
    const id of generate(pack, ids, {
      maxTokens: options.maxTokens,
      temperature: options.temperature,
      topP: options.topP,
      seed: options.seed,
      eosTokenIds: [...eos],
      adapter: options.adapter,
      budget: options.budget,
      streamWeights: !options.resident,
      variant: variantOf(options.variant),
      threads: threadsOf(options.threads),
    })
  ) {
    if (eos.has(id)) break;
    const piece = await tok.push(id);
    text += piece;
    write(piece);
  }
  const tail = await tok.flush();
  write(tail);
  return text + tail;
}

/**
 * New tokens that fit after `promptTokens` in the model's positions: `maxTokens`, or fewer (with a warning
 * when --max-tokens was given); a prompt that leaves no room is an error.
 */
function roomFor(
  promptTokens: number,
  maxTokens: number,
  given: boolean,
  cfg: ModelConfig,
  log: (m: string) => void,
): number {
  const room = cfg.maxPositionEmbeddings - promptTokens;
  if (room < 1) {
    throw new Error(
      `the prompt is ${promptTokens} tokens: no room left in the model's ${cfg.maxPositionEmbeddings} positions`,
    );
  }
  if (maxTokens <= room) return maxTokens;
  if (given) {
    log(
      `warning: --max-tokens ${maxTokens}: the model has ${cfg.maxPositionEmbeddings} positions and the prompt ` +
        `${promptTokens} tokens, so at most ${room} new tokens`,
    );
  }
  return room;
}

const CHAT_HELP =
  "chat: type a message and Enter; /reset starts a new conversation; an empty line, /exit or " +
  "Ctrl-D ends";

/**
 * What a chat line that starts with "/" asks for: "reset", or a message for the user (help, or an unknown
 * command, which is not sent to the model); undefined for a message to the model.
 */
function chatCommand(line: string): string | undefined {
  const word = line.trim();
  if (!word.startsWith("/") || word.includes(" ")) return undefined;
  if (word === "/reset") return "reset";
  if (word === "/help") return CHAT_HELP;
  return `unknown command ${word} (not sent to the model): ${CHAT_HELP}`;
}

const enc = new TextEncoder();
const out = (s: string) => {
  if (s) Deno.stdout.writeSync(enc.encode(s));
};

/** Runs `generate`. */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv, SPEC);
  if (!parsed.chat && parsed.prompt === undefined) {
    throw new UsageError(`give --prompt TEXT or --chat\n${usageLine(SPEC)}`);
  }
  const log = stderrLog();
  const args = { ...parsed, model: await modelOrBase(parsed, usageLine(SPEC), log) };
  const given = givenFlags(argv, SPEC);
  const ignored: [string, boolean, string][] = [
    ["prompt", args.chat, "--chat reads the conversation from stdin"],
    ["raw", args.chat, "--chat always uses the chat template"],
    ["system", args.raw && !args.chat, "--raw sends the prompt as plain text, without the chat template"],
    ["topP", args.temperature === 0, "--temperature 0 decodes greedily"],
    ["seed", args.temperature === 0, "--temperature 0 decodes greedily"],
  ];
  for (const [key, yes, why] of ignored) {
    if (yes && given.has(key)) log(`warning: ${ignoredFlag(key, why)}`);
  }
  const cfg = await readModelConfig(args.model);
  const tok = await TokenizerProcess.open(args.model);
  try {
    return await converse(args, given, cfg, tok, log);
  } finally {
    await tok.close();
  }
}

async function converse(
  args: ParsedArgs<typeof SPEC> & { model: string },
  given: Set<string>,
  cfg: ModelConfig,
  tok: TokenizerProcess,
  log: (m: string) => void,
): Promise<number> {
  const adapter = args.adapter ? await openAdapterFor(args.adapter, cfg) : undefined;
  const useTemplate = !args.raw && tok.chatTemplate !== undefined;
  const defaults = chatDefaultsFromTemplate(tok.chatTemplate);
  const system = args.system ?? defaults.defaultSystem;
  const threads = threadsOf(args.threads);
  if (!args.chat && args.prompt! === "") {
    if (!useTemplate) {
      throw new Error("--prompt is empty: without the chat template there is nothing to continue");
    }
    log("warning: --prompt is empty: the model replies to an empty message");
  }
  const firstIds = args.chat ? [] : await tok.encode(
    useTemplate
      ? renderChat([{ role: "user", content: args.prompt! }], {
        addGenerationPrompt: true,
        defaultSystem: system,
      })
      : args.prompt!,
  );
  const run = await adapterRun(args.adapter, log);
  const choice = chooseWeights(cfg, args.weights, adapterWeightsDefault(run)), weights = choice.format;
  const maxTokens = roomFor(firstIds.length, args.maxTokens, given.has("maxTokens"), cfg, log);
  // the plan of one completion: the prompt prefilled, then room for its new tokens in the key/value cache
  const planOf = (promptTokens: number, newTokens: number): PreflightPlan => ({
    mode: "generate",
    seqLen: Math.max(2, promptTokens),
    maxPositions: Math.min(cfg.maxPositionEmbeddings, promptTokens + newTokens),
    format: weights,
    bf16Scales: bf16ScalesOf(cfg, weights),
    lora: adapter ? loraLayout(cfg, adapter.config) : undefined,
    resident: args.resident,
  });
  const variant = variantOf(args.variant);
  await refuseOverBudget(cfg, planOf(firstIds.length, maxTokens), args.maxMemory, threads, variant);
  const { pack } = await prepareRun(args, [], 2, log, choice);
  warnOtherBase(run, pack.header.fingerprint, args.model, log);
  const opts = { ...args, maxTokens, threads, adapter, budget: arenaBudget(args.maxMemory, threads) };
  if (!args.chat) {
    await streamCompletion(pack, tok, firstIds, opts, out);
    out("\n");
    console.error(peakMemoryLine());
    return 0;
  }
  const history: ChatMessage[] = [];
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).values();
  let buffer = "";
  console.error(CHAT_HELP);
  while (true) {
    out("> ");
    let line: string | undefined;
    while (line === undefined) {
      const i = buffer.indexOf("\n");
      if (i >= 0) {
        line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        break;
      }
      const next = await lines.next();
      if (next.done) {
        line = buffer;
        buffer = "";
        if (!line) line = "";
        break;
      }
      buffer += next.value;
    }
    if (!line.trim() || line.trim() === "/exit") break;
    const command = chatCommand(line);
    if (command === "reset") {
      history.length = 0;
      console.error("(a new conversation)");
      continue;
    }
    if (command !== undefined) {
      console.error(command);
      continue;
    }
    history.push({ role: "user", content: line });
    const ids = await tok.encode(renderChat(history, { addGenerationPrompt: true, defaultSystem: system }));
    if (ids.length >= cfg.maxPositionEmbeddings) {
      // the conversation so far stays; this message is not sent
      history.pop();
      console.error(
        `the conversation with this message is ${ids.length} tokens and the model holds ` +
          `${cfg.maxPositionEmbeddings} positions: /reset starts a new one (or send a shorter message)`,
      );
      continue;
    }
    const turn = { ...opts, maxTokens: roomFor(ids.length, args.maxTokens, false, cfg, log) };
    const over = await overBudget(cfg, planOf(ids.length, turn.maxTokens), args.maxMemory, threads, variant);
    if (over) {
      history.pop(); // as above: the conversation stays, this message is not sent
      console.error(
        `the conversation with this message (${ids.length} tokens, and ${turn.maxTokens} new) needs ` +
          `${formatMB(over.peak)} and the budget is ${shownSize(args.maxMemory!)} (--max-memory): /reset ` +
          `starts a new one (or send a shorter message; a lower --max-tokens, for the next chat, plans less)`,
      );
      continue;
    }
    const reply = await streamCompletion(pack, tok, ids, turn, out);
    out("\n");
    history.push({ role: "assistant", content: reply });
  }
  out("\n"); // the last prompt's line ends before the summary
  console.error(peakMemoryLine());
  return 0;
}
