/**
 * A pool worker (module Worker, started by `pool.ts`): instantiates the shared kernel module on the shared
 * memory, then runs its share of every task posted to the control block until the pool sets `quit`. It
 * never returns to its event loop, so it receives exactly one message (the {@linkcode WorkerInit}).
 *
 * @module
 */
import { type KernelExports, kernelImports } from "./kernels.ts";
import { CTL, Executor, type WorkerInit } from "./pool.ts";

interface WorkerScope {
  onmessage: ((ev: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (ev: MessageEvent) => {
  scope.onmessage = null;
  const init = ev.data as WorkerInit;
  let ex: Executor;
  try {
    const instance = new WebAssembly.Instance(init.module, kernelImports(init.memory));
    ex = new Executor(instance.exports as unknown as KernelExports, init.control, init.thread);
  } catch (err) {
    scope.postMessage({ error: String(err) });
    return;
  }
  const ctl = new Int32Array(init.control, 0, 16);
  const seen = Atomics.load(ctl, CTL.seq); // before "ready": the pool posts nothing until all are ready
  scope.postMessage({ ready: true });
  serve(ex, ctl, seen, init.spinMs);
  scope.close();
};

/** The task loop: wait for a new generation, claim and run its shares, report a share that threw. */
function serve(ex: Executor, ctl: Int32Array, seen: number, spinMs: number): void {
  for (;;) {
    let seq = Atomics.load(ctl, CTL.seq);
    if (seq === seen) {
      // poll a little: the next task usually follows within microseconds
      const until = performance.now() + spinMs;
      for (let i = 1; seq === seen; i++) {
        if ((i & 255) === 0 && performance.now() > until) break;
        seq = Atomics.load(ctl, CTL.seq);
      }
      while (seq === seen) {
        Atomics.wait(ctl, CTL.seq, seen);
        seq = Atomics.load(ctl, CTL.seq);
      }
    }
    seen = seq;
    if (Atomics.load(ctl, CTL.quit)) return;
    ex.work(seq);
    if (ex.failure !== undefined) {
      scope.postMessage({ error: String(ex.failure) });
      ex.failure = undefined;
    }
  }
}
