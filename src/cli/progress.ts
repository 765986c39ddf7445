/**
 * A one-line progress display for stderr: label, bar, `i/n`, percentage, rate, ETA and free-form fields
 * (`loss 2.31  mem 84.2 MB`). On a terminal the line is redrawn in place at most every `intervalMs`; when
 * stderr is a file or a pipe, plain lines are printed instead, less often, so logs stay readable.
 *
 * @module
 */

/** Extra fields shown after the standard ones, in insertion order: `name value`. */
export type ProgressFields = Record<string, string | number>;

/** Options for {@linkcode Progress}. */
export interface ProgressOptions {
  /** Number of units when done; unknown when omitted (no bar, percentage or ETA). */
  total?: number;
  /** The count already done when the clock starts (a resumed run's step): the rate and ETA leave it out. */
  start?: number;
  /** `"bytes"` shows counts as MB and the rate as MB/s; otherwise counts as integers with `unit/s`. */
  unit?: string;
  /** Minimum ms between redraws (default 100 on a terminal, 5000 for plain lines). */
  intervalMs?: number;
  /** Draw in place (default: `Deno.stderr.isTerminal()`). */
  tty?: boolean;
  /** Output function (default: write to stderr). */
  write?: (text: string) => void;
  /** Clock in ms (default `performance.now`), for tests. */
  now?: () => number;
}

const encoder = new TextEncoder();

function stderrWrite(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** Formats seconds as `42s`, `3m07s` or `2h05m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const BAR = 20;

/**
 * A progress line.
 *
 * @example
 * ```ts
 * const p = new Progress("train", { total: 200, unit: "step" });
 * for (let i = 1; i <= 200; i++) p.update(i, { loss: loss.toFixed(2) });
 * p.finish();
 * ```
 */
export class Progress {
  /** Shown first on the line. */
  readonly label: string;
  readonly #total?: number;
  readonly #unit: string;
  readonly #interval: number;
  readonly #tty: boolean;
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #start: number;
  readonly #startCount: number;
  #last = -Infinity;
  #current = 0;
  #fields: ProgressFields = {};
  #drawn = false;
  #finished = false;

  /** Starts the clock; nothing is printed until the first update. */
  constructor(label: string, options: ProgressOptions = {}) {
    this.label = label;
    this.#total = options.total;
    this.#unit = options.unit ?? "it";
    this.#tty = options.tty ?? stderrIsTerminal();
    this.#interval = options.intervalMs ?? (this.#tty ? 100 : 5000);
    this.#write = options.write ?? stderrWrite;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.#startCount = options.start ?? 0;
    this.#current = this.#startCount;
  }

  /** Sets the count (and fields, merged into the previous ones); redraws if the interval has passed. */
  update(current: number, fields?: ProgressFields): void {
    this.#current = current;
    if (fields) Object.assign(this.#fields, fields);
    // as plain lines, the last count is left to finish(), which prints it once, with the total time
    if (!this.#tty && this.#total !== undefined && current >= this.#total) return;
    const t = this.#now();
    if (t - this.#last < this.#interval) return;
    this.#last = t;
    this.#draw(false);
  }

  /** Adds `n` (default 1) to the count. */
  tick(n = 1, fields?: ProgressFields): void {
    this.update(this.#current + n, fields);
  }

  /** Prints a message on its own line without garbling the bar. */
  log(message: string): void {
    if (this.#tty && this.#drawn) this.#write("\r\x1b[K");
    this.#write(message + "\n");
    if (this.#tty && this.#drawn && !this.#finished) this.#draw(false);
  }

  /** Draws the final state (always) and ends the line; later updates are ignored. */
  finish(fields?: ProgressFields): void {
    if (this.#finished) return;
    if (fields) Object.assign(this.#fields, fields);
    this.#draw(true);
    this.#finished = true;
  }

  /** The current line's text (without control characters). */
  line(final = false): string {
    const elapsed = (this.#now() - this.#start) / 1000;
    const bytes = this.#unit === "bytes";
    const count = (n: number) => (bytes ? (n / 1e6).toFixed(1) : String(Math.round(n)));
    const parts = [this.label];
    const total = this.#total;
    if (total !== undefined && total > 0) {
      const frac = Math.min(1, Math.max(0, this.#current / total));
      const filled = Math.round(frac * BAR);
      parts.push(`[${"#".repeat(filled)}${"-".repeat(BAR - filled)}]`);
      parts.push(`${count(this.#current)}/${count(total)}${bytes ? " MB" : ""}`);
      parts.push(`${(frac * 100).toFixed(frac < 0.1 ? 1 : 0)}%`);
    } else {
      parts.push(`${count(this.#current)}${bytes ? " MB" : ""}`);
    }
    const done = this.#current - this.#startCount;
    const rate = elapsed > 0 ? done / elapsed : 0;
    if (elapsed > 0 && done > 0) {
      const r = bytes ? (rate / 1e6).toFixed(1) : rate >= 100 ? rate.toFixed(0) : rate.toPrecision(3);
      parts.push(`${r} ${bytes ? "MB" : this.#unit}/s`);
    }
    if (final) parts.push(formatDuration(elapsed));
    else if (total !== undefined && rate > 0 && this.#current < total) {
      parts.push(`ETA ${formatDuration((total - this.#current) / rate)}`);
    }
    for (const [k, v] of Object.entries(this.#fields)) parts.push(`${k} ${v}`);
    return parts.join("  ");
  }

  #draw(final: boolean): void {
    if (this.#finished) return;
    const text = this.line(final);
    if (this.#tty) this.#write(`\r${text}\x1b[K${final ? "\n" : ""}`);
    else this.#write(text + "\n");
    this.#drawn = true;
  }
}
