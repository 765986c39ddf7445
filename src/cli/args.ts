/**
 * A small declarative command-line flag parser shared by every `mesp` command. A command describes its
 * flags once (type, default, required, choices, bounds, help text); {@linkcode parseArgs} turns `argv` into
 * a typed object and {@linkcode helpText} prints the `--help` page from the same description.
 *
 * Accepted syntax: `--name value`, `--name=value`, boolean `--name` / `--no-name` / `--name=true|false`,
 * lists as `--targets q,k,v` or repeated `--targets q --targets k`, `--` to end flags, `-h` / `--help`.
 * Flag names are the camelCase keys in kebab-case: key `shardSize` is `--shard-size`.
 *
 * @example
 * ```ts
 * const SPEC = {
 *   name: "make-model",
 *   description: "write a random checkpoint",
 *   flags: {
 *     out: { type: "string", value: "DIR", required: true, description: "output directory" },
 *     seed: { type: "integer", default: 0, min: 0, description: "PRNG seed" },
 *   },
 * } as const satisfies CommandSpec;
 * const args = parseArgs(["--out", "m", "--seed=3"], SPEC); // { out: "m", seed: 3, _: [] }
 * ```
 *
 * @module
 */
import { parseSize } from "../runtime/arena.ts";
import { nearest } from "../util/nearest.ts";

/** Value kinds: text, float, integer, on/off, byte size (`100MB`, `1.5GiB`), comma-separated list. */
export type FlagType = "string" | "number" | "integer" | "boolean" | "size" | "list";

/** One flag of a command. */
export interface FlagSpec {
  /** Value kind. */
  readonly type: FlagType;
  /** One line of help. */
  readonly description: string;
  /** Placeholder shown in help and usage, e.g. `DIR` (default derived from the type). */
  readonly value?: string;
  /** The flag must be given. */
  readonly required?: boolean;
  /** Value when the flag is absent (a size may be given as text, e.g. `"5GB"`). */
  readonly default?: string | number | boolean | readonly string[];
  /** Allowed values (of a string, or of each list item). */
  readonly choices?: readonly string[];
  /** Smallest allowed number / size. */
  readonly min?: number;
  /** Largest allowed number / size. */
  readonly max?: number;
  /** The number must be larger than this (a bound that itself cannot work, e.g. ε = 0). */
  readonly greaterThan?: number;
  /** The number must be smaller than this (e.g. β = 1). */
  readonly lessThan?: number;
}

/** A command: its name, one-line description and flags. */
export interface CommandSpec {
  /** Command name as typed, e.g. `make-model`. */
  readonly name: string;
  /** One line shown in help and in the command list. */
  readonly description: string;
  /** Flags by camelCase key. */
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** Placeholder of positional arguments (e.g. `FILE...`); without it positionals are an error. */
  readonly positionals?: string;
  /** Program name in the usage line (default `mesp`). */
  readonly program?: string;
  /** Extra help text printed after the flags (examples, notes). */
  readonly epilog?: string;
}

type ValueOf<F extends FlagSpec> = F["type"] extends "boolean" ? boolean
  : F["type"] extends "number" | "integer" | "size" ? number
  : F["type"] extends "list" ? (F extends { choices: readonly (infer C)[] } ? C[] : string[])
  : F extends { choices: readonly (infer C)[] } ? C
  : string;

type AlwaysSet<F extends FlagSpec> = F extends { required: true } ? true
  : F extends { default: unknown } ? true
  : F["type"] extends "boolean" | "list" ? true
  : false;

/**
 * The parsed flags of a command: required flags, flags with defaults, booleans (default false) and lists
 * (default empty) are always set; other flags may be `undefined`. `_` holds the positional arguments.
 */
export type ParsedArgs<S extends CommandSpec> =
  & {
    -readonly [K in keyof S["flags"]]: AlwaysSet<S["flags"][K]> extends true ? ValueOf<S["flags"][K]>
      : ValueOf<S["flags"][K]> | undefined;
  }
  & { _: string[] };

/** A command-line mistake; the message names the flag and ends with the usage line. */
export class UsageError extends Error {
  /** @param message what is wrong, already including the usage line */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Thrown by {@linkcode parseArgs} for `-h` / `--help`: the caller prints `text` and exits with 0. */
export class HelpRequested extends Error {
  /** The help page. */
  readonly text: string;
  /** @param text the help page to print */
  constructor(text: string) {
    super("help requested");
    this.name = "HelpRequested";
    this.text = text;
  }
}

/** `shardSize` → `shard-size`. */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The warning for flag `key` given but of no effect: `--top-p is ignored: …`. */
export function ignoredFlag(key: string, why: string): string {
  return `--${kebabCase(key)} is ignored: ${why}`;
}

function placeholder(f: FlagSpec): string {
  if (f.value) return f.value;
  if (f.choices && f.type === "string" && f.choices.join("|").length <= 24) return f.choices.join("|");
  switch (f.type) {
    case "number":
      return "X";
    case "integer":
      return "N";
    case "size":
      return "SIZE";
    case "list":
      return "A,B,...";
    default:
      return "VALUE";
  }
}

/** `usage: mesp make-model --preset NAME --out DIR [options]`. */
export function usageLine(spec: CommandSpec): string {
  const parts = [`usage: ${spec.program ?? "mesp"} ${spec.name}`];
  let optional = false;
  for (const [key, f] of Object.entries(spec.flags)) {
    if (f.required) parts.push(`--${kebabCase(key)} ${placeholder(f)}`);
    else optional = true;
  }
  if (optional) parts.push("[options]");
  if (spec.positionals) parts.push(spec.positionals);
  return parts.join(" ");
}

function showDefault(f: FlagSpec): string | undefined {
  if (f.default === undefined || f.default === false) return undefined;
  if (Array.isArray(f.default)) return f.default.length ? f.default.join(",") : undefined;
  return String(f.default);
}

/** The `--help` page: description, usage line, one line per flag, epilog. */
export function helpText(spec: CommandSpec): string {
  const rows: [string, string][] = [];
  for (const [key, f] of Object.entries(spec.flags)) {
    const name = kebabCase(key);
    const left = f.type === "boolean" ? `--${name}` : `--${name} ${placeholder(f)}`;
    const notes: string[] = [];
    if (f.choices && placeholder(f) !== f.choices.join("|")) notes.push(`one of ${f.choices.join(", ")}`);
    if (f.required) notes.push("required");
    const d = showDefault(f);
    if (d !== undefined) notes.push(`default ${d}`);
    rows.push([left, f.description + (notes.length ? ` (${notes.join("; ")})` : "")]);
  }
  rows.push(["-h, --help", "show this help"]);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  const lines = [
    `${spec.program ?? "mesp"} ${spec.name}: ${spec.description}`,
    "",
    usageLine(spec),
    "",
    "flags:",
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`),
  ];
  if (spec.epilog) lines.push("", spec.epilog.trimEnd());
  return lines.join("\n");
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Parses `argv` against `spec`. Throws {@linkcode UsageError} (naming the flag, with the usage line) for
 * unknown flags, missing or malformed values, values outside `choices`/`min`/`max`, a non-list flag given
 * twice, unexpected positionals and missing required flags; throws {@linkcode HelpRequested} for `--help`.
 */
export function parseArgs<S extends CommandSpec>(argv: readonly string[], spec: S): ParsedArgs<S> {
  const usage = usageLine(spec);
  const fail = (message: string): never => {
    throw new UsageError(`${message}\n${usage}\n(see --help)`);
  };
  const byName = new Map<string, string>();
  for (const key of Object.keys(spec.flags)) byName.set(kebabCase(key), key);

  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  // --help wins over any mistake elsewhere on the line
  const end = argv.indexOf("--");
  if (argv.slice(0, end < 0 ? argv.length : end).some((a) => a === "-h" || a === "--help")) {
    throw new HelpRequested(helpText(spec));
  }

  const convert = (key: string, f: FlagSpec, raw: string): unknown => {
    const flag = `--${kebabCase(key)}`;
    const bounded = (n: number): number => {
      if (f.min !== undefined && n < f.min) fail(`${flag}: must be ≥ ${f.min}, got ${raw}`);
      if (f.max !== undefined && n > f.max) fail(`${flag}: must be ≤ ${f.max}, got ${raw}`);
      if (f.greaterThan !== undefined && !(n > f.greaterThan)) {
        fail(`${flag}: must be > ${f.greaterThan}, got ${raw}`);
      }
      if (f.lessThan !== undefined && !(n < f.lessThan)) fail(`${flag}: must be < ${f.lessThan}, got ${raw}`);
      return n;
    };
    const checkChoice = (v: string): string => {
      if (f.choices && !f.choices.includes(v)) {
        fail(`${flag}: expected one of ${f.choices.join(", ")}, got ${JSON.stringify(v)}`);
      }
      return v;
    };
    switch (f.type) {
      case "number": {
        const n = Number(raw);
        if (!NUMBER.test(raw.trim()) || !Number.isFinite(n)) {
          fail(`${flag}: expected a number, got ${JSON.stringify(raw)}`);
        }
        return bounded(n);
      }
      case "integer": {
        const n = Number(raw);
        if (!NUMBER.test(raw.trim()) || !Number.isSafeInteger(n)) {
          fail(`${flag}: expected an integer, got ${JSON.stringify(raw)}`);
        }
        return bounded(n);
      }
      case "size": {
        let n = 0;
        try {
          n = parseSize(raw);
        } catch (err) {
          fail(`${flag}: ${(err as Error).message}`);
        }
        return bounded(n);
      }
      case "list": {
        const items = raw.split(",").map((s) => s.trim());
        if (items.some((s) => s === "")) fail(`${flag}: empty item in list ${JSON.stringify(raw)}`);
        return items.map(checkChoice);
      }
      case "boolean":
        return raw === "true" ? true : raw === "false" ? false : fail(
          `${flag}: a boolean flag takes no value (or =true / =false), got ${JSON.stringify(raw)}`,
        );
      default:
        // an unset shell variable must not become the current directory, or "/" once a name is appended
        if (raw.trim() === "" && (f.value === "DIR" || f.value === "FILE" || f.value === "PATH")) {
          fail(`${flag}: empty path (an unset variable?)`);
        }
        return checkChoice(raw);
    }
  };

  const set = (key: string, value: unknown) => {
    const f = spec.flags[key];
    if (f.type === "list") {
      values[key] = [...((values[key] as string[] | undefined) ?? []), ...(value as string[])];
      return;
    }
    if (key in values) fail(`--${kebabCase(key)} given more than once`);
    values[key] = value;
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      let key = byName.get(name);
      if (key === undefined && name.startsWith("no-") && byName.has(name.slice(3))) {
        const target = byName.get(name.slice(3))!;
        if (spec.flags[target].type !== "boolean") {
          fail(`--${name}: --${name.slice(3)} is not a boolean flag`);
        }
        if (inline !== undefined) fail(`--${name} takes no value, got ${JSON.stringify(inline)}`);
        set(target, false);
        continue;
      }
      if (key === undefined) {
        const near = nearest(name, byName.keys());
        fail(`unknown flag --${name}${near ? ` (did you mean --${near}?)` : ""}`);
      }
      key = key!;
      const f = spec.flags[key];
      if (f.type === "boolean") {
        set(key, inline === undefined ? true : convert(key, f, inline));
        continue;
      }
      let raw = inline;
      if (raw === undefined) {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith("--")) fail(`--${name} needs a value (${placeholder(f)})`);
        raw = next;
        i++;
      }
      set(key, convert(key, f, raw!));
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1 && !NUMBER.test(arg)) fail(`unknown flag ${arg}`);
    if (!spec.positionals) fail(`unexpected argument ${JSON.stringify(arg)}`);
    positionals.push(arg);
  }

  const missing = Object.entries(spec.flags).filter(([k, f]) => f.required && !(k in values));
  if (missing.length) {
    const names = missing.map(([k]) => `--${kebabCase(k)}`).join(", ");
    fail(`missing required flag${missing.length > 1 ? "s" : ""} ${names}`);
  }
  for (const [key, f] of Object.entries(spec.flags)) {
    if (key in values) continue;
    if (f.default !== undefined) {
      values[key] = f.type === "size" && typeof f.default === "string"
        ? parseSize(f.default)
        : Array.isArray(f.default)
        ? [...f.default]
        : f.default;
    } else if (f.type === "boolean") values[key] = false;
    else if (f.type === "list") values[key] = [];
    else values[key] = undefined;
  }
  values._ = positionals;
  return values as ParsedArgs<S>;
}

/**
 * The keys of the flags written out in `argv` (as opposed to defaults), e.g. to tell "--lr 2e-4" from an
 * absent --lr that defaults to 2e-4.
 */
export function givenFlags(argv: readonly string[], spec: CommandSpec): Set<string> {
  const byName = new Map<string, string>();
  for (const key of Object.keys(spec.flags)) byName.set(kebabCase(key), key);
  const given = new Set<string>();
  for (const arg of argv) {
    if (arg === "--") break;
    if (!arg.startsWith("--")) continue;
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const key = byName.get(name) ?? (name.startsWith("no-") ? byName.get(name.slice(3)) : undefined);
    if (key !== undefined) given.add(key);
  }
  return given;
}
