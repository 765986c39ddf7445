/**
 * The arena: every byte the kernels touch is a named region of one plan, laid out once in the kernel
 * module's linear memory before any work starts. Nothing else allocates wasm memory.
 *
 * @module
 */
import type { Kernels } from "./kernels.ts";

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

/** Bytes kept free after the last region so vector loads that run a few lanes past a buffer stay in bounds. */
export const TAIL_GUARD = 64;
const PAGE = 65536;

/** Lays out regions in the order given. Throws on duplicate names, negative sizes or bad alignment. */
export function planMemory(specs: readonly RegionSpec[], options: { base?: number } = {}): MemoryPlan {
  const base = options.base ?? 0;
  const seen = new Set<string>();
  const regions: Region[] = [];
  let at = base;
  for (const s of specs) {
    if (seen.has(s.name)) throw new Error(`memory plan: duplicate region "${s.name}"`);
    seen.add(s.name);
    const align = s.align ?? 64;
    if (!Number.isInteger(s.bytes) || s.bytes < 0) {
      throw new Error(`memory plan: region "${s.name}" has invalid size ${s.bytes}`);
    }
    if (align <= 0 || (align & (align - 1)) !== 0) {
      throw new Error(`memory plan: region "${s.name}" has invalid alignment ${align}`);
    }
    at = Math.ceil(at / align) * align;
    regions.push({ name: s.name, bytes: s.bytes, align, purpose: s.purpose ?? "", offset: at });
    at += s.bytes;
  }
  const end = Math.ceil(at / 64) * 64 + TAIL_GUARD;
  return { regions, base, end, bytes: end - base };
}

/** Formats a byte count as MB (10^6 bytes) with one decimal, the unit every report of mesp uses. */
export function formatMB(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Parses sizes like `100MB`, `1.5GB`, `512MiB`, `300m` or a plain byte count. */
export function parseSize(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(text);
  if (!m) throw new Error(`cannot read size "${text}" (examples: 100MB, 1.5GB, 512MiB)`);
  const unit = (m[2] ?? "").toLowerCase().replace(/b$/, "");
  const scale: Record<string, number> = {
    "": 1,
    k: 1e3,
    m: 1e6,
    g: 1e9,
    t: 1e12,
    ki: 1024,
    mi: 1024 ** 2,
    gi: 1024 ** 3,
    ti: 1024 ** 4,
  };
  if (!(unit in scale)) throw new Error(`cannot read size "${text}": unknown unit`);
  return Math.round(Number(m[1]) * scale[unit]);
}

/** The plan as an aligned text table, largest regions first, with the total. */
export function formatPlan(
  plan: MemoryPlan,
  options: { extra?: { name: string; bytes: number; purpose: string }[] } = {},
): string {
  const rows = [...plan.regions].sort((a, b) => b.bytes - a.bytes).map((
    r,
  ) => [r.name, formatMB(r.bytes), r.purpose]);
  let total = plan.bytes;
  for (const e of options.extra ?? []) {
    rows.push([e.name, formatMB(e.bytes), e.purpose]);
    total += e.bytes;
  }
  rows.push(["total", formatMB(total), ""]);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map((r) => `${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2]}`.trimEnd()).join("\n");
}

/** Thrown when a plan does not fit the memory budget; carries the plan. */
export class PlanTooLargeError extends Error {
  /** The plan that did not fit. */
  readonly plan: MemoryPlan;
  /** The budget in bytes. */
  readonly budget: number;
  constructor(plan: MemoryPlan, budget: number, needed: number, table: string) {
    super(
      `memory plan needs ${formatMB(needed)} but the budget is ${
        budget < 5e4 ? `${budget} bytes` : formatMB(budget)
      } (a byte count; 100 MB is 100e6):\n${table}`,
    );
    this.name = "PlanTooLargeError";
    this.plan = plan;
    this.budget = budget;
  }
}

/** The most a WebAssembly (wasm32) memory can hold: 65536 pages of 64 KiB. */
export const WASM32_BYTES = 2 ** 32;

/**
 * Refuses a plan that wasm32 memory cannot hold, before any memory is asked for (growing to it would fail
 * with the runtime's bare "Unable to grow instance memory"). `hint` says what would make it smaller.
 */
export function checkAddressable(plan: MemoryPlan, hint = "plan less"): void {
  if (plan.end <= WASM32_BYTES) return;
  throw new RangeError(
    `memory plan needs ${formatMB(plan.end)}, more than WebAssembly's 32-bit memory holds ` +
      `(${formatMB(WASM32_BYTES)}): ${hint}\n${formatPlan(plan)}`,
  );
}

/** Options for {@linkcode Arena.create}. */
export interface ArenaOptions {
  /** Refuse plans whose arena is larger than this many bytes. */
  budget?: number;
}

/** Named views into one kernel module's memory, grown once to a plan. */
export class Arena {
  /** The kernels whose memory this arena lays out. */
  readonly kernels: Kernels;
  /** The placed plan. */
  readonly plan: MemoryPlan;
  readonly #byName: Map<string, Region>;

  private constructor(kernels: Kernels, plan: MemoryPlan) {
    this.kernels = kernels;
    this.plan = plan;
    this.#byName = new Map(plan.regions.map((r) => [r.name, r]));
  }

  /** Lays out `specs` after the module's static data, checks the budget, and grows memory once. */
  static create(kernels: Kernels, specs: readonly RegionSpec[], options: ArenaOptions = {}): Arena {
    const base = Math.ceil(kernels.exports.heap_base() / 64) * 64;
    const plan = planMemory(specs, { base });
    checkAddressable(plan);
    if (options.budget !== undefined && plan.bytes > options.budget) {
      throw new PlanTooLargeError(plan, options.budget, plan.bytes, formatPlan(plan));
    }
    const have = kernels.memory.buffer.byteLength;
    if (plan.end > have) kernels.memory.grow(Math.ceil((plan.end - have) / PAGE));
    return new Arena(kernels, plan);
  }

  /** The region called `name`; throws if the plan has none. */
  region(name: string): Region {
    const r = this.#byName.get(name);
    if (!r) throw new Error(`memory plan has no region "${name}"`);
    return r;
  }

  /** Whether the plan has a region called `name`. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** Byte offset of region `name`. */
  ptr(name: string): number {
    return this.region(name).offset;
  }

  /** The whole region as bytes. */
  u8(name: string): Uint8Array {
    const r = this.region(name);
    return new Uint8Array(this.kernels.memory.buffer, r.offset, r.bytes);
  }

  /** The whole region as f32 (its size must be a multiple of 4). */
  f32(name: string): Float32Array {
    const r = this.region(name);
    return new Float32Array(this.kernels.memory.buffer, r.offset, r.bytes >>> 2);
  }

  /** The whole region as i32. */
  i32(name: string): Int32Array {
    const r = this.region(name);
    return new Int32Array(this.kernels.memory.buffer, r.offset, r.bytes >>> 2);
  }

  /** Current size of linear memory in bytes (constant after creation unless something else grows it). */
  memoryBytes(): number {
    return this.kernels.memory.buffer.byteLength;
  }
}
