/**
 * Module Worker entry for `tokenizeInWorker` (token_cache.ts): receives a
 * {@link TokenCacheBuildJob}, replies with the encoded cache bytes (transferred) or an error
 * message. The parent terminates the worker afterwards, releasing the tokenizer.
 *
 * @module
 */
import { buildTokenCache, type TokenCacheBuildJob, type TokenizeWorkerReply } from "./token_cache.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<TokenCacheBuildJob>) => void) | null;
  postMessage(message: TokenizeWorkerReply, transfer?: Transferable[]): void;
};

scope.onmessage = async (e) => {
  try {
    const bytes = await buildTokenCache(e.data, (progress, total) => scope.postMessage({ progress, total }));
    scope.postMessage({ ok: true, bytes }, [bytes.buffer as ArrayBuffer]);
  } catch (err) {
    scope.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
};
