/**
 * The `mesp` command line: `deno task <command> [flags]` (each task grants what its command needs, README
 * "Permissions"; from a URL `deno run <those permissions> URL/src/cli/main.ts <command>`). Each command lives in
 * `src/cli/<command>.ts` (dashes become underscores) and exports a one-line `description` and
 * `run(argv): Promise<number>` returning the exit code. Errors print as `error: <message>` with exit code 1
 * (the stack too when `MESP_DEBUG=1`).
 *
 * @module
 */
import { HelpRequested } from "./args.ts";
import { nearest } from "../util/nearest.ts";
import { resolveModelArg } from "./hub_cache.ts";
import { enterTaskCaller } from "./paths.ts";
import { exitCleanlyOnSignal } from "./signals.ts";

/** What a command module exports. */
export interface CommandModule {
  /** One line for the command list. */
  description: string;
  /** Runs the command with its arguments (after the command name); resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

/**
 * The commands, loaded on demand. Literal imports keep them type-checked and bundleable; a new command
 * adds one line here.
 */
export const COMMANDS: Readonly<Record<string, () => Promise<CommandModule>>> = {
  "make-model": () => import("./make_model.ts"),
  eval: () => import("./eval.ts"),
  export: () => import("./export.ts"),
  generate: () => import("./generate.ts"),
  grad: () => import("./grad.ts"),
  merge: () => import("./merge.ts"),
  plan: () => import("./plan.ts"),
  train: () => import("./train.ts"),
};

const PROGRAM = "deno task";

/** The list of commands with their descriptions. */
export async function commandList(): Promise<string> {
  const names = Object.keys(COMMANDS).sort();
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const lines = [
    `usage: ${PROGRAM} <command> [flags]   (a command's flags: <command> --help)`,
    "",
    "commands:",
  ];
  for (const name of names) {
    const mod = await COMMANDS[name]();
    lines.push(`  ${name.padEnd(width)}${mod.description}`);
  }
  return lines.join("\n");
}

function debugEnabled(): boolean {
  try {
    return Deno.env.get("MESP_DEBUG") === "1";
  } catch {
    return false; // no --allow-env
  }
}

/**
 * Runs `argv` (command name first) and returns the exit code; never throws. Output goes to
 * `console.log` (help, lists) and `console.error` (errors).
 */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === "help" || name === "--help" || name === "-h") {
      if (name === "help" && rest.length > 0) return await main([rest[0], "--help"]);
      const list = await commandList();
      if (name === undefined) {
        console.error(list);
        return 1;
      }
      console.log(list);
      return 0;
    }
    const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!load) {
      const near = nearest(name, Object.keys(COMMANDS));
      console.error(
        `error: unknown command ${JSON.stringify(name)}${
          near ? ` (did you mean ${near}?)` : ""
        }\n\n${await commandList()}`,
      );
      return 1;
    }
    const mod = await load();
    // train saves on a signal; the others only leave nothing half-written behind
    if (name !== "train") exitCleanlyOnSignal();
    // `--model org/name[@rev]` names a model in the Hugging Face cache
    return await mod.run(await resolveModelArg(rest, (m) => console.error(m)));
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(err.text);
      return 0;
    }
    let message = err instanceof Error ? err.message : String(err);
    // Deno's advice ("run again with the --allow-all flag") is not the user's way out: another path is
    // (matched by its words: the preparation child's errors arrive as text)
    const denied = /, run again with the (--allow-\S+) flag/.exec(message);
    if (denied) {
      const grant = denied[1] === "--allow-all" ? denied[1] : `${denied[1]}=PATH`;
      message = message.replace(denied[0], "") +
        ` (not granted to this process: under deno task, give a path its task may use, see the README's ` +
        `Permissions; run directly, add ${grant})`;
    }
    console.error(`error: ${message}`);
    if (debugEnabled() && err instanceof Error && err.stack) console.error(err.stack);
    return 1;
  }
}

if (import.meta.main) {
  enterTaskCaller(new URL("../../", import.meta.url));
  Deno.exit(await main(Deno.args));
}
