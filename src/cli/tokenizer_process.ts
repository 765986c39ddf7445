/**
 * The parent side of `tokenizer_child.ts`: encode and stream-decode through a child process, so the process
 * that holds the model never loads the tokenizer.
 *
 * @module
 */
import { denoCommand, modelReadPaths } from "./prepare.ts";

/** A tokenizer running in a child process. */
export class TokenizerProcess {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #buffer = "";
  #stderr: Promise<string>;
  /** Ids that end generation, from the model's tokenizer and generation configs. */
  eosTokenIds: number[] = [];
  /** The model's chat template (Jinja source), if any. */
  chatTemplate?: string;

  private constructor(dir: string) {
    // a module URL, not an import: this process never loads the tokenizer code
    const script = new URL("./tokenizer_child.ts", import.meta.url);
    const source = new URL("../../", script);
    // the child reads the model's tokenizer files and (lazily imported) mesp's tokenizer module; nothing else
    const read = modelReadPaths(dir);
    if (source.protocol === "file:") read.push(decodeURIComponent(source.pathname));
    const flags = [`--allow-read=${read.join(",")}`];
    if (source.protocol !== "file:") flags.push(`--allow-import=${source.host}`);
    this.#child = new Deno.Command(denoCommand(), {
      args: ["run", ...flags, script.href, dir],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** Starts the child for the model directory `dir` and waits until its tokenizer is loaded. */
  static async open(dir: string): Promise<TokenizerProcess> {
    const p = new TokenizerProcess(dir);
    const hello = await p.#receive();
    p.eosTokenIds = hello.eos;
    p.chatTemplate = hello.chatTemplate ?? undefined;
    return p;
  }

  async #receive(): Promise<{ eos: number[]; chatTemplate: string | null; ids: number[]; text: string }> {
    let nl;
    while ((nl = this.#buffer.indexOf("\n")) < 0) {
      const next = await this.#lines.next();
      if (next.done) {
        const err = (await this.#stderr).trim().split("\n").at(-1) ?? "";
        throw new Error(`the tokenizer process ended: ${err.replace(/^error: /, "") || "no reply"}`);
      }
      this.#buffer += next.value;
    }
    const line = this.#buffer.slice(0, nl);
    this.#buffer = this.#buffer.slice(nl + 1);
    return JSON.parse(line);
  }

  async #ask(req: Record<string, unknown>) {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
    return await this.#receive();
  }

  /** Token ids of `text`. */
  async encode(text: string): Promise<number[]> {
    return (await this.#ask({ op: "encode", text })).ids;
  }

  /** Feeds one generated id; resolves to the text it completes (special tokens skipped). */
  async push(id: number): Promise<string> {
    return (await this.#ask({ op: "push", id })).text;
  }

  /** Ends a completion: what is left of it. */
  async flush(): Promise<string> {
    return (await this.#ask({ op: "flush" })).text;
  }

  /** Stops the child. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.#child.status;
    await this.#stderr.catch(() => "");
  }
}
