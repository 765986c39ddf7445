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

/** Layer `l`'s elements of `values` (`perLayer` of them): a view, valid until the next call for layered ones. */
export function layerOf(values: AdapterValues, l: number, perLayer: number): Float32Array {
  if (values instanceof Float32Array) return values.subarray(l * perLayer, (l + 1) * perLayer);
  return values.layer(l);
}

/** `values` in pieces: whole values in one, layered ones a layer at a time (each valid until the next). */
export function* piecesOf(values: AdapterValues): Generator<Float32Array> {
  if (values instanceof Float32Array) {
    yield values;
    return;
  }
  for (let l = 0; l < values.layers; l++) yield values.layer(l);
}
