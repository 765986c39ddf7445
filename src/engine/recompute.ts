/**
 * Which layer inputs a training step saves, and the order in which its backward recomputes the others
 * (docs/memory_plan.md, "Saved inputs"). Every layer's backward needs that layer's input; the forward pass
 * saves some inputs in the `saved` slots and the backward recomputes the rest by running layers forward again
 * from a saved one, through the same `layerForward`, so every order gives the same bits (f32).
 *
 * Two orders:
 *
 * - {@linkcode everyKth} (`--ckpt-every k`): the forward saves every k-th layer's input; the backward of a
 *   segment re-runs its forward once, saving its other k − 1 inputs in spare slots: ⌈L/k⌉ + k − 1 slots,
 *   L − ⌈L/k⌉ layers recomputed.
 * - {@linkcode fewestRecomputes} (`savedInputs` n): any n ≥ 2 slots, with the fewest layer forwards
 *   recomputed that n slots allow (binomial checkpointing, computed by {@linkcode recomputeTable}): the
 *   forward saves inputs where the table says, and each stretch between saved inputs is split again in the
 *   backward, its slots reused once the layers above are done. n = 2 is the segment-start scheme at its
 *   extreme (each layer's input recomputed from layer 0's in a working slot); for Qwen2.5-0.5B's 24 layers,
 *   6 slots cost 21 layer forwards, 9 cost 15 (every 4th: 9 slots, 18), 12 or more cost 24 − n.
 *
 * An order is a list of steps made once per engine; the step loop only walks it.
 *
 * @module
 */

/** One step of the backward pass over saved inputs. */
export type RecomputeStep =
  /** The residual stream `act.x` ← slot `slot` (layer `layer`'s input). */
  | { kind: "restore"; layer: number; slot: number }
  /** Layer `layer`'s forward, in place in `act.x` (its weights loaded first). */
  | { kind: "forward"; layer: number }
  /** Slot `slot` ← `act.x` (layer `layer`'s input). */
  | { kind: "save"; layer: number; slot: number }
  /** Layer `layer`'s backward from its input in slot `slot` (its weights loaded first). */
  | { kind: "backward"; layer: number; slot: number };

/** The saved inputs of a step and its backward's order. */
export interface RecomputeOrder {
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

/** The order of these steps, with the runs of layers its loads go up through (`through`). */
function order(
  slots: number,
  saveAt: number[],
  backward: RecomputeStep[],
  recomputed: number,
): RecomputeOrder {
  const through = new Array<number>(backward.length).fill(-1);
  // from the last step back: the next load's layer and its run's last layer
  let next = -1, nextThrough = -1;
  for (let i = backward.length - 1; i >= 0; i--) {
    const s = backward[i];
    if (s.kind !== "forward" && s.kind !== "backward") continue;
    through[i] = next === s.layer + 1 || next === s.layer ? nextThrough : s.layer;
    next = s.layer, nextThrough = through[i];
  }
  return { slots, saveAt, backward, recomputed, through };
}

/** Every k-th layer's input, the segments re-run once in the backward (the order of `--ckpt-every k`). */
export function everyKth(layers: number, k: number): RecomputeOrder {
  if (!Number.isInteger(k) || k < 1) {
    throw new Error(`saved-input interval must be a positive integer, got ${k}`);
  }
  // one segment of every layer at most: a longer one would only reserve slots past the last layer
  k = Math.min(k, layers);
  const kept = Math.ceil(layers / k);
  const saveAt = Array.from({ length: layers }, (_, l) => l % k === 0 ? l / k : -1);
  const backward: RecomputeStep[] = [];
  const slot = (l: number) => l % k === 0 ? l / k : kept + (l % k) - 1;
  let recomputed = 0;
  for (let l0 = Math.floor((layers - 1) / k) * k; l0 >= 0; l0 -= k) {
    const l1 = Math.min(layers, l0 + k);
    if (l1 - l0 > 1) {
      backward.push({ kind: "restore", layer: l0, slot: slot(l0) });
      for (let l = l0; l < l1 - 1; l++) {
        backward.push({ kind: "forward", layer: l }, { kind: "save", layer: l + 1, slot: slot(l + 1) });
        recomputed++;
      }
    }
    for (let l = l1 - 1; l >= l0; l--) backward.push({ kind: "backward", layer: l, slot: slot(l) });
  }
  return order(kept + k - 1, saveAt, backward, recomputed);
}

/**
 * Least layer forwards, and the split that gives them, for n layers whose first input is in a slot and s
 * more free slots: `back` when the layers' forward has to be re-run (a stretch of the backward), `first`
 * during the forward pass itself (its layers run anyway, so only saving is free to choose). Entry
 * [n][s]; a split c saves the input of the layer c above the first, the layers above are done with s − 1
 * slots, then the c below with s again (c = 0 in `first`: save nothing more during the forward).
 */
export interface RecomputeTable {
  back: { cost: number[][]; split: number[][] };
  first: { cost: number[][]; split: number[][] };
}

const tables = new Map<number, RecomputeTable>();

/** The table for up to `layers` layers (memoized per layer count). */
function recomputeTable(layers: number): RecomputeTable {
  const hit = tables.get(layers);
  if (hit) return hit;
  const N = layers, grid = () => Array.from({ length: N + 1 }, () => new Array<number>(N + 1).fill(Infinity));
  const back = { cost: grid(), split: grid() }, first = { cost: grid(), split: grid() };
  for (let s = 0; s <= N; s++) {
    back.cost[1][s] = first.cost[1][s] = 0;
    back.split[1][s] = first.split[1][s] = 0;
  }
  for (let n = 2; n <= N; n++) {
    for (let s = 1; s <= N; s++) {
      // re-run c layers, save the next input, do the n − c above with s − 1 slots, then the c below
      for (let c = 1; c < n; c++) {
        const cost = c + back.cost[n - c][s - 1] + back.cost[c][s];
        if (cost < back.cost[n][s]) [back.cost[n][s], back.split[n][s]] = [cost, c];
      }
    }
    for (let s = 0; s <= N; s++) {
      // during the forward pass: save nothing more (the backward re-runs it all), or save after c layers
      first.cost[n][s] = back.cost[n][s];
      first.split[n][s] = 0;
      for (let c = 1; c < n && s > 0; c++) {
        const cost = first.cost[n - c][s - 1] + back.cost[c][s];
        if (cost < first.cost[n][s]) [first.cost[n][s], first.split[n][s]] = [cost, c];
      }
    }
  }
  const table = { back, first };
  tables.set(layers, table);
  return table;
}

/** Layer forwards {@linkcode fewestRecomputes} runs with `slots` slots (Infinity below 2 for 2+ layers). */
export function recomputedLayers(layers: number, slots: number): number {
  if (slots >= layers) return 0;
  return slots < 1 ? Infinity : recomputeTable(layers).first.cost[layers][slots - 1];
}

/** `slots` saved inputs (2 ≤ slots), with the fewest layer forwards recomputed (see the module). */
export function fewestRecomputes(layers: number, slots: number): RecomputeOrder {
  if (slots >= layers) return everyKth(layers, 1);
  if (!Number.isInteger(slots) || slots < 2) {
    throw new Error(`saved inputs must be a whole number ≥ 2 (or ≥ the ${layers} layers), got ${slots}`);
  }
  const { back, first } = recomputeTable(layers);
  const saveAt = new Array<number>(layers).fill(-1), steps: RecomputeStep[] = [];
  // free slots are a stack: a stretch takes the top one for its split and gives it back when done
  const free = Array.from({ length: slots - 1 }, (_, i) => slots - 1 - i);
  /** Which layer's input `act.x` holds as it was computed (−1: none), so a restore can be skipped. */
  let current = -1, recomputed = 0;
  const backStretch = (a: number, n: number, slot: number) => {
    if (n === 1) {
      steps.push({ kind: "backward", layer: a, slot });
      current = -1;
      return;
    }
    const c = back.split[n][free.length], next = free.pop()!;
    if (current !== a) steps.push({ kind: "restore", layer: a, slot });
    for (let l = a; l < a + c; l++) steps.push({ kind: "forward", layer: l });
    recomputed += c;
    steps.push({ kind: "save", layer: a + c, slot: next });
    current = a + c;
    backStretch(a + c, n - c, next);
    free.push(next);
    backStretch(a, c, slot);
  };
  // the forward pass saves layer 0's input in slot 0, then where `first` splits; the stretches it leaves
  // are done last-first in the backward, each slot freed as its stretch is done
  const stretches: [number, number, number][] = [];
  const forwardStretch = (a: number, n: number, slot: number) => {
    const c = first.split[n][free.length];
    if (c === 0) return void stretches.push([a, n, slot]);
    const next = free.pop()!;
    saveAt[a + c] = next;
    forwardStretch(a + c, n - c, next);
    stretches.push([a, c, slot]);
  };
  saveAt[0] = 0;
  forwardStretch(0, layers, 0);
  // each stretch gives its start's slot back once done, for the stretch below
  for (const [a, n, slot] of stretches) {
    backStretch(a, n, slot);
    free.push(slot);
  }
  return order(slots, saveAt, steps, recomputed);
}

/**
 * The order of options `o` over `layers` layers: `savedInputs` slots with the fewest recomputes when given,
 * else every `savedInputEvery`-th input (default every one).
 */
export function recomputeOrder(
  layers: number,
  o: { savedInputs?: number; savedInputEvery?: number },
): RecomputeOrder {
  if (o.savedInputs === undefined) return everyKth(layers, o.savedInputEvery ?? 1);
  if ((o.savedInputEvery ?? 1) !== 1) {
    throw new Error(
      `give saved inputs (${o.savedInputs}) or an interval (every ${o.savedInputEvery}), not both`,
    );
  }
  return fewestRecomputes(layers, o.savedInputs);
}
