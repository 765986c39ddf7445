/**
 * Reading a pack's vocabulary matrices (the embedding, an untied LM head), stored row-interleaved (each row's
 * data, scales and biases together, see `VocabSlot`): a chunk of rows or a token's row is one contiguous read,
 * and a step's token rows are gathered up front, sorted and merged into few reads. Every block of
 * `vocabBlock` rows is verified against the pack's checksum table the first time it is read.
 *
 * @module
 */
import type { WeightSource } from "../io/source.ts";
import { Checksum } from "../io/checksum.ts";
import type { VocabSlot } from "./pack_layout.ts";
import { vocabBlockIndex, type VocabBlocks } from "./pack_header.ts";

/** Caller buffers for vocabulary rows (each exactly `rows ×` its row size). */
export interface VocabRowViews {
  data: Uint8Array;
  scales?: Uint8Array;
  biases?: Uint8Array;
}

/** How the vocabulary reader checks blocks (the pack's verifier). */
export interface BlockChecks {
  /** Whether block `i` of the table was verified already. */
  done(i: number): boolean;
  /** Verifies block `i` from its checksum, just computed (throws naming the block on a mismatch). */
  verify(i: number, sum: Checksum): void;
}

/** Bytes read at a time when rows are rearranged on the way (the one staging buffer a pack keeps). */
const STAGING_BYTES = 1 << 20;
/**
 * Default gap: token rows closer than this are read as one range with the rows between them: a few more
 * bytes cost far less than another read. A source whose reads are dear (`WeightSource.requestBytes`, a
 * remote one) sets a wider gap: a request is worth that many bytes.
 */
const GATHER_GAP_BYTES = 64 << 10;

/**
 * Gathers kept per matrix, the latest first: one per call reading the pack at the same time, for two (a
 * `train` beside an `evaluate`), so neither's next gather replaces the rows the other is copying from.
 */
const KEPT_GATHERS = 2;

/** Row-ids sorted and unique, with their rows (stored layout) in the same order. */
interface RowStore {
  ids: Int32Array;
  count: number;
  rows: Uint8Array;
}

/** Rows announced by `expect`, kept as a pass over the whole matrix reads them: `have[i]` once row i is. */
interface AheadStore extends RowStore {
  have: Uint8Array;
}

/** Reads of one pack's vocabulary matrices; calls are served one after another, in call order. */
export class VocabReader {
  readonly #source: WeightSource;
  readonly #slot: VocabSlot;
  readonly #blocks: VocabBlocks;
  readonly #bases: (number | undefined)[];
  readonly #checks: BlockChecks;
  readonly #gapBytes: number;
  /** Rows a gathered range may span at most (no limit where a request is dear: one response streams it). */
  readonly #mostBytes: number;
  readonly #sum = new Checksum();
  #staging = new Uint8Array(0);
  /** Scales and biases of a chunk, moved aside while its rows are rearranged in place. */
  #aside = new Uint8Array(0);
  /** 32-bit views of the buffers `#planar` copies between, made once per buffer (not once a chunk). */
  readonly #wordViews = new Map<ArrayBufferLike, Uint32Array>();
  /** Per matrix: the rows gathered by the last `KEPT_GATHERS` prefetches, then a spare to build the next in. */
  #stores: RowStore[][] = [[], []];
  #ids = new Int32Array(0);
  /**
   * Per matrix: ids announced by `expect` (sorted, unique), waiting for the next pass over the matrix, and
   * the rows of the ids of the last announcement taken from a pass.
   */
  #wanted: RowStore[] = [];
  #ahead: AheadStore[] = [];
  #queue: Promise<void> = Promise.resolve();
  #busy = false;

  constructor(
    source: WeightSource,
    slot: VocabSlot,
    blocks: VocabBlocks,
    bases: (number | undefined)[],
    checks: BlockChecks,
    gapBytes?: number,
  ) {
    const request = source.requestBytes ?? 0;
    this.#gapBytes = gapBytes ?? Math.max(GATHER_GAP_BYTES, request);
    this.#mostBytes = request > 0 ? Infinity : Math.max(STAGING_BYTES, this.#gapBytes);
    this.#source = source;
    this.#slot = slot;
    this.#blocks = blocks;
    this.#bases = bases;
    this.#checks = checks;
    for (const m of [0, 1]) {
      this.#stores[m] = Array.from({ length: KEPT_GATHERS + 1 }, emptyStore);
      this.#wanted[m] = emptyStore();
      this.#ahead[m] = { ...emptyStore(), have: new Uint8Array(0) };
    }
  }

  /**
   * Runs `job` after the calls before it. When nothing is queued it starts at once, so its first read is
   * under way when this returns (a read-ahead overlaps the caller's compute).
   */
  #serial(job: () => Promise<void>): Promise<void> {
    const run = this.#busy ? this.#queue.then(job) : (this.#busy = true, job());
    const settled = run.catch(() => {}).then(() => {
      if (this.#queue === settled) this.#busy = false;
    });
    this.#queue = settled;
    return run;
  }

  /** Reads rows [r0, r1) of matrix `m` (0 embedding, 1 LM head) into `into`. */
  read(m: number, r0: number, r1: number, into: VocabRowViews): Promise<void> {
    return this.#serial(() => this.#read(m, r0, r1, into));
  }

  /**
   * Copies row `id` of matrix `m` into `into` (views sized for one row) when a kept gather holds it;
   * whether it did. Synchronous: a step's token rows cost no promise, closure or view each.
   */
  copyGathered(m: number, id: number, into: VocabRowViews): boolean {
    const store = this.#gathered(m, id), at = this.#gatheredAt;
    if (!store) return false;
    const { rowBytes: d, scaleRowBytes: q, rowStride: stride } = this.#slot, o = at * stride;
    copyBytes(into.data, store.rows, o, d);
    if (q) (copyBytes(into.scales!, store.rows, o + d, q), copyBytes(into.biases!, store.rows, o + d + q, q));
    return true;
  }

  /** The row's index in the store {@linkcode VocabReader.#gathered} last found (a field: no tuple per row). */
  #gatheredAt = -1;

  /** The kept gather of matrix `m` holding row `id` (its index there in `#gatheredAt`), or undefined. */
  #gathered(m: number, id: number): RowStore | undefined {
    const stores = this.#stores[m];
    for (let g = 0; g < KEPT_GATHERS; g++) {
      const at = find(stores[g], id);
      if (at >= 0) return (this.#gatheredAt = at, stores[g]);
    }
    return undefined;
  }

  /** Gathers the rows of the valid ids among `ids[0..count)` so that reading one of them alone is local. */
  prefetch(m: number, ids: ArrayLike<number>, count: number): Promise<void> {
    return this.#serial(() => this.#prefetch(m, ids, count));
  }

  /**
   * Announces ids whose rows a later `prefetch` of matrix `m` will ask for: the next pass over the whole
   * matrix (reads from row 0 on, like the loss's vocabulary chunks) keeps their rows as it reads them, so
   * that `prefetch` then reads none of them. Replaces an announcement not yet taken up by a pass.
   */
  expect(m: number, ids: ArrayLike<number>, count: number): void {
    const w = this.#wanted[m];
    w.count = this.#sortedIds(ids, count);
    if (w.ids.length < w.count) w.ids = new Int32Array(w.count);
    w.ids.set(this.#ids.subarray(0, w.count));
  }

  /** Sorts the valid ids among `ids[0..count)` into `#ids`, each once; how many. */
  #sortedIds(ids: ArrayLike<number>, count: number): number {
    const V = this.#slot.rows;
    if (this.#ids.length < count) this.#ids = new Int32Array(count);
    let n = 0;
    for (let t = 0; t < count; t++) {
      const id = ids[t];
      if (Number.isInteger(id) && id >= 0 && id < V) this.#ids[n++] = id;
    }
    const sorted = this.#ids.subarray(0, n).sort();
    let u = 0;
    for (let i = 0; i < n; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[u++] = sorted[i];
    return u;
  }

  /** A pass over matrix `m` begins: the announced ids, if any, become the ones it keeps rows of. */
  #startPass(m: number): void {
    const w = this.#wanted[m], a = this.#ahead[m], stride = this.#slot.rowStride;
    if (!w.count) return;
    if (a.ids.length < w.count) (a.ids = new Int32Array(w.count), a.have = new Uint8Array(w.count));
    if (a.rows.length < w.count * stride) a.rows = new Uint8Array(w.count * stride);
    a.ids.set(w.ids.subarray(0, w.count));
    a.have.fill(0, 0, w.count);
    a.count = w.count;
    w.count = 0;
  }

  /** Keeps the announced rows among the verified stored rows `bytes` of matrix `m`, from row `row` on. */
  #keepAhead(m: number, row: number, bytes: Uint8Array): void {
    const a = this.#ahead[m], stride = this.#slot.rowStride, end = row + bytes.length / stride;
    for (let i = lowerBound(a, row); i < a.count && a.ids[i] < end; i++) {
      if (a.have[i]) continue;
      const o = (a.ids[i] - row) * stride;
      a.rows.set(bytes.subarray(o, o + stride), i * stride);
      a.have[i] = 1;
    }
  }

  async #read(m: number, r0: number, r1: number, into: VocabRowViews): Promise<void> {
    const s = this.#slot, base = this.#bases[m]!, B = this.#blocks.rows, V = s.rows;
    if (r1 === r0 + 1) {
      const store = this.#gathered(m, r0), at = this.#gatheredAt;
      if (store) {
        return scatter(s, store.rows.subarray(at * s.rowStride, (at + 1) * s.rowStride), 0, 1, into);
      }
    }
    if (r1 === r0) return;
    if (r0 === 0 && r1 > 1) this.#startPass(m);
    // a block the rows cover only in part is read whole the first time, to verify it
    const first = Math.floor(r0 / B), last = Math.floor((r1 - 1) / B);
    const a = this.#unverified(m, first) ? first * B : r0;
    const b = this.#unverified(m, last) ? Math.min(V, (last + 1) * B) : r1;
    const start = base + a * s.rowStride;
    // the next chunk usually follows: a remote source can answer the rest of the matrix as one response
    if (r1 - r0 > 1) this.#source.expect?.(start, base + V * s.rowStride);
    const whole = a === r0 && b === r1 ? contiguous(s, into, r1 - r0) : undefined;
    if (whole) {
      // straight into the caller's buffer, rearranged there (rows → data, scales, biases)
      await this.#source.read(start, whole);
      this.#verifyRange(m, r0, r1, whole);
      this.#keepAhead(m, r0, whole);
      this.#planar(whole, r1 - r0);
      return;
    }
    await this.#stream(m, a, b, (row, bytes) => {
      this.#keepAhead(m, row, bytes);
      const lo = Math.max(row, r0), hi = Math.min(row + bytes.length / s.rowStride, r1);
      if (hi > lo) {
        scatter(
          s,
          bytes.subarray((lo - row) * s.rowStride, (hi - row) * s.rowStride),
          lo - r0,
          hi - lo,
          into,
        );
      }
    });
  }

  #unverified(m: number, b: number): boolean {
    return !this.#checks.done(vocabBlockIndex(this.#blocks, m, b));
  }

  /** Verifies the unverified blocks wholly inside rows [a, b), whose stored bytes are `bytes`. */
  #verifyRange(m: number, a: number, b: number, bytes: Uint8Array): void {
    const B = this.#blocks.rows, stride = this.#slot.rowStride, V = this.#slot.rows;
    for (let k = Math.ceil(a / B); k * B < b; k++) {
      const k0 = k * B, k1 = Math.min(V, k0 + B);
      if (k1 > b || !this.#unverified(m, k)) continue;
      this.#checks.verify(
        vocabBlockIndex(this.#blocks, m, k),
        this.#sum.reset().update(bytes.subarray((k0 - a) * stride, (k1 - a) * stride)),
      );
    }
  }

  /**
   * Reads rows [a, b) of matrix `m` through the staging buffer, handing each piece to `visit` (first row,
   * stored bytes) once the unverified blocks it completes are verified (blocks wholly inside [a, b) only).
   */
  async #stream(m: number, a: number, b: number, visit: (row: number, bytes: Uint8Array) => void) {
    const s = this.#slot, base = this.#bases[m]!, B = this.#blocks.rows, V = s.rows, stride = s.rowStride;
    const per = Math.max(1, Math.floor(STAGING_BYTES / stride));
    if (this.#staging.length < Math.min(b - a, per) * stride) {
      this.#staging = new Uint8Array(Math.min(Math.max(b - a, B), per) * stride);
    }
    if (b - a > per) this.#source.expect?.(base + a * stride, base + b * stride);
    let k = -1; // the block whose checksum is being taken
    for (let row = a; row < b; row += per) {
      const n = Math.min(per, b - row), bytes = this.#staging.subarray(0, n * stride);
      await this.#source.read(base + row * stride, bytes);
      // checksums of the unverified blocks wholly inside [a, b), taken as the pieces pass
      for (let r = row; r < row + n;) {
        const blk = Math.floor(r / B), k0 = blk * B, k1 = Math.min(V, k0 + B), to = Math.min(k1, row + n);
        if (k0 >= a && k1 <= b && this.#unverified(m, blk)) {
          if (k !== blk) (this.#sum.reset(), k = blk);
          this.#sum.update(bytes.subarray((r - row) * stride, (to - row) * stride));
          if (to === k1) this.#checks.verify(vocabBlockIndex(this.#blocks, m, blk), this.#sum);
        }
        r = to;
      }
      visit(row, bytes);
    }
  }

  /** `bytes`' whole buffer as 32-bit words. */
  #words(bytes: Uint8Array): Uint32Array {
    let view = this.#wordViews.get(bytes.buffer);
    if (!view || view.length !== bytes.buffer.byteLength >>> 2) {
      if (this.#wordViews.size > 4) this.#wordViews.clear(); // buffers outgrown: keep only what is in use
      view = new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
      this.#wordViews.set(bytes.buffer, view);
    }
    return view;
  }

  /** Rearranges `n` stored rows in `bytes` in place into data rows, then scales, then biases. */
  #planar(bytes: Uint8Array, n: number): void {
    const { rowBytes: d, scaleRowBytes: q, rowStride: stride } = this.#slot;
    if (!q) return;
    if (this.#aside.length < n * 2 * q) this.#aside = new Uint8Array(n * 2 * q);
    const aside = this.#aside;
    // element by element: a view per row (subarray) would allocate 2 objects a row, ~30 MB of garbage a step
    if ((bytes.byteOffset | stride | d | q) % 4 === 0) {
      const [from, to] = [this.#words(bytes), this.#words(aside)];
      const [w, o] = [q / 4, bytes.byteOffset / 4];
      for (let r = 0; r < n; r++) {
        const at = o + (r * stride + d) / 4;
        for (let i = 0; i < w; i++) {
          to[r * w + i] = from[at + i];
          to[(n + r) * w + i] = from[at + w + i];
        }
      }
    } else {
      for (let r = 0; r < n; r++) {
        const at = r * stride + d;
        for (let i = 0; i < q; i++) {
          aside[r * q + i] = bytes[at + i];
          aside[(n + r) * q + i] = bytes[at + q + i];
        }
      }
    }
    // data rows move left (row r from r·stride to r·d), so in row order nothing is overwritten before it moves
    for (let r = 1; r < n; r++) bytes.copyWithin(r * d, r * stride, r * stride + d);
    bytes.set(aside.subarray(0, 2 * n * q), n * d);
  }

  async #prefetch(m: number, ids: ArrayLike<number>, count: number): Promise<void> {
    const s = this.#slot, V = s.rows, B = this.#blocks.rows, stride = s.rowStride;
    const u = this.#sortedIds(ids, count), sorted = this.#ids;
    const stores = this.#stores[m], next = stores[KEPT_GATHERS], ahead = this.#ahead[m];
    for (let g = 0; g < KEPT_GATHERS; g++) {
      let all = true;
      for (let i = 0; i < u && all; i++) all = find(stores[g], sorted[i]) >= 0;
      if (all) return;
    }
    if (next.ids.length < u) next.ids = new Int32Array(u);
    if (next.rows.length < u * stride) next.rows = new Uint8Array(u * stride);
    next.ids.set(sorted.subarray(0, u));
    next.count = u;
    // rows at hand are copied; the others are read in runs: a run is the rows (or, for a block not
    // verified yet, the whole block) of ids closer than the gap, at most `#mostBytes` long
    const gap = Math.floor(this.#gapBytes / stride);
    const most = Math.max(1, Math.floor(this.#mostBytes / stride));
    let runStart = -1, runEnd = -1, firstId = 0;
    const flush = async (upTo: number) => {
      if (runStart < 0) return;
      const from = firstId;
      await this.#stream(m, runStart, runEnd, (row, bytes) => {
        const rows = bytes.length / stride;
        for (let i = from; i < upTo; i++) {
          const id = next.ids[i];
          if (id >= row && id < row + rows && !this.#gathered(m, id) && kept(ahead, id) < 0) {
            next.rows.set(bytes.subarray((id - row) * stride, (id - row + 1) * stride), i * stride);
          }
        }
      });
      runStart = -1;
    };
    for (let i = 0; i < u; i++) {
      const id = next.ids[i], old = this.#gathered(m, id), at = this.#gatheredAt;
      const k = old ? -1 : kept(ahead, id);
      if (old || k >= 0) {
        const from = old ? old.rows : ahead.rows, o = (old ? at : k) * stride;
        next.rows.set(from.subarray(o, o + stride), i * stride);
        continue;
      }
      const blk = Math.floor(id / B), whole = this.#unverified(m, blk);
      const lo = whole ? blk * B : id, hi = whole ? Math.min(V, (blk + 1) * B) : id + 1;
      if (runStart >= 0 && lo - runEnd <= gap && Math.max(hi, runEnd) - runStart <= Math.max(most, B)) {
        runEnd = Math.max(runEnd, hi);
        continue;
      }
      await flush(i);
      runStart = lo, runEnd = hi, firstId = i;
    }
    await flush(u);
    stores.copyWithin(1, 0, KEPT_GATHERS); // the oldest kept gather becomes the spare
    stores[0] = next;
  }
}

function emptyStore(): RowStore {
  return { ids: new Int32Array(0), count: 0, rows: new Uint8Array(0) };
}

/** Index of the first id ≥ `id` in the store (binary search). */
function lowerBound(store: RowStore, id: number): number {
  let lo = 0, hi = store.count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (store.ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of `id` among the announced rows a pass has kept, or −1. */
function kept(ahead: AheadStore, id: number): number {
  const k = find(ahead, id);
  return k >= 0 && ahead.have[k] ? k : -1;
}

/** Index of `id` in the store, or −1 (binary search). */
function find(store: RowStore, id: number): number {
  let lo = 0, hi = store.count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1, v = store.ids[mid];
    if (v === id) return mid;
    if (v < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Copies bytes [from, from + n) of `src` to the start of `dst`, without a view of either. */
function copyBytes(dst: Uint8Array, src: Uint8Array, from: number, n: number): void {
  for (let i = 0; i < n; i++) dst[i] = src[from + i];
}

/** Copies `n` stored rows into rows [at, at + n) of the caller's views. */
function scatter(s: VocabSlot, bytes: Uint8Array, at: number, n: number, into: VocabRowViews): void {
  const { rowBytes: d, scaleRowBytes: q, rowStride: stride } = s;
  if (!q) return into.data.set(bytes.subarray(0, n * d), at * d);
  for (let r = 0; r < n; r++) {
    const o = r * stride;
    into.data.set(bytes.subarray(o, o + d), (at + r) * d);
    into.scales!.set(bytes.subarray(o + d, o + d + q), (at + r) * q);
    into.biases!.set(bytes.subarray(o + d + q, o + stride), (at + r) * q);
  }
}

/**
 * The caller's views as one buffer of `n` stored rows, when they lie back to back in one buffer (data, then
 * scales, then biases, as the engine's vocabulary slot does for a whole chunk), else `undefined`.
 */
function contiguous(s: VocabSlot, into: VocabRowViews, n: number): Uint8Array | undefined {
  const d = into.data;
  if (!s.scaleRowBytes) return d;
  const { scales, biases } = into;
  if (
    !scales || !biases || scales.buffer !== d.buffer || biases.buffer !== d.buffer ||
    scales.byteOffset !== d.byteOffset + n * s.rowBytes ||
    biases.byteOffset !== scales.byteOffset + n * s.scaleRowBytes
  ) return undefined;
  return new Uint8Array(d.buffer, d.byteOffset, n * s.rowStride);
}
