/**
 * Preparing a run — packing the weights and tokenizing the datasets, each once and cached — happens in a
 * child process: parsing checkpoint headers, hashing files and the tokenizer (~180 MB) would otherwise
 * count toward the peak memory of the process that trains. The parent then opens only the finished pack
 * and token caches.
 *
 * @module
 */
import { fileSource } from "../io/deno_files.ts";
import { openPack, type Pack, type PackFormat } from "../model/pack.ts";
import { decodeTokenCache } from "../data/token_cache.ts";
import type { Sequence } from "../run/evaluate.ts";

/** What to prepare. */
export interface PrepareJob {
  model: string;
  weights: PackFormat;
  cacheDir: string;
  /** Datasets to tokenize (JSONL paths). */
  data: string[];
  seqLen: number;
}

/** A prepared run: the pack and one list of sequences per dataset. */
export interface Prepared {
  pack: Pack;
  sets: Sequence[][];
}

/** Runs the preparation in a child process, forwarding its status lines to `log`, and opens the results. */
export async function prepare(job: PrepareJob, log: (m: string) => void): Promise<Prepared> {
  const child = new Deno.Command(Deno.execPath(), {
    // a script path, not an import: the parent never loads the tokenizer or checkpoint code
    args: ["run", "-A", new URL("./prepare_child.ts", import.meta.url).pathname, JSON.stringify(job)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let last = "";
  const status = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      for (const line of chunk.split("\n")) {
        if (!line) continue;
        last = line;
        log(line);
      }
    }
  })();
  const out = new Response(child.stdout).text();
  const [code] = await Promise.all([child.status, status]);
  if (!code.success) throw new Error(last.replace(/^error: /, "") || "preparing the run failed");
  const result = JSON.parse(await out) as { pack: string; sets: string[] };
  const pack = await openPack(fileSource(result.pack));
  const sets: Sequence[][] = [];
  for (const path of result.sets) {
    const cache = decodeTokenCache(await Deno.readFile(path), { name: path });
    const seqs: Sequence[] = [];
    for (let i = 0; i < cache.count; i++) seqs.push(cache.example(i));
    sets.push(seqs);
  }
  return { pack, sets };
}
