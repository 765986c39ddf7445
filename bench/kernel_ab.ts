/**
 * Two builds of the kernels side by side, in every JavaScript engine at hand: the projection GEMMs of the 0.5B
 * (x·Wᵀ and G·W, f32, T = 256) of `A` and `B` (two `mesp_relaxed.wasm` files, e.g. `git show
 * OLD:wasm/mesp_relaxed.wasm > /tmp/old.wasm`), alternating round by round, in Deno, in headless Chromium
 * (`bench/chromium.ts`) and in Node when `node` is on the PATH. The engines differ where it matters here: V8 in
 * Deno bounds-checks every wasm load (Deno installs no trap handler), Chromium and Node do not.
 *
 *   git show HEAD~1:wasm/mesp_relaxed.wasm > /tmp/old.wasm
 *   deno run --lock=deno.dev.lock -A bench/kernel_ab.ts --a /tmp/old.wasm --b wasm/mesp_relaxed.wasm --rounds 8
 *
 * Printed per engine and shape: the median GFLOP/s of each build (7 windows of 150 ms per round, median
 * window) and the median over rounds of B/A measured in the same round. One thread; pin it (`taskset -c 1`)
 * on a shared machine. `--reps N` instead runs each shape N times with `--a` in Deno only and prints nothing
 * else (`--b` is then not read): for instruction counts under `valgrind --tool=callgrind`.
 *
 * @module
 */
import { cpuModel, median } from "./measure.ts";
import { launchChromium } from "./chromium.ts";
import { benchArgs } from "./args.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const SPEC = {
  name: "bench/kernel_ab.ts",
  program: "deno run -A",
  description: "two kernel builds' projection GEMMs side by side in Deno, Chromium and Node",
  flags: {
    a: { type: "string", value: "FILE", required: true, description: "the first mesp_relaxed.wasm" },
    b: { type: "string", value: "FILE", required: true, description: "the second mesp_relaxed.wasm" },
    rounds: { type: "integer", default: 4, min: 1, description: "alternating rounds" },
    reps: { type: "integer", min: 1, description: "only run each shape this often with --a, in Deno" },
  },
} as const satisfies CommandSpec;
const args = benchArgs(SPEC);

/** op (0 NT, 1 NN), M, N, K and a name, as bench:gemm names them. */
const SHAPES: [number, number, number, number, string][] = [
  [0, 256, 896, 896, "x·Wᵀ q/o"],
  [1, 256, 896, 896, "G·W q/o"],
  [0, 256, 4864, 896, "x·Wᵀ gate/up"],
  [1, 256, 896, 4864, "G·W gate/up"],
];

/**
 * GFLOP/s of `shapes` with the kernels `bytes`, or with `reps` just that many calls of each. Self-contained
 * (no imports, no closure) so that the same source runs in Deno, in a page and in Node.
 */
async function measure(bytes: Uint8Array<ArrayBuffer>, shapes: number[][], reps?: number): Promise<number[]> {
  const mod = await WebAssembly.compile(bytes);
  const imports: Record<string, Record<string, () => void>> = {};
  for (const i of WebAssembly.Module.imports(mod)) {
    (imports[i.module] ??= {})[i.name] = () => {
      throw new Error(`kernel import ${i.name} called`);
    };
  }
  // deno-lint-ignore no-explicit-any
  const e = (await WebAssembly.instantiate(mod, imports)).exports as any;
  const out: number[] = [];
  for (const [op, m, n, k] of shapes) {
    const a = 1 << 20, b = a + 4 * m * k, c = b + 4 * n * k, s = c + 4 * m * n;
    const pages = Math.ceil((s + e.gemm_scratch_bytes()) / 65536) - e.memory.buffer.byteLength / 65536;
    if (pages > 0) e.memory.grow(pages);
    const f = new Float32Array(e.memory.buffer);
    for (let i = 0; i < m * k; i++) f[a / 4 + i] = ((i * 7) % 13) * 0.1 - 0.6;
    for (let i = 0; i < n * k; i++) f[b / 4 + i] = ((i * 5) % 11) * 0.1 - 0.5;
    // gemm(op, m0, m1, n0, n1, K, a, lda, dtype f32, b, ldb, scales, biases, c, ldc, alpha, accumulate, scratch)
    const run = () => e.gemm(op, 0, m, 0, n, k, a, k, 0, b, op === 0 ? k : n, 0, 0, c, n, 1, 0, s);
    if (reps !== undefined) {
      for (let i = 0; i < reps; i++) run();
      continue;
    }
    for (let i = 0; i < 5; i++) run(); // tier-up
    const windows: number[] = [];
    for (let w = 0; w < 7; w++) {
      const t0 = performance.now();
      let calls = 0;
      while (performance.now() - t0 < 150) run(), calls++;
      windows.push((2 * m * n * k * calls) / ((performance.now() - t0) / 1000) / 1e9);
    }
    out.push(windows.sort((x, y) => x - y)[3]);
  }
  return out;
}

const bytesA = await Deno.readFile(args.a);
const shapes = SHAPES.map(([op, m, n, k]) => [op, m, n, k]);
if (args.reps !== undefined) {
  await measure(bytesA, shapes, args.reps);
  Deno.exit(0);
}
const bytesB = await Deno.readFile(args.b);

type Engine = {
  name: string;
  run(bytes: Uint8Array<ArrayBuffer>): Promise<number[]>;
  close?(): Promise<void>;
};
const engines: Engine[] = [{ name: "Deno", run: (bytes) => measure(bytes, shapes) }];
try {
  const browser = await launchChromium({ prefix: "mesp-kernel-ab-" });
  const tab = await browser.context.newPage();
  await tab.goto("about:blank");
  const source = measure.toString();
  engines.push({
    name: "Chromium",
    run: (bytes) =>
      tab.evaluate(
        ({ source, bytes, shapes }) => (0, eval)(`(${source})`)(new Uint8Array(bytes), shapes),
        { source, bytes: Array.from(bytes), shapes },
      ),
    close: () => browser.close(),
  });
} catch (err) {
  console.error(`Chromium skipped: ${(err as Error).message.split("\n")[0]}`);
}
const node = await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output().catch(() =>
  null
);
if (node?.success) {
  const version = new TextDecoder().decode(node.stdout).trim();
  const dir = await Deno.makeTempDir({ prefix: "mesp-kernel-ab-" });
  const script = `${dir}/measure.mjs`;
  await Deno.writeTextFile(
    script,
    `const measure = ${measure.toString()};\n` +
      `const { readFileSync } = await import("node:fs");\n` +
      `console.log(JSON.stringify(await measure(readFileSync(process.argv[2]), ${
        JSON.stringify(shapes)
      })));\n`,
  );
  engines.push({
    name: `Node ${version}`,
    async run(bytes) {
      const file = `${dir}/kernels.wasm`;
      await Deno.writeFile(file, bytes);
      // relaxed SIMD is behind a flag before V8 11.4 (Node 20)
      const o = await new Deno.Command("node", {
        args: ["--experimental-wasm-relaxed-simd", script, file],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!o.success) throw new Error(`node: ${new TextDecoder().decode(o.stderr)}`);
      return JSON.parse(new TextDecoder().decode(o.stdout));
    },
    close: () => Deno.remove(dir, { recursive: true }),
  });
} else console.error("Node skipped: no node on the PATH");

for (const engine of engines) {
  const a: number[][] = [], b: number[][] = [];
  try {
    for (let r = 0; r < args.rounds; r++) {
      // alternate which goes first, so drift hits both
      if (r % 2) b.push(await engine.run(bytesB)), a.push(await engine.run(bytesA));
      else a.push(await engine.run(bytesA)), b.push(await engine.run(bytesB));
    }
  } finally {
    await engine.close?.();
  }
  console.log(
    `\n${engine.name}: ${args.rounds} rounds, GFLOP/s (median) and B/A (median of same-round ratios)`,
  );
  console.log("| shape | M×N×K | A | B | B/A |\n| --- | --- | --: | --: | --: |");
  SHAPES.forEach(([, m, n, k, what], j) => {
    const ratio = median(a.map((x, r) => b[r][j] / x[j]));
    console.log(
      `| ${what} | ${m}×${n}×${k} | ${median(a.map((x) => x[j])).toFixed(1)} | ${
        median(b.map((x) => x[j])).toFixed(1)
      } | ${ratio.toFixed(2)} |`,
    );
  });
}
console.log(`\nA = ${args.a}, B = ${args.b}; CPU: ${cpuModel()}`);
