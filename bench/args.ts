/**
 * The benchmarks' command lines, read by the CLI's own flag parser (`src/cli/args.ts`): typed values,
 * defaults, `--help` from the same description, and a mistyped flag stops with its name instead of
 * measuring with a `NaN`.
 *
 * @module
 */
import {
  type CommandSpec,
  type FlagSpec,
  HelpRequested,
  parseArgs,
  type ParsedArgs,
  UsageError,
} from "../src/cli/args.ts";

/** `argv` parsed by `spec`; prints the help page and exits 0 on `--help`, prints a usage error and exits 2. */
export function benchArgs<S extends CommandSpec>(
  spec: S,
  argv: readonly string[] = Deno.args,
): ParsedArgs<S> {
  try {
    return parseArgs(argv, spec);
  } catch (e) {
    if (e instanceof HelpRequested) {
      console.log(e.text);
      Deno.exit(0);
    }
    if (e instanceof UsageError) {
      console.error(e.message);
      Deno.exit(2);
    }
    throw e;
  }
}

/** `--split auto|rows|columns` of the benchmarks that run a pool: force how it splits GEMMs (`PoolOptions.split`). */
export const SPLIT_FLAG = {
  type: "string",
  choices: ["auto", "rows", "columns"],
  default: "auto",
  description: "force the pool's GEMM split",
} as const satisfies FlagSpec;

/** `--cache DIR` of the benchmarks that build packs where the CLI does (`cacheDir`, `src/cli/common.ts`). */
export const CACHE_FLAG = {
  type: "string",
  value: "DIR",
  description: "mesp's cache (default $MESP_CACHE or ~/.cache/mesp)",
} as const satisfies FlagSpec;
