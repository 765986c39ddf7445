/**
 * The kernel module's exports as the host sees them (docs/architecture.md, "The kernel interface"). Pointers
 * (`usize`) are byte offsets into `memory`; shapes and aliasing rules are documented at each kernel in
 * `asm/kernels/`.
 *
 * @module
 */
/** The raw exports of the kernel module, as AssemblyScript declares them. */
export interface KernelExports {
	/** The module's linear memory (the threads builds import it, shared). */
	memory: WebAssembly.Memory;
	/** asm/kernels/index.ts: no parameters → usize */
	heap_base(): number;
	/**
	 * asm/kernels/gemm.ts: op i32, m0 i32, m1 i32, n0 i32, n1 i32, K i32, a usize, lda i32, bDtype i32,
	 * b usize, ldb i32, bScales usize, bBiases usize, c usize, ldc i32, alpha f32, accumulate i32,
	 * scratch usize
	 */
	gemm(op: number, m0: number, m1: number, n0: number, n1: number, K: number, a: number, lda: number, bDtype: number, b: number, ldb: number, bScales: number, bBiases: number, c: number, ldc: number, alpha: number, accumulate: number, scratch: number): void;
	/**
	 * asm/kernels/gemm.ts: m0 i32, m1 i32, n0 i32, n1 i32, K i32, a usize, lda i32, b usize, ldb i32, c usize,
	 * ldc i32, alpha f32, accumulate i32
	 */
	gemm_dot(m0: number, m1: number, n0: number, n1: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, alpha: number, accumulate: number): void;
	/** asm/kernels/gemm.ts: no parameters → i32 */
	gemm_scratch_bytes(): number;
	/** asm/kernels/gemm.ts: no parameters → i32 */
	gemm_tile_columns(): number;
	/** asm/kernels/gemm.ts: no parameters → i32 */
	gemm_tile_rows(): number;
	/**
	 * asm/kernels/dtype.ts: dtype i32, w usize, ld i32, scales usize, biases usize, row i32, col0 i32, len i32,
	 * dst usize
	 */
	decode_row(dtype: number, w: number, ld: number, scales: number, biases: number, row: number, col0: number, len: number, dst: number): void;
	/**
	 * asm/kernels/norm.ts: y usize, rstd usize, x usize, w usize, d i32, ldX i32, ldY i32, eps f32, r0 i32,
	 * r1 i32
	 */
	rmsnorm_forward(y: number, rstd: number, x: number, w: number, d: number, ldX: number, ldY: number, eps: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/norm.ts: dx usize, dy usize, x usize, w usize, rstd usize, d i32, ldDx i32, ldDy i32,
	 * ldX i32, accumulate i32, r0 i32, r1 i32
	 */
	rmsnorm_backward(dx: number, dy: number, x: number, w: number, rstd: number, d: number, ldDx: number, ldDy: number, ldX: number, accumulate: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/rope.ts: x usize, cos usize, sin usize, nHeads i32, headDim i32, ld i32, pos0 i32, r0 i32,
	 * r1 i32
	 */
	rope_forward(x: number, cos: number, sin: number, nHeads: number, headDim: number, ld: number, pos0: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/rope.ts: dx usize, cos usize, sin usize, nHeads i32, headDim i32, ld i32, pos0 i32, r0 i32,
	 * r1 i32
	 */
	rope_backward(dx: number, cos: number, sin: number, nHeads: number, headDim: number, ld: number, pos0: number, r0: number, r1: number): void;
	/** asm/kernels/softmax.ts: p usize, s usize, nCols i32, ld i32, scale f32, qPos0 i32, r0 i32, r1 i32 */
	softmax_causal_forward(p: number, s: number, nCols: number, ld: number, scale: number, qPos0: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/softmax.ts: ds usize, p usize, dp usize, nCols i32, ld i32, scale f32, qPos0 i32, r0 i32,
	 * r1 i32
	 */
	softmax_causal_backward(ds: number, p: number, dp: number, nCols: number, ld: number, scale: number, qPos0: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/activation.ts: m usize, g usize, u usize, nCols i32, ldM i32, ldG i32, ldU i32, r0 i32,
	 * r1 i32
	 */
	swiglu_forward(m: number, g: number, u: number, nCols: number, ldM: number, ldG: number, ldU: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/activation.ts: dg usize, du usize, dm usize, g usize, u usize, nCols i32, ldDg i32, ldDu i32,
	 * ldDm i32, ldG i32, ldU i32, r0 i32, r1 i32
	 */
	swiglu_backward(dg: number, du: number, dm: number, g: number, u: number, nCols: number, ldDg: number, ldDu: number, ldDm: number, ldG: number, ldU: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/loss.ts: logits usize, vc i32, ld i32, v0 i32, targets usize, rowMax usize, rowSum usize,
	 * targetLogit usize, first i32, r0 i32, r1 i32
	 */
	ce_chunk_forward(logits: number, vc: number, ld: number, v0: number, targets: number, rowMax: number, rowSum: number, targetLogit: number, first: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/loss.ts: loss usize, logsum usize, rowMax usize, rowSum usize, targetLogit usize, r0 i32,
	 * r1 i32
	 */
	ce_finish(loss: number, logsum: number, rowMax: number, rowSum: number, targetLogit: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/loss.ts: logits usize, vc i32, ld i32, v0 i32, targets usize, rowMax usize, rowSum usize,
	 * targetLogit usize, rowWeight usize, acc usize, ldAcc i32, d i32, first i32, r0 i32, r1 i32
	 */
	ce_chunk_fused(logits: number, vc: number, ld: number, v0: number, targets: number, rowMax: number, rowSum: number, targetLogit: number, rowWeight: number, acc: number, ldAcc: number, d: number, first: number, r0: number, r1: number): void;
	/**
	 * asm/kernels/loss.ts: loss usize, logsum usize, rowMax usize, rowSum usize, targetLogit usize,
	 * rowWeight usize, acc usize, ldAcc i32, d i32, r0 i32, r1 i32
	 */
	ce_fused_finish(loss: number, logsum: number, rowMax: number, rowSum: number, targetLogit: number, rowWeight: number, acc: number, ldAcc: number, d: number, r0: number, r1: number): void;
	/** asm/kernels/elementwise.ts: y usize, alpha f32, x usize, n i32 */
	axpy(y: number, alpha: number, x: number, n: number): void;
	/** asm/kernels/elementwise.ts: x usize, alpha f32, n i32 */
	scale(x: number, alpha: number, n: number): void;
	/** asm/kernels/elementwise.ts: x usize, n i32 → f64 */
	sum_squares(x: number, n: number): number;
	/** asm/kernels/elementwise.ts: dst usize, src usize, n i32 */
	f32_to_bf16(dst: number, src: number, n: number): void;
	/** asm/kernels/math.ts: y usize, x usize, n i32 */
	exp_array(y: number, x: number, n: number): void;
	/** asm/kernels/math.ts: y usize, x usize, n i32 */
	log_array(y: number, x: number, n: number): void;
	/** asm/kernels/optim.ts: p usize, g usize, n i32, lr f64, weightDecay f64 */
	sgd_update(p: number, g: number, n: number, lr: number, weightDecay: number): void;
	/**
	 * asm/kernels/optim.ts: p usize, g usize, m usize, v usize, n i32, lr f64, beta1 f64, beta2 f64, eps f64,
	 * weightDecay f64, biasC1 f64, biasC2 f64
	 */
	adamw_update(p: number, g: number, m: number, v: number, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, biasC1: number, biasC2: number): void;
	/** asm/kernels/rng.ts: out usize, n i32, seed u32, offset u32 */
	normal_fill(out: number, n: number, seed: number, offset: number): void;
	/** asm/kernels/rng.ts: p usize, n i32, seed u32, offset u32, eps f32 */
	zo_perturb(p: number, n: number, seed: number, offset: number, eps: number): void;
	/** asm/kernels/rng.ts: p usize, n i32, seed u32, offset u32, coeff f32, lr f32, weightDecay f32 */
	zo_update(p: number, n: number, seed: number, offset: number, coeff: number, lr: number, weightDecay: number): void;
}
/** A compiled flavour of the kernels, in the order they are preferred. */
export type Variant = "relaxed" | "simd";
/** All variants, fastest first. */
export declare const VARIANTS: readonly Variant[];
/** Weight element types understood by the kernels (codes shared with `asm/kernels/dtype.ts`). */
export declare const DTYPE: {
	readonly f32: 0;
	readonly f16: 1;
	readonly bf16: 2;
	readonly q8: 3;
	readonly q4: 4;
};
/** Name of a weight element type. */
export type WeightDtype = keyof typeof DTYPE;
/** A loaded kernel module. */
export interface Kernels {
	readonly variant: Variant;
	readonly module: WebAssembly.Module;
	readonly memory: WebAssembly.Memory;
	readonly exports: KernelExports;
	/**
	 * Whether this is a threads build on a shared `WebAssembly.Memory` (workers can instantiate `module` on
	 * `memory`; see `pool.ts`). False for the single-thread builds.
	 */
	readonly shared: boolean;
}
/** The kernels' wasm files: one per variant, and one threads build per variant. */
export declare const KERNEL_FILES: readonly [
	"mesp_relaxed.wasm",
	"mesp_simd.wasm",
	"mesp_relaxed_threads.wasm",
	"mesp_simd_threads.wasm"
];
/** Name of one of the {@linkcode KERNEL_FILES}. */
export type KernelFile = typeof KERNEL_FILES[number];
/**
 * Where the kernels and the pool worker are: the `kernels` option of `train`, `evaluate`, `generate`,
 * `computeGradients` and `Engine.create`, and part of {@linkcode LoadKernelsOptions}. By default both are
 * found next to mesp's own modules (`wasm/` and the worker beside `mod.ts`, or beside `dist/mesp.js`),
 * wherever they are hosted.
 */
export interface KernelLocation {
	/**
	 * Base URL of the `.wasm` files: their folder, or any file in it (default: the `wasm/` folder that ships
	 * with this module). Relative to the page or worker; a last segment without a dot is taken as a folder.
	 */
	wasmBase?: string | URL;
	/**
	 * Precompiled modules by file name, e.g. `{ "mesp_simd.wasm": simdModule }` (a runtime that cannot compile
	 * wasm from bytes, such as Cloudflare's workerd, hands them in as module imports). When given, nothing is
	 * fetched or compiled: a variant without a module here is skipped.
	 */
	modules?: Partial<Record<KernelFile, WebAssembly.Module>>;
	/** URL of the pool worker module (default: the one that ships with this module). */
	workerUrl?: string | URL;
}
/** Options for {@linkcode loadKernels}. */
export interface LoadKernelsOptions extends KernelLocation {
	/** Force a variant instead of picking the fastest valid one. */
	variant?: Variant;
	/**
	 * Load the threads build on a shared memory when this runtime can run a pool (`SharedArrayBuffer`, module
	 * `Worker`s, and the build validates); otherwise the single-thread build is loaded. `Kernels.shared` says
	 * which one it was.
	 */
	shared?: boolean;
	/**
	 * With `shared`: give the memory exactly this size (rounded up to 64 KiB pages), never to grow. The module's
	 * memory limits are rewritten to min = max before compiling, which lets V8 bounds-check against a constant:
	 * on a growable shared memory it reloads the size at every access, and the GEMM runs 25–30 % slower
	 * (measured, Deno 2.9, which has no trap handler and checks every access). Falls back to the single-thread
	 * build when a memory this large cannot be had. (A precompiled module keeps its limits; the memory is
	 * still fixed at this size.)
	 */
	memoryBytes?: number;
}
/**
 * Instantiates the kernel module. Each call returns a fresh instance with its own memory; the compiled
 * module is cached. With `shared`, the threads build is preferred (see {@linkcode LoadKernelsOptions}).
 */
export declare function loadKernels(options?: LoadKernelsOptions): Promise<Kernels>;
/** One region of a plan, before placement. */
export interface RegionSpec {
	/** Unique name, e.g. `"layer.ckpt"` or `"gemm.scratch"`. */
	name: string;
	/** Size in bytes. */
	bytes: number;
	/** Alignment in bytes (power of two); default 64. */
	align?: number;
	/** What the region holds, shown in the plan table. */
	purpose?: string;
}
/** A region with its place in linear memory. */
export interface Region extends Required<RegionSpec> {
	/** Byte offset in linear memory. */
	offset: number;
}
/** A laid-out plan: regions in order, and where they end. */
export interface MemoryPlan {
	readonly regions: readonly Region[];
	/** First byte of the arena (after the kernel module's static data). */
	readonly base: number;
	/** One past the last byte used, including the tail guard. */
	readonly end: number;
	/** Bytes of the arena itself (`end - base`). */
	readonly bytes: number;
}
/** Lays out regions in the order given. Throws on duplicate names, negative sizes or bad alignment. */
export declare function planMemory(specs: readonly RegionSpec[], options?: {
	base?: number;
}): MemoryPlan;
/** Formats a byte count as MB (10^6 bytes) with one decimal, the unit every report of mesp uses. */
export declare function formatMB(bytes: number): string;
/** Parses sizes like `100MB`, `1.5GB`, `512MiB`, `300m` or a plain byte count. */
export declare function parseSize(text: string): number;
/** The plan as an aligned text table, largest regions first, with the total. */
export declare function formatPlan(plan: MemoryPlan, options?: {
	extra?: {
		name: string;
		bytes: number;
		purpose: string;
	}[];
}): string;
/** Thrown when a plan does not fit the memory budget; carries the plan. */
export declare class PlanTooLargeError extends Error {
	/** The plan that did not fit. */
	readonly plan: MemoryPlan;
	/** The budget in bytes. */
	readonly budget: number;
	constructor(plan: MemoryPlan, budget: number, needed: number, table: string);
}
/** Options for {@linkcode Arena.create}. */
export interface ArenaOptions {
	/** Refuse plans whose arena is larger than this many bytes. */
	budget?: number;
}
/** Named views into one kernel module's memory, grown once to a plan. */
export declare class Arena {
	#private;
	/** The kernels whose memory this arena lays out. */
	readonly kernels: Kernels;
	/** The placed plan. */
	readonly plan: MemoryPlan;
	private constructor();
	/** Lays out `specs` after the module's static data, checks the budget, and grows memory once. */
	static create(kernels: Kernels, specs: readonly RegionSpec[], options?: ArenaOptions): Arena;
	/** The region called `name`; throws if the plan has none. */
	region(name: string): Region;
	/** Whether the plan has a region called `name`. */
	has(name: string): boolean;
	/** Byte offset of region `name`. */
	ptr(name: string): number;
	/** The whole region as bytes. */
	u8(name: string): Uint8Array;
	/** The whole region as f32 (its size must be a multiple of 4). */
	f32(name: string): Float32Array;
	/** The whole region as i32. */
	i32(name: string): Int32Array;
	/** Current size of linear memory in bytes (constant after creation unless something else grows it). */
	memoryBytes(): number;
}
/** Where a weight operand lives in linear memory. Quantized ones carry f16 scales and biases [rows, ld/64]. */
export interface WeightRef {
	dtype: WeightDtype;
	/** Byte offset of the data. */
	ptr: number;
	/** Row stride in elements (a multiple of 64 for q4/q8). */
	ld: number;
	/** Byte offset of the scales (q4/q8 only). */
	scales: number;
	/** Byte offset of the biases (q4/q8 only). */
	biases: number;
	/** Scales and biases are bf16 (MLX checkpoints) instead of f16. */
	bf16Scales?: boolean;
}
/** Options for {@linkcode Pool.start}. */
export interface PoolOptions {
	/** Threads working on each split call, the caller included (≥ 2; 2 = caller + one worker). */
	threads: number;
	/** URL of the worker module (default: `worker.ts` next to this module). */
	workerUrl?: string | URL;
	/** Row kernels with fewer rows than this run unsplit on the caller (default 16). */
	minRows?: number;
	/** How long an idle worker polls for the next task before sleeping, in ms (default 0.2). */
	spinMs?: number;
	/** GEMMs with fewer floating-point operations run unsplit (default 1e6, ≈ 40 µs on one core). */
	minFlops?: number;
	/** How GEMMs are split: by their shape (default), or always by rows / columns (benchmarks). */
	split?: "auto" | "rows" | "columns";
}
interface PooledKernels extends Kernels {
	readonly pool?: Pool;
}
/** A pool of module Workers sharing one threads-build kernel instance's memory. */
export declare class Pool {
	#private;
	/** Threads per split call, the caller included. */
	readonly threads: number;
	/** Entry points with the raw signatures; row kernels split their `(r0, r1)` across the threads. */
	readonly exports: KernelExports;
	/** `gemm` split by rows (`m0, m1`, in micro-tiles of 6) or by columns (`n0, n1`, in tiles of 8). */
	readonly gemmRows: KernelExports["gemm"];
	readonly gemmColumns: KernelExports["gemm"];
	/** The unpacked skinny GEMM (`gemm_dot`), split by rows in blocks of 4, or by columns in pairs. */
	readonly gemmDotRows: KernelExports["gemm_dot"];
	readonly gemmDotColumns: KernelExports["gemm_dot"];
	/** The kernels this pool works for, with `pool` set (what the engine is given). */
	readonly kernels: PooledKernels;
	/** Row kernels with fewer rows run unsplit. */
	readonly minRows: number;
	/** GEMMs with fewer floating-point operations run unsplit. */
	readonly minFlops: number;
	/** GEMM split policy. */
	readonly split: "auto" | "rows" | "columns";
	/** Split calls posted so far (each ran on every thread). */
	posted: number;
	private constructor();
	/**
	 * Starts `threads − 1` workers on the shared memory of `kernels` (a threads build, see
	 * `loadKernels({ shared: true })`). Grow the memory to the plan first. The plan's GEMM scratch region must
	 * hold `threads · gemm_scratch_bytes()` bytes.
	 */
	static start(kernels: Kernels, options: PoolOptions): Promise<Pool>;
	/** Ends the workers. Idempotent; the pool's split entry points throw afterwards. */
	close(): void;
}
interface ProfileEntry {
	ms: number;
	calls: number;
	flops: number;
}
/**
 * Collects where kernel time goes when given to the engine (`EngineOptions.profile`): every GEMM call
 * (category from {@linkcode Profile.classifyGemm}, default `"gemm"`) and every other kernel call (category
 * from {@linkcode kernelCategory}), timed around the whole call (with a pool: until every share is done).
 */
export declare class Profile {
	/** Category of a GEMM call from its shape and B operand. */
	classifyGemm: (op: number, m: number, n: number, k: number, b: WeightRef) => string;
	/** Totals by category. */
	readonly entries: Map<string, ProfileEntry>;
	/** Adds one timed call. */
	add(category: string, ms: number, flops?: number): void;
	/** Forgets everything collected. */
	reset(): void;
}
/** Options for {@linkcode Gemm}. */
export interface GemmOptions {
	/** Split large calls across this pool (thread `i` uses the `i`-th scratch area from `scratch`). */
	pool?: Pool;
	/** Time every call into this profile. */
	profile?: Profile;
}
/** GEMM entry points bound to one kernel instance and one scratch region. */
export declare class Gemm {
	#private;
	/**
	 * `scratch` must hold `exports.gemm_scratch_bytes()` bytes, times the pool's thread count with a pool.
	 * `exports` are the raw kernel exports.
	 */
	constructor(exports: KernelExports, scratch: number, options?: GemmOptions);
	/** Runs rows [m0, m1) and columns [n0, n1) of a problem with `n` columns in total (for kernel choice). */
	run(op: number, m0: number, m1: number, n0: number, n1: number, n: number, k: number, a: number, lda: number, b: WeightRef, c: number, ldc: number, alpha: number, accumulate: boolean): void;
	/**
	 * How a call is split across `pool`: 0 = not at all, 1 = by rows, 2 = by columns. Columns when each
	 * thread gets at least {@linkcode WIDE} of them (each then packs only its part of B: no duplicated
	 * dequantization), else rows when each thread gets at least two micro-tiles of them, else columns when
	 * each gets two tiles of those; not at all when
	 * the call is too small to pay for waking the workers (`pool.minFlops`). A forced policy (`pool.split`)
	 * splits its way whenever that gives two pieces.
	 */
	static splitOf(pool: Pool, dot: boolean, rows: number, cols: number, k: number): 0 | 1 | 2;
	/** C[M,N] (+)= alpha · A[M,K] · Bᵀ, B [N,K] (a linear layer). */
	nt(m: number, n: number, k: number, a: number, lda: number, b: WeightRef, c: number, ldc: number, alpha?: number, accumulate?: boolean): void;
	/** C[M,N] (+)= alpha · A[M,K] · B, B [K,N]. */
	nn(m: number, n: number, k: number, a: number, lda: number, b: WeightRef, c: number, ldc: number, alpha?: number, accumulate?: boolean): void;
	/** C[M,N] (+)= alpha · Aᵀ · B, A [K,M], B [K,N]. */
	tn(m: number, n: number, k: number, a: number, lda: number, b: WeightRef, c: number, ldc: number, alpha?: number, accumulate?: boolean): void;
}
/**
 * Process memory as the operating system sees it: resident set size now and at its peak. Reads Linux's
 * `/proc/self/status`; elsewhere (or without the permission) falls back to `process.memoryUsage()` with
 * `getrusage`'s peak (Node, Deno), or `Deno.memoryUsage()` (no peak). Safe to import in a browser: every
 * runtime API is looked up when called, never at import.
 *
 * @module
 */
/** Resident memory of this process, in bytes. */
export interface ProcessMemory {
	/** Resident set size now (`VmRSS`); 0 when the runtime cannot tell (browsers). */
	rss: number;
	/** Peak resident set size since the process started (`VmHWM`); `undefined` without `/proc`. */
	peak?: number;
}
/**
 * Current and peak resident memory of this process.
 *
 * @example
 * ```ts
 * const { rss, peak } = processMemory();
 * console.error(`peak RSS ${formatMB(peak ?? rss)}`);
 * ```
 */
export declare function processMemory(): ProcessMemory;
/**
 * Where weights come from: a byte range reader over a file, a URL or memory, and a model directory made of
 * named files. No Deno APIs here, so the same engine reads from a local file in Deno and from a URL or a
 * user-picked `File` in a browser; the Deno file edge lives in `deno_files.ts`.
 *
 * @module
 */
/** Random-access reader of one weight file. */
export interface WeightSource {
	/** For error messages: a file path or URL. */
	readonly name: string;
	/** Size of the file in bytes. */
	size(): Promise<number>;
	/**
	 * Fills `into` completely with bytes `[offset, offset + into.length)`; throws a clear error on a short
	 * read. Reading into a caller-provided buffer lets the training loop fill a fixed WebAssembly memory view.
	 */
	read(offset: number, into: Uint8Array): Promise<void>;
	/**
	 * A hint that reads of consecutive ranges from `offset` up to `end` follow, in that order: a remote source
	 * answers them with one response read as they come (see {@linkcode fetchSource}). Never needed for
	 * correctness; a read elsewhere leaves it for later (two calls reading one source at once each keep theirs).
	 */
	expect?(offset: number, end: number): void;
	/**
	 * What one read costs beyond its bytes, in bytes that could be read in its time instead (a remote
	 * source: a request's round trip, 1 MB for {@linkcode fetchSource} by default); a reader of scattered
	 * ranges reads those closer than this as one. Absent: a read costs little more than its bytes (a local
	 * file, memory).
	 */
	readonly requestBytes?: number;
	/** Releases the underlying handle, if any. */
	close?(): void;
}
/** Destination of a streamed write (a file being written, a network upload, a growing buffer). */
export interface ByteSink {
	/** Writes all of `chunk`; the caller may reuse `chunk` once the promise resolves. */
	write(chunk: Uint8Array): Promise<void>;
}
/** A model directory: `config.json`, safetensors files, tokenizer files, ... addressed by file name. */
export interface ModelFiles {
	/** For error messages: the directory path or base URL. */
	readonly name: string;
	/** The file's text, or `undefined` when the file does not exist. */
	readText(file: string): Promise<string | undefined>;
	/** A reader for the file; a missing file surfaces as {@linkcode FileNotFoundError} on first use. */
	source(file: string): WeightSource;
	/** File names in the directory, when the backend can list them. */
	list?(): Promise<string[]>;
}
/** Thrown by a {@linkcode WeightSource} whose file does not exist (lets callers tell "missing" from "bad"). */
export declare class FileNotFoundError extends Error {
	/** @param name the file path or URL that does not exist */
	constructor(name: string, options?: ErrorOptions);
}
/**
 * A {@linkcode WeightSource} over bytes already in memory.
 *
 * @example
 * ```ts
 * const src = bytesSource(new Uint8Array([1, 2, 3]), "inline");
 * const out = new Uint8Array(2);
 * await src.read(1, out); // out = [2, 3]
 * ```
 */
export declare function bytesSource(bytes: Uint8Array | ArrayBuffer, name?: string): WeightSource;
/**
 * A {@linkcode WeightSource} over a `Blob`, e.g. a `File` the user picked in a browser. The Blob API
 * hands out fresh buffers, so each read allocates a temporary copy of the range.
 */
export declare function blobSource(blob: Blob, name?: string): WeightSource;
/** Options for {@linkcode fetchSource} and {@linkcode urlFiles}. */
export interface FetchSourceOptions {
	/** Name used in error messages (default: the URL). */
	name?: string;
	/** Extra request headers, e.g. `authorization`. */
	headers?: Record<string, string>;
	/** The fetch implementation (default: `globalThis.fetch`). */
	fetch?: typeof fetch;
	/**
	 * Keeps what was fetched, by byte range, and serves a range read again from it (e.g.
	 * {@linkcode memoryRangeCache}, {@linkcode opfsRangeCache} for a browser's Origin Private File System, or
	 * {@linkcode cacheStorageRangeCache} for the Cache API):
	 * a training step reads every layer twice (the forward, and the backward's recompute) and every step the
	 * same ranges, so with a cache large enough for the pack only the first reads go to the network.
	 */
	cache?: RangeCache;
	/**
	 * A file of at most this many bytes is downloaded whole, in one request, at the first read, and every read
	 * is then served from that copy (default 0: never). For a small pack this turns a training step's reads
	 * (each layer twice, the vocabulary once) into memory reads, at the cost of holding the file; a server
	 * that ignores `Range` is then no error for such a file.
	 */
	wholeBelow?: number;
	/**
	 * What a request is worth in bytes ({@linkcode WeightSource.requestBytes}; default 1 MB): scattered rows
	 * (a step's token rows) closer than this are read as one range.
	 */
	requestBytes?: number;
}
/**
 * A store of byte ranges of one file, by offset and length, filled by {@linkcode fetchSource}'s `cache`
 * option. Its entries must be of the file served at that URL (key the cache by a URL that names the
 * content, like a pack's file name, which holds the checkpoint's fingerprint); the pack's checksums catch a
 * stale entry all the same.
 */
export interface RangeCache {
	/** Fills `into` with the bytes at `offset` if exactly this range is kept; resolves whether it was. */
	get(offset: number, into: Uint8Array): Promise<boolean>;
	/** Keeps a copy of `bytes`, the file's bytes at `offset` (or not, when full). */
	put(offset: number, bytes: Uint8Array): Promise<void>;
	/**
	 * Called by {@linkcode fetchSource} before the first `get`, with the version of the file the server has:
	 * a cache that outlives the page (e.g. {@linkcode opfsRangeCache}) drops what it kept of another version.
	 */
	identify?(file: CachedFile): Promise<void>;
}
/** The version of a remote file, as its server describes it (for {@linkcode RangeCache.identify}). */
export interface CachedFile {
	/** The URL (or the name given to {@linkcode fetchSource}). */
	name: string;
	/** Its size in bytes. */
	size: number;
	/** The `ETag` of its first response, or `null` when the server sends none (then only the size tells). */
	etag: string | null;
}
/**
 * A {@linkcode WeightSource} over HTTP(S) that reads byte ranges with `Range` requests. Every read checks
 * that the server answered `206 Partial Content` with the requested `Content-Range`; a server that ignores
 * `Range` (status 200) is an error rather than a silent whole-file download. The size comes from a `HEAD`
 * request's `Content-Length`, or else from the total of a one-byte range probe. A file whose `ETag` or size
 * changes between responses (replaced on the server mid-run) stops the run with an error.
 */
export declare function fetchSource(url: string | URL, options?: FetchSourceOptions): WeightSource;
/** Options for {@linkcode urlFiles}: {@linkcode fetchSource}'s for every file, with a range cache per file. */
export interface UrlFilesOptions extends Omit<FetchSourceOptions, "cache"> {
	/**
	 * The range cache of the file `file` (its name in the directory), called at each `source(file)`; none
	 * where it returns `undefined`. With an {@linkcode opfsRangeCache} per weight file, a checkpoint read twice
	 * (a fingerprint's read of every byte, then packing) is downloaded once. One cache for all files would
	 * serve one file's bytes for another's, so `cache` itself is refused.
	 */
	cacheFor?: (file: string) => RangeCache | undefined;
}
/**
 * A model directory served over HTTP(S): `readText` fetches whole small files (404 → `undefined`) and
 * `source` gives a {@linkcode fetchSource} for range reads.
 *
 * @example
 * ```ts
 * const files = urlFiles("https://example.com/Qwen2.5-0.5B-Instruct/");
 * const config = await files.readText("config.json");
 * ```
 */
export declare function urlFiles(baseUrl: string | URL, options?: UrlFilesOptions): ModelFiles;
/** Options for {@linkcode memoryFiles}. */
export interface MemoryFilesOptions {
	/** Name used in error messages (default `"<memory>"`). */
	name?: string;
}
/**
 * A model directory held in memory: file name → bytes or text. Handy for tests and for files a browser
 * user picked.
 */
export declare function memoryFiles(files: Record<string, Uint8Array | string> | Map<string, Uint8Array | string>, options?: MemoryFilesOptions): ModelFiles;
/**
 * A model directory of `Blob`s, e.g. the `File`s of a folder a browser user picked or dropped: name →
 * blob. Files are read in ranges as needed, never whole, so a multi-gigabyte checkpoint can be converted
 * without holding it in memory.
 */
export declare function blobFiles(files: Record<string, Blob> | Map<string, Blob>, options?: MemoryFilesOptions): ModelFiles;
/** Options for {@linkcode memoryRangeCache}. */
export interface MemoryRangeCacheOptions {
	/** Bytes kept at most (default: no limit). Once full, later ranges are not kept (the first stay). */
	maxBytes?: number;
}
/**
 * Ranges kept in memory. Once `maxBytes` are held, new ranges are not kept: a training step reads the same
 * ranges in the same order every time, so keeping the first ones (rather than evicting) serves that share of
 * every later pass.
 */
export declare function memoryRangeCache(options?: MemoryRangeCacheOptions): RangeCache & {
	bytes(): number;
};
/** Options for {@linkcode cacheStorageRangeCache}. */
export interface CacheStorageRangeCacheOptions {
	/** The notice that a range could not be kept (a full quota, storage unavailable), once (default `console.warn`). */
	onNotice?: (message: string) => void;
}
/**
 * Ranges kept in a Cache API cache (`await caches.open("mesp")`), one entry per range under `key` (a URL
 * naming the file's content, e.g. the pack's own URL: its name holds the checkpoint's fingerprint). What the
 * browser keeps persists across page loads, within the origin's storage quota; a full quota only stops the
 * keeping, with a notice.
 */
export declare function cacheStorageRangeCache(cache: Cache, key: string | URL, options?: CacheStorageRangeCacheOptions): RangeCache;
/** What {@linkcode r2Source} needs to know of an R2 object: its size and ETag. */
export interface R2ObjectInfo {
	readonly size: number;
	/** The ETag in quotes, as an HTTP header carries it. */
	readonly httpEtag: string;
}
/** An R2 object with its bytes (`get`'s answer when the object exists). */
export interface R2ObjectWithBody extends R2ObjectInfo {
	readonly body: ReadableStream<Uint8Array>;
}
/** The part of an R2 bucket binding mesp uses (a Worker's `env.BUCKET` has it). */
export interface R2BucketLike {
	head(key: string): Promise<R2ObjectInfo | null>;
	get(key: string, options?: {
		range?: {
			offset: number;
			length: number;
		};
	}): Promise<R2ObjectWithBody | R2ObjectInfo | null>;
	/** Used by {@linkcode r2Files}' `list` only. */
	list?(options?: {
		prefix?: string;
		cursor?: string;
	}): Promise<{
		objects: {
			key: string;
		}[];
		truncated: boolean;
		cursor?: string;
	}>;
}
/** Options for {@linkcode r2Source} and {@linkcode r2Files}: those of {@linkcode fetchSource} that apply. */
export type R2SourceOptions = Omit<FetchSourceOptions, "fetch" | "headers">;
/**
 * A {@linkcode WeightSource} over the object `key` of an R2 bucket binding: a pack, a stored training state
 * (`openTrainingState(r2Source(env.BUCKET, "run-1/state"))`), a safetensors file. Reads are ranged `get`s;
 * an object replaced while it is read (another ETag or size) stops the run, as with {@linkcode fetchSource}.
 * A missing object is a `FileNotFoundError` naming `r2:KEY` (or `options.name`).
 *
 * @example
 * ```ts ignore
 * const pack = await openPack(r2Source(env.MODELS, "qwen2.5-0.5b.pack", { cache: memoryRangeCache() }));
 * ```
 */
export declare function r2Source(bucket: R2BucketLike, key: string, options?: R2SourceOptions): WeightSource;
/**
 * A model directory in an R2 bucket: the objects under `prefix` (e.g. `"run-1/"` for an adapter's
 * `adapter_config.json` and `adapter_model.safetensors`, for {@linkcode openAdapter}).
 */
export declare function r2Files(bucket: R2BucketLike, prefix?: string, options?: R2SourceOptions): ModelFiles;
/**
 * The parts of the Origin Private File System (the File System Access API, not in Deno's types) that mesp's
 * OPFS files use (`opfs_range_cache.ts`, `opfs_spill_file.ts`), and the opening of its root with an error
 * that names the file it was wanted for.
 *
 * @module
 */
/** The parts of a `FileSystemFileHandle` used here. */
export interface OpfsFileHandle {
	readonly name: string;
	getFile(): Promise<Blob>;
	createWritable(options?: {
		keepExistingData?: boolean;
	}): Promise<OpfsWritableFile>;
	/** Dedicated workers only. */
	createSyncAccessHandle?(): Promise<OpfsSyncAccessHandle>;
}
/** The parts of a `FileSystemWritableFileStream` used here. */
export interface OpfsWritableFile {
	write(chunk: {
		type: "write";
		position: number;
		data: Uint8Array;
	}): Promise<void>;
	truncate(size: number): Promise<void>;
	close(): Promise<void>;
	abort(): Promise<void>;
}
/** The parts of a `FileSystemSyncAccessHandle` used here. */
export interface OpfsSyncAccessHandle {
	read(into: Uint8Array, options: {
		at: number;
	}): number;
	write(data: Uint8Array, options: {
		at: number;
	}): number;
	truncate(size: number): void;
	getSize(): number;
	flush(): void;
	close(): void;
}
/** The part of a `FileSystemDirectoryHandle` used here. */
export interface OpfsDirectoryHandle {
	getFileHandle(name: string, options?: {
		create?: boolean;
	}): Promise<OpfsFileHandle>;
	/** Deletes a file (`opfsSpillFile`'s `remove`). */
	removeEntry?(name: string): Promise<void>;
}
/** Options for {@linkcode opfsRangeCache}. */
export interface OpfsRangeCacheOptions {
	/** The directory of a file given by name (default: the origin's OPFS root). */
	directory?: OpfsDirectoryHandle;
	/** Main thread: bytes read from the file at once, into one of the cache's buffers (default 4 MB). */
	blockBytes?: number;
	/** Main thread: the buffers of blocks read, reused (default 2: a read may straddle two blocks). */
	blocks?: number;
	/**
	 * Main thread: read and write the file through a small worker of the cache's own (started from a `blob:`
	 * URL) holding a sync access handle, which reads a block in well under a millisecond; `false` reads through
	 * `File` snapshots and writes in batches instead, each copying the whole file (default: a worker where
	 * `Worker` and `FileSystemFileHandle` exist).
	 */
	worker?: boolean;
	/** Main thread: fetched bytes held in memory before they are written in one batch (default 32 MB). */
	flushBytes?: number;
	/**
	 * Notices: the kept bytes were of another version of the file and are discarded; the storage quota is full
	 * and nothing more is kept (default: `console.warn`).
	 */
	onNotice?: (message: string) => void;
}
/** An OPFS range cache, with what it holds and a way to write what is pending. */
export interface OpfsRangeCache extends RangeCache {
	/** The OPFS file's name. */
	readonly name: string;
	/** Bytes of the remote file kept (written and pending). */
	bytes(): number;
	/** Counts so far: reads served from the file, from ranges not yet written, and blocks read (main thread). */
	stats(): {
		fileReads: number;
		pendingReads: number;
		blockLoads: number;
		writes: number;
	};
	/** Writes the pending ranges and the record now (otherwise done on its own when the puts pause). */
	flush(): Promise<void>;
	/** Flushes, then releases the file (a worker's sync access handle holds it exclusively). */
	close(): Promise<void>;
}
/**
 * Ranges of a remote file kept in the Origin Private File System, in the OPFS file `file` (a name in the
 * origin's root or `options.directory`, or a handle the page already has). Keyed by the remote file's size and
 * ETag, which {@linkcode fetchSource} hands it ({@linkcode RangeCache.identify}) before the first read: kept
 * bytes of another version are discarded, with a notice. A read is served from the file when the range lies in
 * what is kept, whatever pieces it was fetched in.
 *
 * Errors: where OPFS is missing (not a browser, not a secure context, Deno) the first read fails with an error
 * naming the file; a write that fails (a full storage quota, the file held by another tab) stops the keeping,
 * with a notice naming the file, and later ranges are read from the network as before.
 *
 * @example
 * ```ts
 * const source = fetchSource(url, { cache: opfsRangeCache("qwen-0.5b.pack") });
 * ```
 */
export declare function opfsRangeCache(file: string | OpfsFileHandle, options?: OpfsRangeCacheOptions): OpfsRangeCache;
/**
 * A spill file's interface (random-access bytes the engine writes and reads back synchronously between
 * kernels, `src/engine/spill.ts`), and one in memory. The Deno file is `createSpillFile` in `deno_files.ts`.
 *
 * @module
 */
/**
 * Random-access bytes outside the arena, synchronous (the step calls it between kernels): a file opened for
 * reading and writing (`createSpillFile` in the CLI), the Origin Private File System in a browser's dedicated
 * worker (`opfsSpillFile`), or memory ({@linkcode memorySpill}, for tests).
 */
export interface SpillFile {
	/** Fills `into` with the bytes at `position` (written earlier; returns how many were read). */
	read(position: number, into: Uint8Array): number;
	/** Writes `data` at `position` (returns how many were written). */
	write(position: number, data: Uint8Array): number;
}
/** A spill held in memory (tests, and runtimes with memory to spare but a small wasm limit). */
export declare function memorySpill(): SpillFile & {
	bytes(): number;
};
/** Options for {@linkcode opfsSpillFile}. */
export interface OpfsSpillFileOptions {
	/** The directory the file is made in (default: the origin's OPFS root). */
	directory?: OpfsDirectoryHandle;
}
/** An OPFS spill file: a {@linkcode SpillFile}, its size, and ways to let go of it. */
export interface OpfsSpillFile extends SpillFile {
	/** The OPFS file's name. */
	readonly name: string;
	/** The file's size now (bytes): the whole spill once `train` has reserved it. */
	size(): number;
	/** Releases the sync access handle (it holds the file exclusively); the file stays. */
	close(): void;
	/** Releases the handle and deletes the file: its bytes are of no use once the run is over. */
	remove(): Promise<void>;
}
/**
 * Opens (or creates) the OPFS file `name` in `options.directory` (default: the origin's root) as an empty
 * spill file, for `train(…, { spill })`. Read and write throw errors naming the file: a write the storage
 * quota refuses (`train` reserves the whole spill before the first step, so that is where a full quota shows),
 * a read that comes back short, a use after `close`. Opening fails naming the file where OPFS is missing (not a
 * browser, not a secure context), outside a dedicated worker (no sync access handles there), and when the file
 * is held by another tab or worker.
 *
 * @example
 * ```ts
 * // in a dedicated worker
 * const spill = await opfsSpillFile("run.spill");
 * try {
 *   const result = await train(pack, data, [], { ...options, spill });
 *   // … result.params is read from the spill: use it before removing the file
 * } finally {
 *   await spill.remove();
 * }
 * ```
 */
export declare function opfsSpillFile(name: string, options?: OpfsSpillFileOptions): Promise<OpfsSpillFile>;
/** One file of an archive. */
export interface ZipEntry {
	name: string;
	data: Uint8Array;
}
/** A ZIP archive (stored entries, UTF-8 names) of `entries`, in order. */
export declare function zipStore(entries: readonly ZipEntry[]): Uint8Array;
/**
 * The entries of a ZIP archive of stored entries; `name` is for error messages. Compressed entries are
 * refused: {@linkcode unzip} reads those.
 */
export declare function unzipStore(bytes: Uint8Array, name?: string): ZipEntry[];
/**
 * The entries of a ZIP archive of stored or deflated entries (method 0 or 8); `name` is for error messages.
 * Each inflated entry is checked against its size and CRC-32 and named when it fails.
 */
export declare function unzip(bytes: Uint8Array, name?: string): Promise<ZipEntry[]>;
/** The public Hub (`HF_ENDPOINT` replaces it). */
export declare const HUB_ENDPOINT = "https://huggingface.co";
/** A model on the Hub at a revision. */
export interface HubModelId {
	/** `org/name`. */
	repo: string;
	/** A branch, a tag or a 40-hex commit hash (default `main`). */
	revision: string;
}
/**
 * `org/name[@revision]` as a {@linkcode HubModelId}, or `undefined` when `text` does not look like one (a
 * relative path like `models/tiny` does, so callers try an existing directory first).
 *
 * @example
 * ```ts
 * parseHubId("Qwen/Qwen2.5-0.5B-Instruct@main"); // { repo: "Qwen/Qwen2.5-0.5B-Instruct", revision: "main" }
 * ```
 */
export declare function parseHubId(text: string): HubModelId | undefined;
/**
 * The URL of `file` in `repo` at `revision`: the revision is one path segment (a `/` in it is escaped, as
 * `hf_hub_url` does), the file keeps its `/` separators.
 */
export declare function hubFileUrl(repo: string, revision: string, file: string, endpoint?: string): string;
/** Options of {@linkcode hubFiles}. */
export interface HubFilesOptions extends Pick<UrlFilesOptions, "fetch" | "cacheFor"> {
	/** The Hub's URL (default {@linkcode HUB_ENDPOINT}). */
	endpoint?: string;
	/** An access token (sent as `Authorization: Bearer`), for private or gated models. */
	token?: string;
}
/**
 * A Hub model as a {@linkcode ModelFiles} read over HTTP (whole small files, byte ranges of the weights), for
 * a browser or any runtime with `fetch`: nothing is stored. Pin a commit hash for a run that must not see a
 * push in the middle.
 *
 * @example
 * ```ts
 * const files = hubFiles({ repo: "Qwen/Qwen2.5-0.5B-Instruct" }); // revision "main", as the CLI's default
 * const config = await files.readText("config.json");
 * ```
 */
export declare function hubFiles(id: Pick<HubModelId, "repo"> & Partial<HubModelId>, options?: HubFilesOptions): ModelFiles;
/**
 * The model configuration: Hugging Face `config.json` of a `Qwen2ForCausalLM` (`model_type: "qwen2"`),
 * normalized to camelCase and checked for what mesp can run. Also the Qwen2.5 presets and parameter counts.
 *
 * @module
 */
/** MLX affine quantization of the checkpoint's Linear and embedding weights (docs/formats.md, MLX). */
export interface Quantization {
	/** Elements per (scale, bias) group along the input dimension; 64 is the only supported value. */
	groupSize: number;
	/** Bits per quantized element: 4 or 8. */
	bits: number;
}
/** A Qwen2 model configuration in mesp's normalized form. */
export interface ModelConfig {
	/** `architectures[0]`: always `"Qwen2ForCausalLM"`. */
	architecture: string;
	/** Model width. */
	hiddenSize: number;
	/** MLP inner width. */
	intermediateSize: number;
	/** Number of decoder layers (`num_hidden_layers`). */
	numLayers: number;
	/** Query heads (`num_attention_heads`). */
	numHeads: number;
	/** Key/value heads (`num_key_value_heads`), dividing `numHeads`. */
	numKvHeads: number;
	/** Per-head width: `head_dim`, or `hidden_size / num_attention_heads`. */
	headDim: number;
	/** Rows of the embedding / LM head. */
	vocabSize: number;
	/** RoPE base θ. */
	ropeTheta: number;
	/** RMSNorm epsilon. */
	rmsNormEps: number;
	/** LM head shares the embedding matrix (no `lm_head.weight` in the checkpoint). */
	tieWordEmbeddings: boolean;
	/** Context length the model was configured for. */
	maxPositionEmbeddings: number;
	/** Beginning-of-sequence token id, if the config names one. */
	bosTokenId?: number;
	/** End-of-sequence token ids (config `eos_token_id`, a number or a list); may be empty. */
	eosTokenIds: number[];
	/** Padding token id, if the config names one. */
	padTokenId?: number;
	/** Stored weight dtype (`dtype` or `torch_dtype`, e.g. `"bfloat16"`), if the config names one. */
	dtype?: string;
	/** MLX quantization of the checkpoint, or `undefined` for a plain float checkpoint. */
	quantization?: Quantization;
}
/** Options for {@linkcode parseModelConfig}. */
export interface ParseModelConfigOptions {
	/** File name used in error messages (default `"config.json"`). */
	file?: string;
}
/**
 * Parses and validates a `config.json` object of a Qwen2 model.
 *
 * Required: `hidden_size`, `intermediate_size`, `num_hidden_layers`, `num_attention_heads`, `vocab_size`
 * (HF's class defaults are a 7B model's, so guessing them would silently load the wrong shape). Defaults as
 * in HF `Qwen2Config`: `num_key_value_heads` = heads, `rms_norm_eps` 1e-6, `tie_word_embeddings` false,
 * `max_position_embeddings` 32768, `hidden_act` "silu", and RoPE θ {@linkcode DEFAULT_ROPE_THETA} when
 * neither `rope_theta` (older transformers) nor `rope_parameters.rope_theta` (transformers ≥ 5) is present.
 *
 * Rejects, with an Error naming the field: other architectures, RoPE scaling, sliding-window attention,
 * activations other than SiLU, non-MLX quantization, and MLX quantization other than 4/8 bits, group 64.
 *
 * @example
 * ```ts
 * const cfg = parseModelConfig(JSON.parse(text), { file: "Qwen2.5-0.5B/config.json" });
 * cfg.headDim; // 64
 * ```
 */
export declare function parseModelConfig(json: unknown, options?: ParseModelConfigOptions): ModelConfig;
/** Names of the built-in presets. */
export type PresetName = "qwen2.5-0.5b" | "qwen2.5-1.5b" | "qwen2.5-3b" | "tiny" | "demo";
/**
 * Frozen configs of Qwen2.5-{0.5B,1.5B,3B}-Instruct (docs/qwen2.md; eos = `<|im_end|>`,
 * `<|endoftext|>` as in their generation_config.json), `tiny`: a 4-layer, 64-wide Qwen2 for tests
 * that keeps the real vocabulary (151936 rows) so it works with the real Qwen tokenizer, and `demo`
 * (128 wide, untied, same vocabulary) for the demo of `train`. Copy one with spread syntax to change fields.
 */
export declare const PRESETS: Readonly<Record<PresetName, ModelConfig>>;
/** Parameter counts of a config (see {@linkcode paramCounts}). */
export interface ParamCounts {
	/** Parameters of one decoder layer (projections, biases, two norms). */
	perLayer: number;
	/** `vocab × hidden` of `embed_tokens`. */
	embedding: number;
	/** `vocab × hidden` of a separate `lm_head`, or 0 when tied. */
	lmHead: number;
	/** The final norm (`hidden`). */
	finalNorm: number;
	/** Everything stored: embedding + layers + final norm + untied LM head. */
	total: number;
	/** `total` minus embedding and LM head (what model cards call non-embedding). */
	nonEmbedding: number;
}
/** Counts parameters; for Qwen2.5-0.5B `total` is 494,032,768 (docs/qwen2.md). */
export declare function paramCounts(cfg: ModelConfig): ParamCounts;
/**
 * Bits per element of every safetensors dtype, in the reference library's enum order, which is also its
 * alignment order (the writer puts larger dtypes first).
 */
export declare const DTYPE_BITS: Readonly<{
	BOOL: 8;
	F4: 4;
	F6_E2M3: 6;
	F6_E3M2: 6;
	U8: 8;
	I8: 8;
	F8_E5M2: 8;
	F8_E4M3: 8;
	F8_E8M0: 8;
	F8_E4M3FNUZ: 8;
	F8_E5M2FNUZ: 8;
	I16: 16;
	U16: 16;
	F16: 16;
	BF16: 16;
	I32: 32;
	U32: 32;
	F32: 32;
	C64: 64;
	F64: 64;
	I64: 64;
	U64: 64;
}>;
/** A safetensors dtype string (`"BF16"`, `"F32"`, `"U32"`, ...). */
export type Dtype = keyof typeof DTYPE_BITS;
/** Where one tensor lives in a file. */
export interface TensorInfo {
	/** Tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
	name: string;
	/** Stored element type. */
	dtype: Dtype;
	/** Row-major shape (`[]` for a scalar). */
	shape: number[];
	/** Absolute offset of the first byte in the file. */
	offset: number;
	/** Bytes of data. */
	byteLength: number;
}
/** A parsed safetensors header plus the source to read tensor data from. */
export interface SafetensorsFile {
	/** The file. */
	source: WeightSource;
	/** `__metadata__` (empty when absent). */
	metadata: Record<string, string>;
	/** Tensors by name, in file order. */
	tensors: Map<string, TensorInfo>;
	/** Absolute offset of the data buffer: 8 + header length. */
	dataOffset: number;
}
/**
 * Reads and validates a safetensors header: 8 bytes of length, then the JSON header; never the tensor
 * data. Every rule of the reference reader is checked (docs/formats.md), plus duplicate names, and
 * a violation throws an Error naming the file and the tensor.
 *
 * @example
 * ```ts
 * const st = await readSafetensorsHeader(fileSource("model.safetensors"));
 * const norm = await readTensorF32(st, "model.norm.weight");
 * ```
 */
export declare function readSafetensorsHeader(source: WeightSource): Promise<SafetensorsFile>;
/**
 * Reads an F32, F16 or BF16 tensor as float32 values, into `into` (exactly its element count) or a new
 * array. Meant for small tensors (norms, biases, test fixtures); large weights go through
 * {@linkcode readTensorBytes} into their final buffer. A NaN or ±∞ is an error naming the tensor and where.
 */
export declare function readTensorF32(file: SafetensorsFile, name: string, into?: Float32Array): Promise<Float32Array>;
/** A tensor located in one of a checkpoint's files. */
export interface TensorLocation {
	/** The (shard) file holding it. */
	file: SafetensorsFile;
	/** Its dtype, shape and byte range. */
	info: TensorInfo;
}
/** A model's weights: one `model.safetensors` or shards listed by `model.safetensors.index.json`. */
export interface Checkpoint {
	/** The model directory's name (for messages). */
	name: string;
	/** The opened files by file name. */
	files: Map<string, SafetensorsFile>;
	/** Where tensor `name` is; throws "missing tensor X in <dir>" when absent. */
	get(name: string): TensorLocation;
	/** Whether the checkpoint has tensor `name`. */
	has(name: string): boolean;
	/** All tensor names, sorted. */
	names(): string[];
	/** Closes every file's source. */
	close(): void;
}
/**
 * Opens a checkpoint directory's safetensors headers. Like transformers, prefers `model.safetensors` and
 * falls back to `model.safetensors.index.json`, checking that every shard the index names exists and holds
 * the tensors mapped to it. With an index, the tensors are exactly those of its `weight_map`.
 */
export declare function openCheckpoint(files: ModelFiles): Promise<Checkpoint>;
/** A tensor to write: name, dtype and shape (its bytes come separately). */
export interface TensorSpec {
	/** Tensor name (not `__metadata__`). */
	name: string;
	/** Element type. */
	dtype: Dtype;
	/** Row-major shape. */
	shape: number[];
}
/**
 * Tensor bytes: an array view, or a function producing them when the writer gets to this tensor — at once,
 * or in pieces (each written before the next is taken, so a piece may reuse the last one's memory).
 */
export type TensorData = ArrayBufferView | (() => ArrayBufferView | Iterable<ArrayBufferView> | Promise<ArrayBufferView>);
/** A tensor to write with its data (little-endian, row-major). */
export interface TensorEntry extends TensorSpec {
	/** The bytes; a function is called once, in file order, so large tensors can be produced one at a time. */
	data: TensorData;
}
/**
 * Streams a safetensors file into `sink`: the header, then each tensor's data in file order (lazy `data`
 * functions are called just before their tensor is written). Returns the number of bytes written.
 */
export declare function writeSafetensors(sink: ByteSink, entries: readonly TensorEntry[], metadata?: Record<string, string>): Promise<number>;
/** Encodes a whole safetensors file in memory (for small files: adapters, fixtures, tests). */
export declare function encodeSafetensors(entries: readonly (TensorSpec & {
	data: ArrayBufferView;
})[], metadata?: Record<string, string>): Uint8Array;
/** Storage type of the per-group scales and biases: f16 (mesp's own packs) or bf16 (MLX checkpoints). */
export type ScaleDtype = "f16" | "bf16";
/** Bits per quantized element. */
export type QuantBits = 4 | 8;
/** A quantized block of whole rows. */
export interface Quantized {
	/** Codes: q4 packs element `2b` in the low nibble of byte `b` and `2b+1` in the high nibble; q8 one byte each. */
	q: Uint8Array;
	/** Per-group scales as raw half bits, row-major `[rows, cols/64]`. */
	scales: Uint16Array;
	/** Per-group biases (the group minimum) as raw half bits, `[rows, cols/64]`. */
	biases: Uint16Array;
}
/** Options for {@linkcode quantize}. */
export interface QuantizeOptions {
	/** 4 (default) or 8. */
	bits?: QuantBits;
	/** Half type of scales and biases (default `"f16"`). */
	scaleDtype?: ScaleDtype;
	/** Output buffers of exactly the right sizes, reused instead of allocating (streaming callers). */
	into?: Quantized;
	/** Tensor name for error messages. */
	name?: string;
	/** Index of the first row of `w` in the whole tensor, for error messages (default 0). */
	rowOffset?: number;
	/** Compute only scales and biases; `q` is neither written nor required to have the right size. */
	scalesOnly?: boolean;
}
/** Options for {@linkcode dequantize}. */
export interface DequantizeOptions {
	/** 4 (default) or 8. */
	bits?: QuantBits;
	/** Half type of scales and biases (default `"f16"`). */
	scaleDtype?: ScaleDtype;
	/** Output buffer of exactly `rows · cols` elements. */
	into?: Float32Array;
	/** Tensor name for error messages. */
	name?: string;
}
/**
 * Quantizes the rows of `w` (row-major, `w.length / cols` rows of `cols` elements, `cols % 64 === 0`).
 *
 * Per group: `scale = (max − min) / (2^bits − 1)` and `bias = min`, both rounded to the scale dtype; then
 * `q = clamp(round((w − bias) / scale), 0, 2^bits − 1)` computed with the scale and bias *as stored*, so
 * that `scale · q + bias` lands as close to `w` as the rounded scale allows. Ties (`(w − bias)/scale`
 * exactly `k + ½`) round to the even code. A group whose range is zero (or whose scale underflows to 0)
 * gets scale 0, codes 0 and bias = the (rounded) value. Throws, naming the tensor, row and column, on a
 * non-finite value or a scale/bias beyond the half type's range.
 *
 * @example
 * ```ts
 * const w = Float32Array.from({ length: 64 }, (_, i) => (i % 16) * 0.25 - 1);
 * const { q, scales, biases } = quantize(w, 64, { bits: 4, scaleDtype: "bf16" });
 * q[0]; // 0x10: element 0 (code 0) in the low nibble, element 1 (code 1) in the high one
 * ```
 */
export declare function quantize(w: Float32Array, cols: number, options?: QuantizeOptions): Quantized;
/**
 * Decodes quantized rows back to f32 exactly like the wasm kernel (`asm/kernels/dtype.ts` `decode_row`):
 * `w = fround(fround(scale · q) + bias)`, a float32 multiply then a float32 add, never fused.
 * `cols` is the row length in elements; the row count comes from the scales.
 */
export declare function dequantize(qz: Quantized, cols: number, options?: DequantizeOptions): Float32Array;
/** Options for {@linkcode checkpointFingerprint}. */
export interface FingerprintProgress {
	/** Told the bytes hashed so far of all (with the default checksums: a large model takes a while). */
	onProgress?: (done: number, total: number) => void;
}
/** Gives the content checksum of one checkpoint file (e.g. from a cache keyed by size and mtime). */
export type ContentChecksum = (name: string, source: WeightSource, size: number) => Promise<string>;
/**
 * A fingerprint of a checkpoint's contents: the config text, every safetensors file's name, size, header and
 * the checksum of every byte. A pack records it so weights that changed in place (same shapes, new values)
 * are noticed. `checksumOf` lets an edge that can see modification times hash a file only when it changed.
 */
export declare function checkpointFingerprint(files: ModelFiles, ckpt: Checkpoint, checksumOf?: ContentChecksum, options?: FingerprintProgress): Promise<string>;
/** The seven linear layers of a Qwen2 decoder layer, in the order they are stored. */
export declare const LINEARS: readonly [
	"q_proj",
	"k_proj",
	"v_proj",
	"o_proj",
	"gate_proj",
	"up_proj",
	"down_proj"
];
/** Name of a decoder-layer linear. */
export type Linear = typeof LINEARS[number];
/** The attention linears, stored together at the start of a layer's blob. */
export declare const ATTENTION: readonly [
	"q_proj",
	"k_proj",
	"v_proj",
	"o_proj"
];
/** Name of an attention linear. */
export type AttentionLinear = typeof ATTENTION[number];
/** Element format of a pack's matrices (norms and biases are always f32). */
export type PackFormat = "q4" | "q8" | "bf16" | "f16" | "f32";
/** A row-major matrix [rows, cols] placed in a blob; quantized ones carry scales/biases [rows, cols/64]. */
export interface MatrixSlot {
	rows: number;
	cols: number;
	dtype: WeightDtype;
	/** Scales and biases are bf16 (kept from an MLX checkpoint) rather than f16. */
	bf16Scales: boolean;
	/** Byte offsets within the blob. */
	offset: number;
	scalesOffset: number;
	biasesOffset: number;
	/** Bytes of one row of data, of scales (and of biases). */
	rowBytes: number;
	scaleRowBytes: number;
	/** Total bytes (data + scales + biases). */
	bytes: number;
}
/** An f32 vector placed in a blob. */
export interface VectorSlot {
	length: number;
	offset: number;
	bytes: number;
}
/**
 * One chunk of the MLP's intermediate dimension, [c0, c1): the gate and up rows [c0, c1) ([n, hidden] each)
 * and the down projection's columns [c0, c1) stored as their own [hidden, n] matrix, contiguous, so the
 * MLP streams one chunk at a time.
 */
export interface MlpChunkLayout {
	c0: number;
	c1: number;
	/** Offset of the chunk within the layer's blob; the slots' offsets are relative to the chunk. */
	offset: number;
	gate: MatrixSlot;
	up: MatrixSlot;
	down: MatrixSlot;
	bytes: number;
}
/**
 * Where each tensor of a decoder layer sits in the layer's blob (the same for every layer): first the
 * attention block (q, k, v, o, the biases and both norm weights), then the MLP in chunks of `mlpChunk`
 * columns of the intermediate dimension.
 */
export interface LayerLayout {
	attention: Record<AttentionLinear, MatrixSlot>;
	qBias: VectorSlot;
	kBias: VectorSlot;
	vBias: VectorSlot;
	inputNorm: VectorSlot;
	postNorm: VectorSlot;
	/** Bytes of the attention block (offset 0). */
	attentionBytes: number;
	mlpChunk: number;
	chunks: MlpChunkLayout[];
	/** Bytes of the largest chunk. */
	chunkBytes: number;
	bytes: number;
}
/**
 * A vocabulary matrix (the embedding, an untied LM head) `[rows, cols]` as a pack stores it: row-interleaved,
 * each row's data then (quantized) its scales and biases, `rowStride` bytes a row with no padding, so a token's
 * row or a chunk of rows is one contiguous range (one read, one HTTP request).
 */
export interface VocabSlot {
	rows: number;
	cols: number;
	dtype: WeightDtype;
	/** Scales and biases are bf16 (kept from an MLX checkpoint) rather than f16. */
	bf16Scales: boolean;
	/** Bytes of one row of data, and of its scales (and of its biases; 0 unless quantized). */
	rowBytes: number;
	scaleRowBytes: number;
	/** Bytes of one stored row: `rowBytes + 2 · scaleRowBytes`. */
	rowStride: number;
	/** Total bytes (`rows · rowStride`). */
	bytes: number;
}
/** A section of the pack file. */
export interface Section {
	offset: number;
	bytes: number;
}
/** The JSON header of a pack. */
export interface PackHeader {
	version: number;
	format: PackFormat;
	bf16Scales: boolean;
	/** Columns of the MLP's intermediate dimension per stored chunk. */
	mlpChunk: number;
	/** Vocabulary rows per checksummed block of the embedding and an untied LM head. */
	vocabBlock: number;
	config: ModelConfig;
	/** Fingerprint of the source checkpoint (see {@linkcode checkpointFingerprint}). */
	fingerprint: string;
	/** Where the pack came from, for messages. */
	source: string;
	embed: Section;
	layers: Section[];
	norm: Section;
	lmHead?: Section;
	/** Table of checksums, two u32 each (see {@linkcode blockCount}, {@linkcode vocabBlocks}), written last. */
	checksums: Section;
	/** Total file size. */
	fileBytes: number;
}
/** Plans the whole pack: header (without fingerprint/source) and sections. */
export declare function planPack(cfg: ModelConfig, format: PackFormat, mlpChunk?: number, vocabBlock?: number): Omit<PackHeader, "fingerprint" | "source">;
/** Thrown when a pack is stale, foreign, truncated or corrupt; callers rebuild it. */
export declare class StalePackError extends Error {
	constructor(message: string);
}
/** Caller buffers for vocabulary rows (each exactly `rows ×` its row size). */
export interface VocabRowViews {
	data: Uint8Array;
	scales?: Uint8Array;
	biases?: Uint8Array;
}
/** An opened pack: its header, the layer layout, and reads into caller buffers. */
export interface Pack {
	readonly header: PackHeader;
	readonly config: ModelConfig;
	readonly layout: LayerLayout;
	/** Layout of the embedding (and of an untied LM head): row-interleaved, see {@linkcode VocabSlot}. */
	readonly vocabSlot: VocabSlot;
	readonly source: WeightSource;
	/** Reads layer `l`'s blob into `into` (exactly `layout.bytes` long). */
	readLayer(l: number, into: Uint8Array): Promise<void>;
	/**
	 * Reads layer `l`'s attention block into `into` (exactly `layout.attentionBytes` long). `through` (≥ l):
	 * the caller reads layers l…through next, in order (each layer's attention block, then its MLP chunks):
	 * a remote source answers them all with one response.
	 */
	readAttention(l: number, into: Uint8Array, through?: number): Promise<void>;
	/** Reads MLP chunk `c` of layer `l` into `into` (exactly `layout.chunks[c].bytes` long). */
	readMlpChunk(l: number, c: number, into: Uint8Array): Promise<void>;
	/** Reads the final norm weight. */
	readNorm(into: Float32Array): Promise<void>;
	/**
	 * Reads vocabulary rows [r0, r1) of the embedding (or the untied LM head with `head: true`) into views
	 * sized exactly for those rows: row data and, for quantized packs, scales and biases. One read of the
	 * stored rows (a row's data, scales and biases lie together); the first read of a row verifies its whole
	 * checksummed block (a block the rows only partly cover is read whole, through one buffer the pack keeps).
	 */
	readVocabRows(r0: number, r1: number, into: VocabRowViews, head?: boolean): Promise<void>;
	/**
	 * Gathers the rows of the token ids `ids[0..count)` (ids outside the vocabulary are skipped): sorted, each
	 * once, neighbours read as one range, so that a step's embedding (or target) rows cost a few reads
	 * instead of one each. A later `readVocabRows(id, id + 1)` of a gathered id is then served from memory,
	 * until the next gather of the same matrix.
	 */
	prefetchRows(ids: ArrayLike<number>, count: number, head?: boolean): Promise<void>;
	/**
	 * Copies row `id` into `into` (views sized for one row) when the last completed `prefetchRows` of that
	 * matrix gathered it, and says whether it did: synchronous, so a step's token rows cost no promise each.
	 * False for a row not gathered (then `readVocabRows(id, id + 1)` reads it).
	 */
	copyGatheredRow(id: number, into: VocabRowViews, head?: boolean): boolean;
	/**
	 * Announces token ids a later `prefetchRows` of the same matrix will gather (the next sequence's, or an
	 * untied head's targets): the next pass over the whole matrix (chunks read from row 0 on, as the loss
	 * reads them) keeps their rows as they go by, so that gather reads nothing. A hint: without a pass
	 * between, the gather reads the rows as before. The last announcement not yet taken up by a pass counts.
	 */
	expectRows(ids: ArrayLike<number>, count: number, head?: boolean): void;
}
/** Options for {@linkcode openPack}. */
export interface OpenPackOptions {
	/** Refuse a pack whose fingerprint differs (it was made from other weights). */
	fingerprint?: string;
	/** Refuse a pack of another format. */
	format?: PackFormat;
	/**
	 * `prefetchRows` reads token rows closer than this many bytes as one range (default 64 KB, or the
	 * source's `requestBytes` when larger: 1 MB for `fetchSource`; the longest range is at least 1 MB, and
	 * unbounded where the source has a `requestBytes`, which answers a range as one response however long).
	 * Larger trades bytes for fewer reads: for 256 random tokens of the 0.5B's q4 rows from a local file,
	 * about 205 reads and 1.7 MB at 64 KB, 107 and 17 MB at 256 KB, 57 and 43 MB at 1 MB.
	 */
	gatherGapBytes?: number;
}
/** Opens a pack and checks it against what the caller expects. */
export declare function openPack(source: WeightSource, options?: OpenPackOptions): Promise<Pack>;
/** Options for {@linkcode writePack}. */
export interface WritePackOptions {
	format: PackFormat;
	/** The source's fingerprint, recorded in the header. */
	fingerprint: string;
	/** Called after each section with (done, total) sections. */
	onProgress?: (done: number, total: number, what: string) => void;
	/** MLP chunk (columns of the intermediate dimension) the layers are stored in (default 256). */
	mlpChunk?: number;
	/** Vocabulary rows per checksummed block (default {@linkcode VOCAB_BLOCK}). */
	vocabBlock?: number;
	/**
	 * Largest down projection held converted, in bytes (default 16 MB); a larger one (or any, with 0) is read
	 * again per MLP chunk: less memory, more reading. The pack's bytes are the same either way.
	 */
	heldColumnsBytes?: number;
}
/**
 * Writes a pack for `ckpt` to `sink`, streaming through fixed buffers: every matrix is converted a block of
 * ~4 MB of f32 rows at a time, so the conversion never holds a tensor whole, whatever the model's size. The
 * one exception is a layer's down projection, held converted up to {@linkcode HELD_COLUMNS_BYTES} so that
 * each byte of the checkpoint is read once (larger, its MLP chunks' columns are cut from rows read again).
 */
export declare function writePack(ckpt: Checkpoint, cfg: ModelConfig, sink: ByteSink, options: WritePackOptions): Promise<PackHeader>;
/** Checkpoint layouts {@linkcode makeModel} writes. */
export type ModelFormat = "hf" | "mlx-q4" | "mlx-q8";
/** Float storage types: of every tensor in `hf`; of scales, biases, norms and biases in `mlx-*`. */
export type FloatDtype = "bf16" | "f16" | "f32";
/** The text of a model's tokenizer files, copied verbatim. */
export interface MakeModelTokenizerFiles {
	/** Contents of `tokenizer.json`. */
	tokenizerJson: string;
	/** Contents of `tokenizer_config.json`. */
	tokenizerConfigJson: string;
}
/** Where {@linkcode makeModel} puts files. */
export interface ModelSink {
	/** Writes a small text file (JSON). */
	writeText(name: string, text: string): Promise<void>;
	/** Writes a file by streaming chunks into `out`; a chunk may be reused once its write resolves. */
	writeFile(name: string, write: (out: ByteSink) => Promise<void>): Promise<void>;
}
/** Progress of {@linkcode makeModel}, reported after every chunk written. */
export interface MakeModelProgress {
	/**
	 * 1-based position of the tensor being written in the order it is written (file by file, each file's
	 * tensors in its header's order), so it only grows, as `bytes` does.
	 */
	tensor: number;
	/** Number of tensors in the checkpoint. */
	tensors: number;
	/** Name of that tensor. */
	name: string;
	/** File it goes to. */
	file: string;
	/** Tensor bytes written so far, over all files. */
	bytes: number;
	/** Tensor bytes in all. */
	totalBytes: number;
}
/** Options for {@linkcode planModel} and {@linkcode makeModel}. */
export interface MakeModelOptions {
	/** `"hf"` (default), or MLX affine quantization `"mlx-q4"` / `"mlx-q8"` (group 64). */
	format?: ModelFormat;
	/**
	 * Float storage type. Default: the config's `dtype` when it names one of bfloat16/float16/float32
	 * (the `tiny` preset is float32), else bf16. `mlx-*` formats take bf16 or f16 (the scale type) and
	 * default to bf16 unless the config says float16.
	 */
	dtype?: FloatDtype;
	/** PRNG seed, any safe integer (default 0). */
	seed?: number;
	/** Largest shard in tensor bytes before splitting (default {@linkcode DEFAULT_SHARD_SIZE}). */
	shardSize?: number;
	/** Tokenizer files to copy into the checkpoint (none when omitted). */
	tokenizer?: MakeModelTokenizerFiles;
	/** Called after every chunk of tensor data written. */
	onProgress?: (progress: MakeModelProgress) => void;
	/** Elements generated per chunk (default 2^20); rounded to whole rows. Does not change the output. */
	chunkElements?: number;
	/** Standard deviations of the random weights (default {@linkcode INIT_STD} everywhere, as HF's `initializer_range`). */
	init?: WeightInit;
}
/**
 * Standard deviations of a random checkpoint's weights. HF's 0.02 everywhere makes a near-identity network
 * whose output is almost uniform; the demo model uses unit-gain linears and a wider LM head instead, so a
 * LoRA adapter can learn a peaked distribution quickly.
 */
export interface WeightInit {
	/** `embed_tokens` (default {@linkcode INIT_STD}). */
	embedding?: number;
	/** An untied `lm_head` (default {@linkcode INIT_STD}). */
	lmHead?: number;
	/** Every decoder linear: a number, or `"fan-in"` for `N(0, 1/in)` (default {@linkcode INIT_STD}). */
	linear?: number | "fan-in";
}
/** How a planned tensor's bytes derive from its float source tensor. */
export type TensorPart = "values" | "q" | "scales" | "biases";
/** One tensor of a planned checkpoint. */
export interface PlannedTensor extends TensorSpec {
	/** Bytes of data. */
	byteLength: number;
	/** The safetensors file holding it. */
	file: string;
	/** HF name of the float tensor whose random values it stores (itself, or `X.weight` for `X.scales`). */
	source: string;
	/** The float values themselves, or one of the three parts of their MLX quantization. */
	part: TensorPart;
}
/** One safetensors file of a planned checkpoint. */
export interface PlannedFile {
	/** File name (`model.safetensors` or `model-0000i-of-0000n.safetensors`). */
	name: string;
	/** Its tensors in state-dict order. */
	tensors: PlannedTensor[];
	/** Sum of their byte lengths. */
	tensorBytes: number;
	/** Size of the file including its header. */
	fileSize: number;
}
/** What {@linkcode makeModel} writes, computed without generating anything. */
export interface ModelPlan {
	/** The config as written to `config.json` (dtype and quantization set). */
	config: ModelConfig;
	/** The checkpoint format. */
	format: ModelFormat;
	/** Float storage type. */
	dtype: FloatDtype;
	/** Every tensor in state-dict order. */
	tensors: PlannedTensor[];
	/** The safetensors files, in order. */
	files: PlannedFile[];
	/** Sum of tensor bytes (`metadata.total_size` of the index). */
	totalBytes: number;
	/** Sum of safetensors file sizes. */
	fileBytes: number;
	/** Model parameters (float elements before any quantization), as {@linkcode paramCounts}. */
	parameters: number;
	/** Names of the other files written: index (when sharded), configs, tokenizer files. */
	textFiles: string[];
}
/**
 * Plans a random checkpoint of `config` without generating anything: tensor names, dtypes, shapes, byte
 * sizes, shard files and total sizes. Throws, naming the field or tensor, on an invalid config or a layer
 * width that cannot be quantized (not a multiple of 64).
 *
 * @example
 * ```ts
 * const plan = planModel(PRESETS["qwen2.5-0.5b"], { dtype: "bf16" });
 * plan.tensors.length; // 290
 * plan.totalBytes; // 988,065,536
 * ```
 */
export declare function planModel(config: ModelConfig, options?: MakeModelOptions): ModelPlan;
/**
 * Writes a random checkpoint of `config` into `sink`: the safetensors file(s) first, then the shard index,
 * `generation_config.json`, the tokenizer files and finally `config.json` (so a directory with a config is
 * complete). Returns the plan it followed (see {@linkcode planModel}).
 *
 * Weights are `N(0, 0.02²)` (embedding, projections, q/k/v biases) and norms `1 + N(0, 0.02²)`, drawn
 * with xoshiro128** and the Marsaglia polar method from a stream per tensor keyed by (seed, name).
 *
 * @example
 * ```ts
 * const sink = memoryModelSink();
 * await makeModel(PRESETS.tiny, sink, { format: "mlx-q4", seed: 1 });
 * sink.files.get("config.json");
 * ```
 */
export declare function makeModel(config: ModelConfig, sink: ModelSink, options?: MakeModelOptions): Promise<ModelPlan>;
/** The raw text of a model's tokenizer files. */
export interface TokenizerFiles {
	/** Contents of `tokenizer.json`. */
	tokenizerJson: string;
	/** Contents of `tokenizer_config.json` (optional; gives EOS, pad and chat template). */
	tokenizerConfigJson?: string;
	/** Contents of `generation_config.json` (optional; its `eos_token_id` joins {@link Tokenizer.eosTokenIds}). */
	generationConfigJson?: string;
}
/** Options for {@link Tokenizer.decode}. */
export interface DecodeOptions {
	/** Drop special added tokens (`<|im_end|>`, `<|endoftext|>`, ...) from the output. Default false. */
	skipSpecialTokens?: boolean;
}
/** A loaded tokenizer. All ids are plain numbers; no BOS is ever added (Qwen has none). */
export interface Tokenizer {
	/** Token ids of `text` (added tokens such as `<|im_start|>` are matched atomically). */
	encode(text: string): number[];
	/** Text of `ids` (invalid UTF-8 becomes U+FFFD, like HF `errors="replace"`). */
	decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
	/** Raw bytes a token stands for (UTF-8 of the content for added tokens). */
	tokenBytes(id: number): Uint8Array;
	/** True for added tokens flagged `special` (the ones `skipSpecialTokens` drops). */
	isSpecialToken(id: number): boolean;
	/** True for any added token (`<|im_end|>`, `<tool_call>`, ...): matched whole, never byte-level. */
	isAddedToken(id: number): boolean;
	/** Token string of an id (byte-level form, e.g. `Ġworld`), or undefined. */
	idToToken(id: number): string | undefined;
	/** Id of a token string (byte-level form or added-token content), or undefined. */
	tokenToId(token: string): number | undefined;
	/** Ids that end generation: the config's `eos_token` first, then `<|im_end|>` and `<|endoftext|>`. */
	readonly eosTokenIds: readonly number[];
	/** Id of the config's `pad_token`, if any. */
	readonly padTokenId?: number;
	/** The config's `chat_template` (Jinja source), if any. */
	readonly chatTemplate?: string;
	/** Tokenizer length: highest id + 1 over vocab and added tokens (151,665 for Qwen2.5). */
	readonly vocabSize: number;
}
/**
 * Load a tokenizer from the text of `tokenizer.json` (and optionally `tokenizer_config.json` and
 * `generation_config.json`), or from model files (`urlFiles`, `r2Files`, `memoryFiles`, ...), whose
 * `tokenizer.json` must exist and whose other two files are read when present.
 *
 * Only byte-level BPE tokenizers (Qwen2/2.5/3) are accepted: mesp's streaming decoder and byte
 * handling rely on the byte-level decoder.
 *
 * @example
 * ```ts ignore
 * const tok = await loadTokenizer(urlFiles("https://example.com/Qwen2.5-0.5B/"));
 * tok.encode("Hello world"); // [9707, 1879]
 * ```
 */
export declare function loadTokenizer(files: TokenizerFiles | ModelFiles, options?: LoadTokenizerOptions): Promise<Tokenizer>;
/** Options for {@linkcode loadTokenizer}. */
export interface LoadTokenizerOptions {
	/**
	 * The tokenizer's module itself (`dist/tokenizer.js`, imported by the caller), for runtimes that give
	 * modules no URL to find it from (workerd). Default: imported from beside this module when first needed.
	 */
	module?: TokenizerModule;
}
/** What the tokenizer's module (`hf_tokenizer.ts`, built as `dist/tokenizer.js`) exports. */
export interface TokenizerModule {
	buildTokenizer(files: TokenizerFiles): Tokenizer;
}
/** Options for {@link createStreamDecoder}. */
export interface StreamDecoderOptions {
	/** Drop special added tokens from the output. Default false (same as {@link Tokenizer.decode}). */
	skipSpecialTokens?: boolean;
}
/** Incremental detokenizer for generation; see {@link createStreamDecoder}. */
export interface StreamDecoder {
	/** Feed one generated id; returns only the text completed by it (may be ""). */
	push(id: number): string;
	/** End of stream: returns what is left (U+FFFD for a dangling partial UTF-8 sequence). */
	flush(): string;
}
/**
 * Create a streaming decoder: pushing ids one at a time yields text that, concatenated (plus
 * `flush()`), equals `tokenizer.decode(allIds)`. A character whose UTF-8 bytes are split across
 * byte-level tokens (common for CJK and emoji) is held back until its last byte arrives, so no
 * U+FFFD is printed mid-stream.
 */
export declare function createStreamDecoder(tokenizer: Tokenizer, options?: StreamDecoderOptions): StreamDecoder;
/**
 * Qwen2/Qwen2.5 ChatML rendering, written out by hand so no Jinja engine is needed.
 *
 * {@link renderChat} reproduces the Qwen2.5-Instruct `chat_template` (docs/formats.md) byte for byte
 * for conversations without tools. Tool use (`tools`, `tool_calls`, role `tool`) is rejected with
 * an error rather than rendered: mesp trains on plain chat, and a half-supported tool format would
 * silently teach the wrong markup.
 *
 * @module
 */
/** Roles {@link renderChat} accepts. */
export type ChatRole = "system" | "user" | "assistant";
/** One chat turn. */
export interface ChatMessage {
	/** Who speaks. */
	role: ChatRole;
	/** What is said (plain text; may contain anything, including ChatML markers). */
	content: string;
}
/** Options for {@link renderChat}. */
export interface RenderChatOptions {
	/** Append `<|im_start|>assistant\n` so the model writes the next assistant turn. Default false. */
	addGenerationPrompt?: boolean;
	/**
	 * System prompt inserted when the first message is not a system message. Default
	 * {@link QWEN2_5_DEFAULT_SYSTEM}; `null` inserts none (Qwen3 style).
	 */
	defaultSystem?: string | null;
}
/** The chat-rendering facts taken from a model's chat template; see {@link chatDefaultsFromTemplate}. */
export interface ChatDefaults {
	/** System prompt inserted when a conversation has none (`null`: none). */
	defaultSystem: string | null;
}
/**
 * Render messages as Qwen2.5 ChatML, exactly as the Qwen2.5-Instruct Jinja template does without
 * tools: a system block first (the first message if it is a system message, else the default
 * system prompt unless `defaultSystem` is null), then `<|im_start|>{role}\n{content}<|im_end|>\n`
 * per remaining message, then `<|im_start|>assistant\n` if `addGenerationPrompt`.
 *
 * @example
 * ```ts
 * renderChat([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * // "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
 * // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
 * ```
 */
export declare function renderChat(messages: readonly ChatMessage[], options?: RenderChatOptions): string;
/**
 * Detect the chat defaults of a model from its `chat_template` (from `tokenizer_config.json`):
 * the literal system block the template inserts when the conversation has no system message.
 * Qwen2.5-Instruct gives {@link QWEN2_5_DEFAULT_SYSTEM}, Qwen2 / base templates
 * {@link QWEN2_DEFAULT_SYSTEM}, Qwen3 (no literal system block) `null`. Without a template
 * (`undefined` or empty) the Qwen2.5-Instruct default is assumed, matching {@link renderChat}.
 * Throws for a template that is not ChatML, since {@link renderChat} would not match it.
 */
export declare function chatDefaultsFromTemplate(chatTemplate?: string): ChatDefaults;
/**
 * The record every stage after tokenization passes around: a sequence's token ids and which of them are
 * trained targets.
 *
 * @module
 */
/** A tokenized sequence. `targets[t] = 1`: token t is predicted from position t−1 and counts in the loss. */
export interface Sequence {
	/** Token ids. */
	ids: Int32Array;
	/**
	 * One byte per token: 1 = trained target, 0 = context only (`targets[0]` is always 0). Absent: every
	 * position 1…T−1 is trained. Evaluation scores every predicted position unless told `score: "trained"`.
	 */
	targets?: Uint8Array;
}
interface RecordSource {
	/** File name as given to {@link parseJsonl}. */
	file: string;
	/** 1-based line number. */
	line: number;
}
/** Plain text: every token trained. */
export interface TextRecord extends RecordSource {
	/** Discriminant. */
	kind: "text";
	/** The text (non-empty). */
	text: string;
}
/** A chat (from `messages`, string prompt/completion, or conversational prompt/completion). */
export interface ChatRecord extends RecordSource {
	/** Discriminant. */
	kind: "chat";
	/** The whole conversation. */
	messages: ChatMessage[];
	/** Only assistant messages at index ≥ `trainFrom` are trained (0 for `messages`). */
	trainFrom: number;
}
/** Pre-tokenized ids. */
export interface TokensRecord extends RecordSource {
	/** Discriminant. */
	kind: "tokens";
	/** Token ids (at least 2). */
	inputIds: number[];
	/** Optional HF-style labels: `-100` marks a position that is not a target. */
	labels?: number[];
}
/** One parsed dataset line. */
export type DatasetRecord = TextRecord | ChatRecord | TokensRecord;
/** Options for {@link parseJsonl}. */
export interface ParseJsonlOptions {
	/** File name used in error messages. */
	file: string;
}
/**
 * Parse a JSONL dataset into records. Errors name the file and 1-based line.
 *
 * @example
 * ```ts
 * const recs = parseJsonl('{"text": "hi"}\n', { file: "train.jsonl" });
 * // [{ kind: "text", text: "hi", file: "train.jsonl", line: 1 }]
 * ```
 */
export declare function parseJsonl(text: string, options: ParseJsonlOptions): DatasetRecord[];
/** Options for {@link tokenizeExample} and {@link tokenizeDataset}. */
export interface TokenizeOptions {
	/** Maximum tokens per example; longer examples keep their first `seqLen` tokens. */
	seqLen: number;
	/** Chat rendering defaults (see `chatDefaultsFromTemplate`). Default: Qwen2.5-Instruct's. */
	chatDefaults?: ChatDefaults;
	/** Append `<|endoftext|>` to text records. Default true. */
	appendEosToText?: boolean;
	/**
	 * Keep examples that have no trained target within `seqLen` (for scoring every position); default false:
	 * dropped and counted, as training could not use them.
	 */
	keepUntrained?: boolean;
	/** Told `(records done, records)` every {@linkcode PROGRESS_EVERY} records and at the end (a long file). */
	onProgress?: (done: number, total: number) => void;
}
/** A tokenized example: a {@linkcode Sequence} of at most `seqLen` ids, with its targets. */
export interface TokenizedExample extends Sequence {
	targets: Uint8Array;
	/** Tokens cut off by truncation (0 if the example fit). */
	truncated: number;
}
/**
 * Tokenize one record and build its target mask: chats train each trained
 * assistant turn's content plus its `<|im_end|>` and `\n`, and mask system/user turns and the
 * `<|im_start|>assistant\n` header; text trains every token; pre-tokenized data trains positions
 * 1…T−1 (or its `labels`). The result is truncated to `seqLen` tokens, keeping the start.
 */
export declare function tokenizeExample(record: DatasetRecord, tokenizer: Tokenizer, options: TokenizeOptions): TokenizedExample;
/** Counts from {@link tokenizeDataset}. */
export interface TokenizeStats {
	/** Records read. */
	records: number;
	/** Examples kept. */
	examples: number;
	/** Records cut to `seqLen` (kept or dropped). */
	truncated: number;
	/** Records dropped because truncation left no target. */
	dropped: number;
	/** Tokens over kept examples. */
	tokens: number;
	/** Target tokens over kept examples. */
	targets: number;
	/** Tokens of the longest record before cutting (absent in caches written before 2026-12-03). */
	longest?: number;
}
/**
 * Tokenize every record; examples left without any target by truncation are dropped and counted (unless
 * `keepUntrained`: then only those shorter than 2 tokens, which predict nothing).
 */
export declare function tokenizeDataset(records: readonly DatasetRecord[], tokenizer: Tokenizer, options: TokenizeOptions): {
	examples: TokenizedExample[];
	stats: TokenizeStats;
};
/** Tokenization options as requested by a caller. */
export interface TokenCacheOptions {
	/** Maximum tokens per example. */
	seqLen: number;
	/** Default system prompt for chats; undefined = detect from the tokenizer config's chat template. */
	defaultSystem?: string | null;
	/** Append `<|endoftext|>` to text records (default true). */
	appendEosToText?: boolean;
	/** Keep examples with no trained target (`TokenizeOptions.keepUntrained`; default false). */
	keepUntrained?: boolean;
}
/** Tokenization options with every default resolved; part of the cache key. */
export interface ResolvedTokenCacheOptions {
	/** Maximum tokens per example. */
	seqLen: number;
	/** Default system prompt for chats (`null`: none). */
	defaultSystem: string | null;
	/** Append `<|endoftext|>` to text records. */
	appendEosToText: boolean;
	/** Present (true) only when examples without a trained target are kept: other caches keep their keys. */
	keepUntrained?: true;
}
/** What a cache file records about itself (its header JSON). */
export interface TokenCacheMeta {
	/** Cache key (hex SHA-256, see the module doc). */
	key: string;
	/** Hex SHA-256 of the dataset file. */
	datasetSha256: string;
	/** Hex SHA-256 of `tokenizer.json`. */
	tokenizerSha256: string;
	/** Hex SHA-256 of `tokenizer_config.json`, or null without one. */
	tokenizerConfigSha256: string | null;
	/** Dataset file name, for messages. */
	datasetFile: string;
	/** Options the examples were tokenized with. */
	options: ResolvedTokenCacheOptions;
	/** Tokenizer length: every id is below it. */
	vocabSize: number;
	/** Counts from tokenization. */
	stats: TokenizeStats;
}
/** A decoded token cache. Views share the decoded buffer. */
export interface TokenCache {
	/** Header. */
	meta: TokenCacheMeta;
	/** Number of examples. */
	count: number;
	/** `count + 1` offsets into `ids`/`targets`. */
	offsets: Uint32Array;
	/** All ids, examples back to back. */
	ids: Int32Array;
	/** All targets, aligned with `ids`. */
	targets: Uint8Array;
	/** Example `i` as zero-copy views. */
	example(i: number): Required<Sequence>;
}
/** Serialize examples and their meta into token cache bytes. */
export declare function encodeTokenCache(examples: readonly Required<Sequence>[], meta: TokenCacheMeta): Uint8Array;
/** Options for {@link decodeTokenCache}. */
export interface DecodeTokenCacheOptions {
	/** Name (e.g. file path) used in error messages. Default "token cache". */
	name?: string;
}
/**
 * Decode and fully validate token cache bytes (magic, version, sizes, CRC, header, offsets, id
 * range, target values). Throws an Error naming the cache on any inconsistency, so callers can
 * treat a throw as "corrupt, rebuild".
 */
export declare function decodeTokenCache(input: Uint8Array | ArrayBuffer, options?: DecodeTokenCacheOptions): TokenCache;
/** Everything needed to build a token cache, as bytes (so it can be transferred to a Worker). */
export interface TokenCacheBuildJob {
	/** The JSONL dataset file's bytes. */
	datasetBytes: Uint8Array;
	/** Its name, for error messages and the header. */
	datasetFile: string;
	/** `tokenizer.json` bytes. */
	tokenizerJsonBytes: Uint8Array;
	/** `tokenizer_config.json` bytes, if the model has one. */
	tokenizerConfigBytes?: Uint8Array;
	/** Tokenization options. */
	options: TokenCacheOptions;
	/**
	 * What the caller calls the sequence length, for messages (the CLI's `--seq-len`, the web page's "Sequence
	 * length"); default `seqLen`.
	 */
	seqLenName?: string;
}
/**
 * Parse, tokenize and encode a dataset into token cache bytes in the current thread. Loads the
 * tokenizer (lazily imported, so modules that only decode caches never load the library).
 */
export declare function buildTokenCache(job: TokenCacheBuildJob, onProgress?: (done: number, total: number) => void): Promise<Uint8Array>;
/**
 * {@link buildTokenCache} in a module Worker that is terminated afterwards, so the tokenizer's
 * heap is torn down with it. The job's byte buffers are transferred (detached here).
 *
 * Note: a Worker shares the process, so the process's peak RSS (VmHWM) still includes the
 * tokenizer while it runs, and the allocator does not return all of it to the OS after
 * termination; a separate process (`token_cache_files.ts`, isolation "subprocess") avoids both.
 */
export declare function tokenizeInWorker(job: TokenCacheBuildJob, onProgress?: (done: number, total: number) => void): Promise<Uint8Array>;
/** LoRA hyper-parameters. */
export interface LoraOptions {
	/** Rank r (default 8). */
	rank?: number;
	/** Alpha (default 2·rank, as many recipes use; PEFT's own default is 8). */
	alpha?: number;
	/** Scale by alpha/√r instead of alpha/r. */
	rslora?: boolean;
	/** Which linears get an adapter (default all seven). Short names `q`, `gate` … are accepted. */
	targets?: readonly string[];
}
/** One adapter matrix pair of one layer, with byte offsets into the parameter region. */
export interface LoraPair {
	layer: number;
	target: Linear;
	inDim: number;
	outDim: number;
	/** Offsets in f32 elements from the start of the parameter region. */
	a: number;
	b: number;
}
/** The resolved adapter layout. */
export interface LoraLayout {
	rank: number;
	alpha: number;
	rslora: boolean;
	scale: number;
	targets: Linear[];
	/** pairs[layer][i] for targets[i]. */
	pairs: LoraPair[][];
	/** Elements of one layer's parameters, and of all layers. */
	layerElements: number;
	totalElements: number;
}
/** Lays out the adapter parameters of every layer: per layer, per target, A then B. */
export declare function loraLayout(cfg: ModelConfig, options?: LoraOptions): LoraLayout;
/** PEFT's saved name of a pair's A or B, e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. */
export declare function peftName(pair: LoraPair, which: "A" | "B"): string;
/** What a run does, which decides the regions it needs. */
export type RunMode = "eval" | "generate" | "train";
/** Training methods (MeSP is the default; the others are the paper's baselines). */
export type Method = "mesp" | "mebp" | "mezo";
/** Optimizers of the training loop. */
export type OptimizerName = "sgd" | "adamw";
/** Options that shape the plan. */
export interface PlanOptions {
	mode: RunMode;
	/** Longest sequence (tokens) a step processes. */
	seqLen: number;
	/** Element format of the weights. */
	format: PackFormat;
	/** Whether the weights carry bf16 scales (MLX source). */
	bf16Scales?: boolean;
	/** LoRA layout, if an adapter is trained or applied. */
	lora?: LoraLayout;
	/** Rows of the vocabulary processed at once by the loss (default 512). */
	vocabChunk?: number;
	/** Columns of the MLP's intermediate dimension per chunk: the pack's (default 256; a multiple of 64). */
	mlpChunk?: number;
	/** Keep every layer's weights resident instead of streaming one layer at a time. */
	resident?: boolean;
	/** Positions the KV cache holds (generate mode). */
	maxPositions?: number;
	/**
	 * Sequences one pass over the weights runs at once (eval mode; default 1): each has its own residual
	 * stream, normed input, adapter products and loss rows, so every layer and vocabulary chunk is read once
	 * for all of them (`SequenceBatch`).
	 */
	batch?: number;
	/** Training method (train mode). */
	method?: Method;
	/** Optimizer (train mode). */
	optimizer?: OptimizerName;
	/**
	 * Element type of the saved layer inputs (train mode; `--ckpt`): "f32" (default, gradients exact) or
	 * "bf16" (half the memory; the backward recomputes each layer from a rounded input, so gradients are
	 * close, not exact).
	 */
	savedInputDtype?: "f32" | "bf16";
	/**
	 * Save every k-th layer's input only (`--ckpt-every`; default 1: every layer), the segments between
	 * re-run once in the backward (`recompute.ts`, `everyKth`).
	 */
	savedInputEvery?: number;
	/**
	 * Save this many `[T, d]` layer inputs (2 … layers), the others recomputed in the backward with the fewest
	 * layer forwards that allows (`recompute.ts`, `fewestRecomputes`); not with `savedInputEvery`.
	 */
	savedInputs?: number;
	/**
	 * Layers that keep forward tensors for their backward (MeSP, f32, every layer's input saved): the last
	 * `mlp` layers keep their gate/up projections, the last `attention` layers their attention tensors, so
	 * the backward skips recomputing them (bitwise the same gradients; see `schedule.ts`).
	 */
	keep?: KeepSchedule;
	/** Keep a whole-model gradient buffer (gradient accumulation or clipping; train mode). */
	gradBuffer?: boolean;
	/**
	 * Spill the saved layer inputs, the adapter's parameters and the optimizer's moments to a file outside the
	 * arena (`spill.ts`; MeSP training with f32 saved inputs and the update fused into the backward): the
	 * arena keeps one layer's adapter and moments and no saved input.
	 */
	spill?: boolean;
	/** Scratch bytes one GEMM call needs (from the kernels). */
	gemmScratch: number;
}
/** How many layers keep forward tensors (the last ones of the model). */
export interface KeepSchedule {
	mlp: number;
	attention: number;
}
interface Dims {
	T: number;
	d: number;
	H: number;
	KV: number;
	hd: number;
	/** Query width H·hd and key/value width KV·hd. */
	qd: number;
	kvd: number;
	I: number;
	V: number;
	L: number;
	r: number;
	/** Vocabulary rows per loss chunk, MLP columns per chunk. */
	Vc: number;
	C: number;
	/** Positions of the rope tables and (generate) the KV cache. */
	P: number;
	/** Sequences per pass over the weights (eval; 1 otherwise). */
	B: number;
}
declare const BUFFERS: {
	readonly "weights.layers": "all layers' weights, resident (the pack's layer layout \u00D7 L)";
	readonly "weights.attn": "one layer's attention weights, biases and norms, streamed (the pack's layout)";
	readonly "weights.mlp": "2 slots \u00D7 one MLP chunk's weights (gate/up rows, down columns), streamed";
	readonly "weights.vocab": "2 slots \u00D7 Vc embedding / LM-head rows (the pack's vocabulary rows)";
	readonly "weights.norm": "[d] final RMSNorm weight";
	readonly rope: "[2, P, hd/2] cos, sin";
	readonly "gemm.scratch": "GEMM packing buffers, one area per thread";
	readonly "lora.params": "every adapter's A [r, in] and B [out, r], flat (lora.ts); spilled: one layer's";
	readonly "lora.grad": "the gradients of lora.params: one layer's or all";
	readonly "lora.h": "[slots, T, r] the adapters' x\u00B7A\u1D40 (slot 0 attention's, then gate, up, down of each sequence of the batch) and, in training, G\u00B7B (slots 4\u20137)";
	readonly "lora.h.attn": "[T, r] x\u00B7A\u1D40 of the attention linear in use";
	readonly "lora.h.gate": "[T, r] xn\u00B7A_gate\u1D40";
	readonly "lora.h.up": "[T, r] xn\u00B7A_up\u1D40";
	readonly "lora.h.down": "[T, r] m\u00B7A_down\u1D40";
	readonly "lora.gh.attn": "[T, r] s\u00B7G\u00B7B of the attention linear in use";
	readonly "lora.gh.gate": "[T, r] s\u00B7dG\u00B7B_gate";
	readonly "lora.gh.up": "[T, r] s\u00B7dU\u00B7B_up";
	readonly "lora.gh.down": "[T, r] s\u00B7G\u00B7B_down";
	readonly "act.x": "[B, T, d] residual stream of each sequence of the batch (training: [T, max(d, H\u00B7hd)])";
	readonly "act.xn": "[B, T, d] normed input of a block (the MLP's too), per sequence of the batch";
	readonly "act.q": "[T, H\u00B7hd] queries";
	readonly "act.k": "[T, KV\u00B7hd] keys";
	readonly "act.v": "[T, KV\u00B7hd] values";
	readonly "kv.k": "[L, P, KV\u00B7hd] key cache (generate)";
	readonly "kv.v": "[L, P, KV\u00B7hd] value cache (generate)";
	readonly "act.att": "[T, H\u00B7hd] attention output";
	readonly "act.scores": "[T, P] one head's scores / probabilities";
	readonly "act.rstd": "[T] 1/rms of a block's input norm";
	readonly "mlp.gu": "[2, T, C] gate and up chunks (training: also the views over it)";
	readonly "mlp.g": "[T, C] gate chunk (the forward's SwiGLU output is written over it)";
	readonly "mlp.u": "[T, C] up chunk";
	readonly "mlp.m": "[T, C] SwiGLU output / its gradient (training)";
	readonly saved: "[slots, T, d] saved layer inputs (f32 or bf16)";
	readonly "saved.decoded": "[T, d] a bf16 saved input decoded to f32, or a spilled one read back";
	readonly "grad.x": "[T, d] gradient of the residual stream";
	readonly "grad.xn": "[T, d] gradient of a normed block input";
	readonly "grad.q": "[T, H\u00B7hd] gradient of the queries";
	readonly "grad.k": "[T, KV\u00B7hd] gradient of the keys";
	readonly "grad.v": "[T, KV\u00B7hd] gradient of the values";
	readonly "grad.att": "[T, H\u00B7hd] gradient of the attention output";
	readonly "grad.scores": "[T, T] one head's score gradient";
	readonly "keep.mlp": "[layers, 2, T, I] gate and up projections of the last keep.mlp layers (budget schedule)";
	readonly "keep.attn": "[layers, T, 2d + 2\u00B7H\u00B7hd + 2\u00B7KV\u00B7hd + 1] xn, q, k, v, attention output, x2, 1/rms of the last keep.attention layers";
	readonly "mebp.x2": "[T, d] MeBP: the MLP block's input";
	readonly "mebp.P": "[H, T, T] MeBP: every head's attention probabilities";
	readonly "mebp.g": "[T, I] MeBP: gate pre-activations";
	readonly "mebp.u": "[T, I] MeBP: up projections";
	readonly "mebp.m": "[T, I] MeBP: SwiGLU outputs";
	readonly "mebp.h": "[7, T, r] MeBP: each adapter's x\u00B7A\u1D40 (q, k, v, o, gate, up, down)";
	readonly "opt.m": "AdamW first moments (like lora.params; spilled: one layer's)";
	readonly "opt.v": "AdamW second moments (like lora.params; spilled: one layer's)";
	readonly "loss.logits": "[T, Vc] logits of one vocabulary chunk";
	readonly "loss.rows": "[B, 6, T] per-row max, sum, target logit, logsumexp, loss, weight of each sequence";
	readonly "loss.targets": "[B, T] i32 target token per row (\u22121: none) of each sequence";
	readonly "loss.erow": "[d] one decoded LM-head row (the target's, for the gradient)";
};
type BufferName = keyof typeof BUFFERS;
type Buffers = {
	readonly [K in BufferName]: number;
};
/** The regions of a run, in the order they are laid out. */
export declare function planRegions(cfg: ModelConfig, o: PlanOptions): RegionSpec[];
interface KeyValues {
	k: number;
	v: number;
}
interface AttentionBuffers {
	x: number;
	xn: number;
	rstd: number;
	q: number;
	att: number;
	probs: number;
	probsStride: number;
	h: readonly [
		number,
		number,
		number,
		number
	];
}
interface MlpBuffers {
	x: number;
	xn: number;
	rstd: number;
	hg: number;
	hu: number;
	hd: number;
	g: number;
	u: number;
	ld: number;
	step: number;
	m: number;
	ldm: number;
	mStep: number;
}
interface KeptAttention {
	kv: KeyValues;
	buffers: AttentionBuffers;
	/** The MLP block's input (the residual after attention) `[T, d]`. */
	x2: number;
}
interface LossRows {
	max: number;
	sum: number;
	tlogit: number;
	lse: number;
	loss: number;
	weight: number;
	targets: number;
}
interface BatchSlot {
	x: number;
	xn: number;
	attention: AttentionBuffers;
	mlp: MlpBuffers;
	loss: LossRows;
}
interface Blocks {
	/**
	 * Where layer l writes and reads its keys and values: its rows of the key/value cache (generation), else
	 * `act.k`/`act.v` for every layer.
	 */
	readonly kv: readonly KeyValues[];
	/** The attention block's working buffers: one head's scores, one adapter product at a time. */
	readonly attention: AttentionBuffers;
	/** The forward's MLP working buffers: chunk buffers, the SwiGLU output over the gate chunk (dead by then). */
	readonly mlp: MlpBuffers;
	/** Layer l's kept attention tensors, or undefined when the schedule does not keep them. */
	readonly keptAttention: readonly (KeptAttention | undefined)[];
	/** Layer l's MLP buffers with its kept gate and up, or undefined when the schedule does not keep them. */
	readonly keptMlp: readonly (MlpBuffers | undefined)[];
	/** The batch's slots (`D.B` of them); slot 0 is over the buffers above. */
	readonly batch: readonly BatchSlot[];
}
interface MlpChunk {
	c0: number;
	c1: number;
	gate: WeightRef;
	up: WeightRef;
	down: WeightRef;
}
/** The per-layer vectors of a Qwen2 layer (biases, norm weights). */
export type LayerVector = "qBias" | "kBias" | "vBias" | "inputNorm" | "postNorm";
declare class WeightStream {
	#private;
	/** Layer whose attention block the slot holds (-1: none), in streaming mode. */
	loadedLayer: number;
	/** The attention linears' frozen weights, for the layer in use. */
	readonly attention: Record<AttentionLinear, WeightRef>;
	/** The MLP chunks, as stored in the pack; each chunk's descriptors point at it when loaded. */
	readonly chunks: readonly MlpChunk[];
	/** The vocabulary slot in use (a chunk of the embedding / LM head, or one row) as a weight. */
	readonly vocabRef: WeightRef;
	/**
	 * Over the memory `buffer` and the plan's buffers `p`; `slotBytes` are the sizes of one of the two MLP slots
	 * and one of the two vocabulary slots (half their regions).
	 */
	constructor(pack: Pack, buffer: ArrayBufferLike, p: Buffers, D: Dims, resident: boolean, slotBytes: {
		mlp: number;
		vocab: number;
	});
	/** Reads what a resident engine keeps (every layer) and the final norm. */
	readResident(norm: Float32Array): Promise<void>;
	/** Absolute pointer of a per-layer vector (bias or norm weight) of the layer in use. */
	vec(name: LayerVector): number;
	/**
	 * Makes layer `l`'s attention block current (reads it into its slot unless resident or already there).
	 * `through`: layers l + 1…through are loaded right after this one, in order (see `Pack.readAttention`).
	 */
	loadLayer(l: number, through?: number): Promise<void>;
	/** Makes the weight descriptors point at layer `l` (checking a streamed layer is in the slot). */
	useLayer(l: number): void;
	/** Makes MLP chunk `i` of layer `l` current (reads it into the MLP slot unless resident or already there). */
	loadChunk(l: number, i: number): Promise<void>;
	/** Number of vocabulary chunks. */
	get vocabChunks(): number;
	/** Reads vocabulary chunk `c` (embedding, or the untied LM head) into the vocabulary slot; its row count. */
	loadVocabChunk(c: number): Promise<number>;
	/**
	 * Reads row `id` of the embedding (`head`: of the LM head, the embedding when tied) into row 0 of the
	 * vocabulary slot; `vocabRef` then points at it.
	 */
	readRow(id: number, head: boolean): Promise<WeightRef>;
	/**
	 * {@linkcode readRow} without a promise, when the last `prefetchRows` gathered the row and no read-ahead
	 * is in flight (as in a step's token loops); undefined otherwise, for `readRow` to read it.
	 */
	gatheredRow(id: number, head: boolean): WeightRef | undefined;
	/**
	 * Announces the rows `ids[0..count)` that `readRow` is about to be asked for, so the pack fetches them in
	 * few reads (sorted, once each, neighbours merged) instead of one read a row.
	 */
	prefetchRows(ids: ArrayLike<number>, count: number, head: boolean): Promise<void>;
	/**
	 * Announces rows a later `prefetchRows` will ask for, so the next pass over the vocabulary (the loss's)
	 * keeps them as it reads them instead of the gather reading them: the next sequence's embedding rows
	 * (`head` false), taken from the loss's pass when the head is the embedding (tied), or an untied head's
	 * target rows, from the same step's pass. Tied, the targets are among the embedding rows gathered
	 * already: `head` then does nothing.
	 */
	expectRows(ids: ArrayLike<number>, count: number, head: boolean): void;
}
interface ScheduleChoice {
	/** Save every k-th layer's input (`--ckpt-every`); undefined with `savedInputs`. */
	savedInputEvery?: number;
	/** Saved-input slots, with the fewest recomputes they allow; undefined: every `savedInputEvery`-th. */
	savedInputs?: number;
	/** Layers keeping forward tensors (the last `mlp` layers their MLP's, the last `attention` theirs). */
	keep: KeepSchedule;
}
/** A chosen schedule, with what it is predicted to cost. */
export interface Schedule extends ScheduleChoice {
	/** `[T, d]` saved-input slots of its plan, and the layer forwards its backward recomputes for them. */
	slots: number;
	recomputed: number;
	/** Arena bytes of its plan. */
	arenaBytes: number;
	/** GEMM work of one step (FLOPs) and that of every input saved, nothing else kept. */
	flops: number;
	defaultFlops: number;
}
type RecomputeStep = 
/** The residual stream `act.x` ← slot `slot` (layer `layer`'s input). */
{
	kind: "restore";
	layer: number;
	slot: number;
}
/** Layer `layer`'s forward, in place in `act.x` (its weights loaded first). */
 | {
	kind: "forward";
	layer: number;
}
/** Slot `slot` ← `act.x` (layer `layer`'s input). */
 | {
	kind: "save";
	layer: number;
	slot: number;
}
/** Layer `layer`'s backward from its input in slot `slot` (its weights loaded first). */
 | {
	kind: "backward";
	layer: number;
	slot: number;
};
interface RecomputeOrder {
	/** `[T, d]` slots the order uses (the `saved` region). */
	slots: number;
	/** The forward pass: the slot layer l's input is saved in, or −1. */
	saveAt: readonly number[];
	/** The backward pass, after the loss. */
	backward: readonly RecomputeStep[];
	/** Layer forwards the backward runs (beyond each layer's own recompute inside its backward). */
	recomputed: number;
	/**
	 * Per backward step that loads a layer (`forward`, `backward`): the last layer of the run of loads from
	 * there that go up one layer at a time (a load of the layer just loaded, which reads nothing, continues
	 * the run; its own layer when the next load is below), so that a remote pack reads that run of layers as
	 * one response; −1 for the other steps.
	 */
	through: readonly number[];
}
interface SpillLayout {
	/** `slots` saved inputs of `inputBytes` each, from 0. */
	inputs: number;
	inputBytes: number;
	/** The adapter's parameters, layer after layer (`layerBytes` each), then the two AdamW moments (or 0). */
	params: number;
	m: number;
	v: number;
	layerBytes: number;
	/** The file's size. */
	bytes: number;
}
interface SpillBuffers {
	/** The residual stream `[T, d]` (saved from, restored into) and where a saved input is read back to. */
	x: number;
	decoded: number;
	/** One layer's adapter, and (AdamW) one layer's moments (0 without). */
	params: number;
	m: number;
	v: number;
}
declare class Spill {
	#private;
	readonly file: SpillFile;
	readonly layout: SpillLayout;
	constructor(file: SpillFile, layout: SpillLayout, memory: ArrayBufferLike, at: SpillBuffers);
	/**
	 * Writes the whole file once (zeros, through the arena's layer of adapter, before it is filled), so that a
	 * disk without room for it fails here, before the first step, naming the file.
	 */
	reserve(): void;
	/** Saves the residual stream as saved input `slot`. */
	saveInput(slot: number): void;
	/** Reads saved input `slot` back into the residual stream. */
	restoreInput(slot: number): void;
	/** Reads saved input `slot` into the read-back buffer. */
	readInput(slot: number): void;
	/** Makes the arena's one layer of adapter hold layer `l`'s. */
	loadAdapter(l: number): void;
	/** Reads layer `l`'s AdamW moments into the arena's one layer of them. */
	loadMoments(l: number): void;
	/** Reads layer `l`'s first (`m`) or second (`v`) AdamW moment alone (saving walks one after the other). */
	loadMoment(which: "m" | "v", l: number): void;
	/**
	 * Writes the arena's layer of adapter (and moments) as layer `l`'s, which it then holds: after the layer's
	 * update, or to fill the spill before the first step.
	 */
	storeLayer(l: number): void;
	/**
	 * Writes the arena's layer of one part (the adapter, a moment; absent moments are nothing) as layer `l`'s:
	 * a resume fills the spill a tensor at a time, as the training state's file holds them.
	 */
	store(part: "params" | "m" | "v", l: number): void;
}
/** Options for {@linkcode Engine.create}. */
export interface EngineOptions extends Omit<PlanOptions, "format" | "bf16Scales" | "gemmScratch" | "mlpChunk" | "spill"> {
	/**
	 * Spill the saved layer inputs, the adapter and the optimizer's moments to this file, the arena keeping
	 * one layer's (MeSP training, f32 saved inputs, the update fused into the backward; `spill.ts`).
	 */
	spillFile?: SpillFile;
	/**
	 * Arena budget in bytes: in MeSP training (f32 saved inputs) the fastest exact schedule that fits is
	 * chosen (`schedule.ts`; `savedInputs`, `savedInputEvery` and `keep` fixed when given); creation fails,
	 * showing the plan, if the plan (the smallest schedule's) is larger.
	 */
	budget?: number;
	/**
	 * Arena bytes to aim at when no `budget` is given (MeSP training, nothing fixed): the fastest exact
	 * schedule that fits, or, when none does, the fewest saved inputs recomputing at most one more forward
	 * pass (`targetSchedule` in `schedule.ts`); never refused. The CLI's default; without it every input is
	 * saved.
	 */
	target?: number;
	/** Kernel variant (default: the fastest this runtime validates). */
	variant?: Variant;
	/**
	 * Threads for the kernels (default 1). With 2 or more, where the runtime allows it, a worker pool splits
	 * GEMMs and row kernels (bitwise the same results); call `e.close()` when done, since live
	 * workers keep the process running.
	 */
	threads?: number;
	/** Split thresholds of the pool (tests and benchmarks). */
	poolOptions?: Omit<PoolOptions, "threads">;
	/** Collects kernel time by category (benchmarks). */
	profile?: Profile;
	/** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
	kernels?: KernelLocation;
}
/** Descriptors of one linear: the frozen weight and, if adapted, LoRA's A and B. */
export interface LinearRefs {
	/** The frozen weight (attention linears; the MLP's are per chunk, see `WeightStream.chunks`). */
	w?: WeightRef;
	pair?: LoraPair;
	a?: WeightRef;
	b?: WeightRef;
}
/** Whole-model state over a pack, with LoRA when a layout is given. */
export declare class Engine {
	#private;
	readonly cfg: ModelConfig;
	readonly pack: Pack;
	readonly kernels: PooledKernels;
	readonly k: KernelExports;
	readonly arena: Arena;
	readonly gemm: Gemm;
	readonly D: Dims;
	readonly lora?: LoraLayout;
	readonly options: EngineOptions;
	/** f32 and i32 views of the whole linear memory (the memory never grows after creation). */
	readonly F: Float32Array;
	readonly I32: Int32Array;
	/** Byte pointers of the plan's buffers (one the plan lacks throws when read). */
	readonly p: Buffers;
	/** Where each block's tensors go, every layer's (`blocks.ts`). */
	readonly blocks: Blocks;
	/** The frozen weights, streamed into their slots (or resident). */
	readonly weights: WeightStream;
	/** Which layer inputs a training step saves and how its backward recomputes the rest. */
	readonly recompute: RecomputeOrder;
	/** Where the saved inputs, the adapter and its moments live when spilled (the arena holds one layer's). */
	readonly spill?: Spill;
	private constructor();
	/** Plans the arena for `pack` and `options`, loads the kernels, lays out memory once. */
	static create(pack: Pack, options: EngineOptions): Promise<Engine>;
	/**
	 * The memory plan {@linkcode Engine.create} lays out for `options` (with all `threads` granted), without
	 * allocating it: what a caller shows, or refuses against a budget, first. Reads the kernels' scratch size
	 * and where the arena starts from the wasm bytes, instantiating nothing (`kernelConstants`).
	 */
	static plan(pack: Pack, options: EngineOptions): Promise<MemoryPlan>;
	/**
	 * The plan options of an engine over `pack` with `options` (all `threads` granted), before the budget's
	 * schedule: what `schedule.ts` chooses from.
	 */
	static planOptions(pack: Pack, options: EngineOptions): Promise<PlanOptions>;
	/** Stops the kernel workers, if any (live workers keep the process running). Memory views stay valid. */
	close(): void;
	/** The schedule this engine runs (which inputs and forward tensors are kept), with its predicted cost. */
	schedule(): Schedule;
	/**
	 * Makes layer `l`'s weights and (spilled) adapter the ones in use, before the layer runs; `through`: layers
	 * l + 1…through are loaded right after, in order (a remote pack reads them as one response).
	 */
	loadLayer(l: number, through?: number): Promise<void>;
	/** Descriptors of layer `l`'s linears. */
	refs(l: number): Record<Linear, LinearRefs>;
	/** The MLP chunks of a layer (descriptors of the chunk loaded last). */
	get chunks(): readonly MlpChunk[];
	/** Absolute pointer of a per-layer vector (bias or norm weight) of the layer in use. */
	vec(name: LayerVector): number;
	/** Pointers of the rope tables. */
	rope(): {
		readonly cos: number;
		readonly sin: number;
	};
	/** Linear memory size now (constant after creation). */
	memoryBytes(): number;
}
/** Where gradients go. */
export interface GradSink {
	/** Byte offset of the gradient region. */
	ptr: number;
	/** The region holds one layer's gradients (fused update) rather than the whole model's. */
	perLayer: boolean;
	/** Add to the gradients already there (gradient accumulation) instead of overwriting them. */
	accumulate: boolean;
}
/** Backward of every layer, writing LoRA gradients into a {@linkcode GradSink}. */
export declare class Backward {
	#private;
	readonly e: Engine;
	readonly sink: GradSink;
	/** Whether this is the MeBP baseline (see the constructor). */
	readonly mebp: boolean;
	/**
	 * With `mebp`, the layer's forward is recomputed once keeping what an autograd engine keeps (every head's
	 * probabilities, each adapter's x·Aᵀ, the full [T, intermediate] gate/up/activation tensors, the MLP input)
	 * and the backward reads them instead of recomputing (the MeBP baseline). The arithmetic is the same, so the
	 * gradients are bitwise equal to MeSP's; memory and time differ.
	 */
	constructor(e: Engine, sink: GradSink, options?: {
		mebp?: boolean;
	});
	/** Byte pointer of the gradient of element offset `off` (pair.a or pair.b) of layer `l`. */
	grad(l: number, off: number): number;
	/**
	 * Layer `l`, given dL/d(output) in `grad.x` and its input in saved-input slot `slot`: recomputes the
	 * forward (but what the schedule kept, `kept.ts`), writes every LoRA gradient of the layer and leaves
	 * dL/d(input) in `grad.x`.
	 */
	layerBackward(l: number, T: number, slot: number): Promise<void>;
}
/** Loss of a forward/backward pass. */
export interface StepLoss {
	/** Mean next-token loss over the trained positions. */
	loss: number;
	/** Trained positions. */
	tokens: number;
}
/**
 * Forward and backward of `ids[0..T)` with targets where `trained[t]` is set (all positions 1…T−1 when
 * omitted). LoRA gradients land in the backward's sink; `afterLayer(l)` runs right after layer `l`'s
 * gradients are complete (the fused optimizer update hooks in here).
 */
export declare function forwardBackward(e: Engine, bw: Backward, ids: ArrayLike<number>, trained: ArrayLike<number> | undefined, T: number, afterLayer?: (l: number) => void): Promise<StepLoss>;
/** The two-point estimate of one step. */
export interface ZoEstimate {
	lossPlus: number;
	lossMinus: number;
	/** Projected gradient (L+ − L−)/(2ε): the estimate is coeff · z. */
	coeff: number;
	tokens: number;
}
/**
 * Evaluates L(θ + εz) and L(θ − εz) over `batch` (mean of the sequences' losses) and restores θ.
 * `z` is the counter-based normal stream of `seed`, indexed by the parameter's position in `lora.params`.
 */
export declare function zoEstimate(e: Engine, batch: readonly Sequence[], seqLen: number, seed: number, eps: number): Promise<ZoEstimate>;
/** θ −= lr·(coeff·z + wd·θ), regenerating z from `seed`. */
export declare function zoUpdate(e: Engine, seed: number, coeff: number, lr: number, weightDecay: number): void;
/**
 * An adapter's flat f32 values (its parameters, or an optimizer moment, laid out by `lora.ts`): whole, as a
 * view of the arena, or a layer at a time when a run spills them (`spill.ts`), so that saving a spilled run
 * never holds them all at once.
 *
 * @module
 */
/** Values read one layer at a time: layer `l`'s `length / layers` elements, valid until the next call. */
export interface LayeredValues {
	readonly length: number;
	readonly layers: number;
	layer(l: number): Float32Array;
}
/** An adapter's values, whole or a layer at a time. */
export type AdapterValues = Float32Array | LayeredValues;
/** `values` in pieces: whole values in one, layered ones a layer at a time (each valid until the next). */
export declare function piecesOf(values: AdapterValues): Generator<Float32Array>;
/** LoRA options read from an adapter_config.json, and the base model it names. */
export interface AdapterConfig extends Required<Omit<LoraOptions, "targets">> {
	targets: string[];
	baseModel?: string;
}
/** Parses a PEFT LoRA adapter_config.json, rejecting what mesp cannot reproduce exactly. */
export declare function parseAdapterConfig(text: string, file?: string): AdapterConfig;
/** An adapter opened from a directory: its options and its weights file. */
export interface OpenedAdapter {
	config: AdapterConfig;
	weights: SafetensorsFile;
	name: string;
}
/** Opens `adapter_config.json` and the header of `adapter_model.safetensors` from a directory. */
export declare function openAdapter(files: ModelFiles): Promise<OpenedAdapter>;
/**
 * Copies an adapter's tensors into `params` (the engine's `lora.params`, laid out by `layout`), after
 * {@linkcode checkAdapter}.
 */
export declare function readAdapterInto(adapter: OpenedAdapter, layout: LoraLayout, params: Float32Array): Promise<void>;
/**
 * Streams LoRA tensors (see {@linkcode loraTensorEntries}) as a safetensors file to `sink`; layered values
 * (a spilled run's) are read a layer at a time as the writer reaches each tensor.
 */
export declare function writeLoraTensors(sink: ByteSink, layout: LoraLayout, values: AdapterValues, extra?: Record<string, Float32Array>): Promise<void>;
/** LoRA tensors as safetensors bytes (for small adapters and tests; large ones stream). */
export declare function encodeLoraTensors(layout: LoraLayout, values: Float32Array, extra?: Record<string, Float32Array>): Uint8Array;
/** adapter_config.json as PEFT writes it (sorted keys, indent 2). */
export declare function adapterConfigJson(layout: LoraLayout, baseModel?: string): string;
/** Optimizer hyper-parameters. */
export interface OptimizerOptions {
	name: OptimizerName;
	/** Peak learning rate. */
	lr: number;
	weightDecay?: number;
	beta1?: number;
	beta2?: number;
	eps?: number;
	/**
	 * "constant" or "cosine" (linear warmup then cosine decay to 0 at the last step, like HF); default
	 * {@linkcode DEFAULT_SCHEDULE}.
	 */
	schedule?: "constant" | "cosine";
	warmup?: number;
	/** Total optimizer steps (for the cosine schedule). */
	totalSteps?: number;
}
/** Learning rate at optimizer step `step` (0-based). */
export declare function learningRate(o: OptimizerOptions, step: number): number;
/** Applies one optimizer step to parameter ranges. */
export declare class Optimizer {
	#private;
	readonly options: OptimizerOptions;
	/** `params`, `m`, `v` are byte offsets of the parameter region and (AdamW) the moment regions. */
	constructor(k: KernelExports, options: OptimizerOptions, params: number, m?: number, v?: number);
	/**
	 * Updates parameters [off, off + n) (element offsets) from gradients at byte pointer `grad`, scaled by
	 * `gradScale` first when it is not 1 (clipping), at optimizer step `step` (0-based).
	 */
	update(off: number, n: number, grad: number, step: number, gradScale?: number): void;
}
/** A run's options as its training state records them (every default resolved). */
export interface TrainConfig {
	method: Method;
	seqLen: number;
	/** The optimizer steps the run was to make. */
	steps: number;
	gradAccum: number;
	clip: number;
	zoEps: number;
	optimizer: {
		lr: number;
		schedule: "constant" | "cosine";
		warmup: number;
		weightDecay: number;
		beta1: number;
		beta2: number;
		eps: number;
	};
	/** Fingerprint of the training sequences ({@linkcode sequencesFingerprint}). */
	data: string;
	/** How often it saved and validated (0: at the end only): a resume keeps them unless given. */
	saveEvery?: number;
	valEvery?: number;
}
/**
 * A fingerprint of training sequences: each one's length, every token id and its trained positions (or that
 * it has none: all trained), in order, so sequences cut at other places are other data. `lengths: false` is
 * the fingerprint without the lengths, which CLI runs record as their `data` (kept, so that runs recorded
 * before 2026-12-03 resume; the state's own `config.data` has the lengths).
 */
export declare function sequencesFingerprint(seqs: readonly Sequence[], options?: {
	lengths?: boolean;
}): string;
/** Options of {@linkcode train}. */
export interface TrainOptions {
	/**
	 * "mesp" (default): exact gradients, structured backward. "mebp": the checkpointed-backprop baseline (same
	 * gradients, autograd's memory). "mezo": the zeroth-order baseline (forward passes only, SGD).
	 */
	method?: Method;
	/** MeZO's perturbation scale ε (default 1e-3). */
	zoEps?: number;
	/**
	 * Longest sequence in tokens (longer ones are cut). On a resume, the state's when left out (JavaScript) or
	 * given as `resume.config.seqLen`.
	 */
	seqLen: number;
	/** Optimizer steps; or give `epochs`. */
	steps?: number;
	epochs?: number;
	lora?: LoraOptions;
	/** Seed of the LoRA initialisation and the data order. */
	seed?: number;
	/**
	 * The optimizer, as the CLI's defaults: AdamW (SGD for MeZO), lr 2e-4 (SGD 1e-4, MeZO 5e-5), a cosine
	 * schedule without warmup; each field may be given alone.
	 */
	optimizer?: Partial<Omit<OptimizerOptions, "totalSteps">>;
	/** Sequences per optimizer step (gradient accumulation; default 1, update fused into the backward). */
	gradAccum?: number;
	/** Clip the global gradient norm to this (0 = off). */
	clip?: number;
	/** Validate every this many steps (and at the end) when validation data is given; 0: at the end only. */
	valEvery?: number;
	/** Save the training state every this many steps (and at the end); 0: at the end only. */
	saveEvery?: number;
	/**
	 * Continue from a saved training state: decoded in memory (`decodeTrainingState`), or still in its file
	 * (`openTrainingState`), read from there a layer at a time into the arena or the spill.
	 */
	resume?: TrainState | StoredTrainState;
	/** Start from an existing adapter instead of a fresh initialisation. */
	adapter?: OpenedAdapter;
	/**
	 * Arena budget in bytes: MeSP (f32 saved inputs) runs the fastest exact schedule that fits (which layer
	 * inputs are saved, which forward tensors kept, `schedule.ts`; bitwise the same gradients for every
	 * budget); any run whose smallest plan is larger is refused before it starts.
	 */
	budget?: number;
	/** Arena bytes the schedule aims at when no `budget` is given, never refused (`EngineOptions.target`). */
	target?: number;
	variant?: Variant;
	/** Kernel threads (default 1); results are bitwise the same for any count. */
	threads?: number;
	/** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
	kernels?: KernelLocation;
	resident?: boolean;
	/** Saved layer inputs in f32 (default, exact) or bf16 (half the memory, near-exact gradients). */
	savedInputDtype?: "f32" | "bf16";
	/** Vocabulary rows per loss chunk (default 512). */
	vocabChunk?: number;
	/** Save every k-th layer's input (default 1); the backward recomputes the rest (less memory, more time). */
	savedInputEvery?: number;
	/** Save this many layer inputs, the rest recomputed with the fewest layer forwards (not with the above). */
	savedInputs?: number;
	/** @deprecated Renamed {@linkcode savedInputDtype}; this name goes in the next release. */
	ckptDtype?: "f32" | "bf16";
	/** @deprecated Renamed {@linkcode savedInputEvery}; this name goes in the next release. */
	ckptEvery?: number;
	/**
	 * Keep the saved layer inputs, the adapter and the optimizer's moments in this file instead of the arena,
	 * which then holds one layer's (`spill.ts`; MeSP, f32 saved inputs, no gradient accumulation or
	 * clipping): much less memory, every layer's input saved, bitwise the same results. The CLI passes a
	 * file in the run folder; in a browser worker an OPFS `FileSystemSyncAccessHandle` fits. The state and
	 * result then hand the adapter out a layer at a time (`LayeredValues`).
	 */
	spill?: SpillFile;
	/** Called with progress, validation and save events. */
	onEvent?: (event: TrainEvent) => void;
	/** Persists the training state (atomically; `writeTrainingState` encodes it); awaited before going on. */
	saveState?: (state: TrainState) => void | Promise<void>;
	/** @deprecated Renamed {@linkcode TrainOptions.saveState}; this name goes in the next release. */
	saveCheckpoint?: (state: TrainState) => void | Promise<void>;
	/** Polled between steps: return (or resolve to) true to stop early (after saving). */
	shouldStop?: () => boolean | Promise<boolean>;
}
/** Everything needed to continue a run exactly where it stopped. */
export interface TrainState {
	/** Optimizer steps done. */
	step: number;
	/** Data position: epoch and index within that epoch's order. */
	epoch: number;
	cursor: number;
	seed: number;
	/**
	 * LoRA parameters and (AdamW) moments. Handed to `saveState` as views of the engine's memory (no
	 * copies), or a layer at a time from the spill: valid until training continues, so persist or copy them
	 * before returning.
	 */
	params: AdapterValues;
	m?: AdapterValues;
	v?: AdapterValues;
	/** The adapter layout the parameters belong to. */
	lora: {
		rank: number;
		alpha: number;
		rslora: boolean;
		targets: string[];
	};
	optimizer: string;
	/**
	 * The options the run was made with (absent in states written before 2026-12-03): a resume takes them
	 * where its options leave them out, and refuses given ones the state depends on that differ
	 * (`train_config.ts`).
	 */
	config?: TrainConfig;
}
/** The tensors of a training state, in the order they are stored and checksummed. */
export type StateTensor = "params" | "adam_m" | "adam_v";
/**
 * A training state left in its file (`openTrainingState`), read as it is needed: a resume then never holds
 * the whole state, only the places it is read into.
 */
export interface StoredTrainState extends Omit<TrainState, "params" | "m" | "v"> {
	/** Elements of the parameters, and of each moment. */
	readonly length: number;
	/** The tensors it holds, in the order {@linkcode StoredTrainState.read} visits them. */
	readonly tensors: readonly StateTensor[];
	/**
	 * Reads every tensor from its start, `piece` elements at a time (the last piece may be shorter): piece `i`
	 * of tensor `t` into the array `into(t, i)` returns (exactly the piece's length; `undefined`: check only),
	 * then calls `done(t, i)`. Checks as it reads (finite values, no negative second moment, the checksum after
	 * the last piece) and throws naming the file and the tensor.
	 */
	read(piece: number, into: (t: StateTensor, i: number) => Float32Array | undefined, done?: (t: StateTensor, i: number) => void): Promise<void>;
}
/** Progress and results, as events. */
export type TrainEvent = {
	type: "plan";
	table: string;
	bytes: number;
	/** MeSP: the schedule the budget bought (which inputs and forward tensors are kept), one line. */
	schedule?: string;
	/** A spilled run: what its spill holds and how large it grows, one line. */
	spill?: string;
} | {
	type: "step";
	step: number;
	steps: number;
	loss: number;
	lr: number;
	/** Tokens the step's loss scored (trained targets: for chat data the replies, not the whole sequence). */
	tokens: number;
	/** Those tokens per second since the run (or its resume) started. */
	tokensPerSecond: number;
	elapsed: number;
} | {
	type: "val";
	step: number;
	loss: number;
	tokens: number;
}
/** The training state was handed to `saveState` (the type keeps its old name so listeners keep working). */
 | {
	type: "checkpoint";
	step: number;
};
/** The result of {@linkcode train}: the trained adapter and the loss history. */
export interface TrainResult {
	layout: LoraLayout;
	/**
	 * The trained parameters: a view of the engine's memory; a spilled run's are read from the spill into an
	 * array of their own when first asked for (so keep the spill open until then).
	 */
	readonly params: Float32Array;
	steps: number;
	losses: number[];
	valLosses: {
		step: number;
		loss: number;
	}[];
	/** Whether the run stopped early (shouldStop). */
	stopped: boolean;
}
/** A NaN or ±∞ loss or parameter: the run stops at that step; nothing after the last save is written. */
export declare class NonFiniteError extends Error {
	/** The optimizer step (1-based) at which it appeared. */
	readonly step: number;
	/** @param message where and what to try; @param step the 1-based step */
	constructor(message: string, step: number);
}
/**
 * The memory plan {@linkcode train} would lay out for `options`, computed without loading any weights or
 * allocating the arena: to show it, or to refuse a budget before the work starts (compare its `bytes` with
 * the budget; it does not throw: `train` with `budget` throws `PlanTooLargeError`). `train` plans for the
 * longest of `data` and `val` once cut to `seqLen`: give them for its plan, leave them out for `seqLen`'s
 * (what the longest data could need).
 */
export declare function planTraining(pack: Pack, options: TrainOptions, data?: readonly Sequence[], val?: readonly Sequence[]): Promise<MemoryPlan>;
/** Fine-tunes a LoRA adapter on `data` with exact gradients; `val` is scored every `valEvery` steps. */
export declare function train(pack: Pack, data: readonly Sequence[], val: readonly Sequence[], options: TrainOptions): Promise<TrainResult>;
/** Options for {@linkcode evaluate}. */
export interface EvaluateOptions {
	/** Apply this adapter. */
	adapter?: OpenedAdapter;
	/** Longest sequence; longer ones are cut to it (default: the longest given). */
	seqLen?: number;
	/** Arena budget in bytes (a smaller batch is chosen to fit it). */
	budget?: number;
	/**
	 * Sequences scored in one pass over the weights, each reading every layer and vocabulary chunk once for
	 * all of them (the results are bitwise the same for any batch). Default: as many as {@linkcode
	 * BATCH_BYTES} more memory holds, at most {@linkcode MOST_BATCH}; with a `budget`, at most what fits it.
	 */
	batch?: number;
	/** Kernel variant. */
	variant?: Variant;
	/** Keep all layers resident instead of streaming. */
	resident?: boolean;
	/** Kernel threads (default 1); results are bitwise the same for any count. */
	threads?: number;
	/** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
	kernels?: KernelLocation;
	/**
	 * Which positions are scored: `"all"` (default) every predicted position 1…T−1, the perplexity of the whole
	 * text; `"trained"` only each sequence's trained targets (for chat data the assistant's replies), what
	 * training's loss and its validation loss score.
	 */
	score?: "all" | "trained";
	/** Called after each sequence (a batch's at once, when the batch is done). */
	onProgress?: (done: number, total: number, meanNll: number) => void;
}
/** What {@linkcode evaluate} measured. */
export interface EvaluateResult {
	/** Mean negative log-likelihood per predicted token (nats). */
	nll: number;
	/** exp(nll). */
	perplexity: number;
	/** Predicted tokens scored (positions 1 … T−1 of every sequence, or its trained targets). */
	tokens: number;
	sequences: number;
	/** Sequences scored per pass over the weights. */
	batch: number;
}
/**
 * Scores every predicted position of every sequence (token-weighted over the whole set), with the model's
 * weights streamed one layer at a time, once per batch of sequences.
 */
export declare function evaluate(pack: Pack, sequences: readonly Sequence[], options?: EvaluateOptions): Promise<EvaluateResult>;
/** Options for {@linkcode generate}. */
export interface GenerateOptions {
	/** Most new tokens (default 128). */
	maxTokens?: number;
	/** Sampling temperature; 0 = greedy (default 0.7). */
	temperature?: number;
	/** Nucleus sampling mass (default 0.8). */
	topP?: number;
	/** Seed of the sampler (default 0). */
	seed?: number;
	/** Token ids that end generation (default: the model's, `pack.config.eosTokenIds`; `[]` for none). */
	eosTokenIds?: readonly number[];
	adapter?: OpenedAdapter;
	/** Stream the weights instead of keeping them resident (less memory, slower). */
	streamWeights?: boolean;
	budget?: number;
	variant?: Variant;
	/** Kernel threads (default 1); results are bitwise the same for any count. */
	threads?: number;
	/** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
	kernels?: KernelLocation;
	/** Sees the full-vocabulary logits each token is sampled from (a buffer reused for the next token). */
	onLogits?: (logits: Float32Array) => void;
}
/**
 * Generates tokens after `prompt`, yielding each as it is sampled (an end-of-sequence id included, then
 * stops). The arguments are checked when it is called, before the first token is asked for.
 */
export declare function generate(pack: Pack, prompt: ArrayLike<number>, options?: GenerateOptions): AsyncGenerator<number>;
/** Greedy, or temperature + top-p sampling with a seeded xorshift generator. */
export declare function sampler(options: Pick<GenerateOptions, "temperature" | "topP" | "seed">): (logits: Float32Array) => number;
/** Options of {@linkcode computeGradients}. */
export interface GradOptions {
	method?: Method;
	/** Adapter to differentiate at (default: a fresh PEFT initialisation from `lora` and `seed`). */
	adapter?: OpenedAdapter;
	lora?: LoraOptions;
	seed?: number;
	/** MeZO's perturbation scale ε (default 1e-3). */
	zoEps?: number;
	seqLen?: number;
	/** Saved layer inputs in f32 (default, exact) or bf16. */
	savedInputDtype?: "f32" | "bf16";
	/** Save every k-th layer's input (default 1), or `savedInputs` of them (see `EngineOptions`). */
	savedInputEvery?: number;
	savedInputs?: number;
	/** @deprecated Renamed {@linkcode savedInputDtype}; this name goes in the next release. */
	ckptDtype?: "f32" | "bf16";
	/** @deprecated Renamed {@linkcode savedInputEvery}; this name goes in the next release. */
	ckptEvery?: number;
	/** Arena budget (refused when nothing fits) or target (never refused), as in `EngineOptions`. */
	budget?: number;
	target?: number;
	variant?: Variant;
	/** Kernel threads (default 1); results are bitwise the same for any count. */
	threads?: number;
	/** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
	kernels?: KernelLocation;
}
/** Loss and gradients, laid out like the parameters. */
export interface GradResult {
	layout: LoraLayout;
	loss: number;
	tokens: number;
	params: Float32Array;
	/** The gradient (MeZO: its estimate coeff · z). */
	grads: Float32Array;
	/** MeZO's projected gradient (L+ − L−)/(2ε). */
	coeff?: number;
}
/** dLoss/dθ for every LoRA parameter θ on one sequence. */
export declare function computeGradients(pack: Pack, seq: Sequence, options?: GradOptions): Promise<GradResult>;
/** The training state's file name inside a run directory (its name from before the rename, kept). */
export declare const TRAINING_STATE_FILE = "checkpoint.safetensors";
/**
 * Writes a training state (plus free-form run metadata) as safetensors to `sink`, streaming the tensors
 * from wherever they live (the engine's memory: no copies). A state with a NaN or ±∞ is refused.
 */
export declare function writeTrainingState(sink: ByteSink, state: TrainState, run?: Record<string, unknown>): Promise<void>;
/** Options of {@linkcode trainingStateStream}. */
export interface TrainingStateStreamOptions {
	/**
	 * Hand out the tensors' bytes as views of their memory instead of copies, where that memory is not shared
	 * (one thread: workerd, `threads: 1`): no copy and no garbage. In a 128 MB isolate use it: V8 does not
	 * collect the copies before the upload ends (uploading a 0.5B AdamW state as copies grew workerd by 55 MB,
	 * as views by 3 MB). A view shows the tensor as it is when read, so it is valid while the tensor stays
	 * unchanged (in `saveState`: until it returns): an upload that sends it, or a `Blob`/`arrayBuffer()` that
	 * copies it, is fine; keeping the chunks themselves is not. Pieces of a spill (a reused buffer) and views
	 * of shared memory are copied either way.
	 */
	views?: boolean;
}
/**
 * A training state as a stream of its file's bytes, with its size known before the first byte: for an
 * upload that needs a `Content-Length` up front (workerd's `FixedLengthStream`, an R2 binding's `put`, a
 * presigned PUT). The bytes are those {@linkcode writeTrainingState} writes; they are produced as the reader
 * takes them (at most 1 MiB a chunk, each a copy unless `views`), so the state is never held whole. The
 * checksum and the NaN/±∞ check run here, before the stream exists (a diverged state throws), so the state
 * must not change until the stream is read to its end: in `saveState`, await the upload's completion before
 * returning.
 */
export declare function trainingStateStream(state: TrainState, run?: Record<string, unknown>, options?: TrainingStateStreamOptions): {
	byteLength: number;
	stream: ReadableStream<Uint8Array>;
};
/**
 * Decodes a training state held in memory; throws a clear error for anything that is not a complete, intact
 * one: a wrong format, a bad or missing field, unexpected or wrongly shaped tensors, a checksum mismatch, a
 * NaN. The tensors are views of `bytes` where their offsets allow it (copies otherwise). A state in a file
 * is better opened with {@linkcode openTrainingState}, which never holds it whole.
 */
export declare function decodeTrainingState(bytes: Uint8Array, name?: string): Promise<{
	state: TrainState;
	run: Record<string, unknown>;
}>;
/**
 * Opens a training state in a file (any {@linkcode WeightSource}: `fileSource` in Deno, `blobSource` of an
 * OPFS `File` in a browser) without holding it: it is checked whole here (everything
 * {@linkcode decodeTrainingState} checks), through one buffer of 256 KiB, and `train`'s `resume` then reads
 * it again a layer at a time straight into the arena or the spill, checked again as it goes. The source is
 * closed after each pass (a `fileSource` reopens for the next).
 */
export declare function openTrainingState(source: WeightSource, name?: string): Promise<{
	state: StoredTrainState;
	run: Record<string, unknown>;
}>;
/**
 * A loss curve as a standalone SVG: training loss per step (and its running mean), validation loss as dots.
 *
 * @module
 */
/** Options for {@linkcode lossCurveSvg}. */
export interface LossCurveOptions {
	title?: string;
	width?: number;
	height?: number;
	/**
	 * The step of `train[0]` (default 1): a resumed run's curve without the losses from before the resume
	 * starts at its real step number.
	 */
	firstStep?: number;
}
/** The SVG text of a loss curve. */
export declare function lossCurveSvg(train: readonly number[], val?: readonly {
	step: number;
	loss: number;
}[], options?: LossCurveOptions): string;
/**
 * @deprecated Renamed {@linkcode writeTrainingState} ("checkpoint" now means a base model's files only);
 * this alias goes in the next release.
 */
export declare const writeCheckpoint: typeof writeTrainingState;
/**
 * @deprecated Renamed {@linkcode decodeTrainingState} ("checkpoint" now means a base model's files only);
 * this alias goes in the next release.
 */
export declare const decodeCheckpoint: typeof decodeTrainingState;

export {};
