// What the tests' Cloudflare workers (workerd, and miniflare's for R2) start with: mesp's kernels as module
// imports (workerd cannot compile wasm from bytes), and float bits for exact JSON.

/** The worker's first lines: `kernels` for mesp's `kernels` option, and `bits(float32Array)`. */
export const WORKER_PRELUDE = `import relaxed from "./mesp_relaxed.wasm";
import simd from "./mesp_simd.wasm";

const kernels = { modules: { "mesp_relaxed.wasm": relaxed, "mesp_simd.wasm": simd } };
const bits = (p) => Array.from(new Uint32Array(p.buffer, p.byteOffset, p.length));
`;
