/**
 * A fresh LoRA adapter's parameters, initialised as PEFT does.
 *
 * @module
 */
import type { LoraLayout } from "./lora.ts";
import { seededRandom } from "../util/random.ts";

/** PEFT's initialisation: A ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5), B = 0. */
export function initLora(layout: LoraLayout, params: Float32Array, seed: number): void {
  const init = loraInitializer(layout, seed), n = layout.layerElements;
  for (let l = 0; l < layout.pairs.length; l++) init(l, params.subarray(l * n, (l + 1) * n));
}

/**
 * {@linkcode initLora} a layer at a time: `init(l, into)` fills layer `l`'s `layout.layerElements`; called for
 * layers 0, 1, … in order it gives the bits `initLora` gives (one random stream over the layers).
 */
export function loraInitializer(layout: LoraLayout, seed: number): (l: number, into: Float32Array) => void {
  const random = seededRandom(seed);
  let next = 0;
  return (l, into) => {
    if (l !== next) throw new Error(`LoRA initialisation: layer ${l} asked for, ${next} is next`);
    next++;
    into.fill(0);
    const first = l * layout.layerElements;
    for (const pair of layout.pairs[l]) {
      const bound = 1 / Math.sqrt(pair.inDim), a = pair.a - first;
      for (let i = 0; i < layout.rank * pair.inDim; i++) into[a + i] = (2 * random() - 1) * bound;
    }
  };
}
