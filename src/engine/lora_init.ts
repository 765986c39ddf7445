/**
 * A fresh LoRA adapter's parameters, initialised as PEFT does.
 *
 * @module
 */
import type { LoraLayout } from "./lora.ts";
import { seededRandom } from "../util/random.ts";

/** PEFT's initialisation: A ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5), B = 0. */
export function initLora(layout: LoraLayout, params: Float32Array, seed: number): void {
  const random = seededRandom(seed);
  params.fill(0);
  for (const row of layout.pairs) {
    for (const pair of row) {
      const bound = 1 / Math.sqrt(pair.inDim);
      for (let i = 0; i < layout.rank * pair.inDim; i++) params[pair.a + i] = (2 * random() - 1) * bound;
    }
  }
}
