/**
 * Finiteness checks of values read from files: a NaN or ±∞ in a weight, a norm, a bias or an adapter would
 * otherwise turn every later loss into NaN without a word. The scan is one multiply-add per element
 * (`v·0` is NaN exactly when `v` is NaN or ±∞); the position is searched only once something was found.
 *
 * @module
 */

/** Index of the first NaN or ±∞ in `x`, or −1. */
export function firstNonFinite(x: ArrayLike<number>): number {
  let poison = 0;
  for (let i = 0; i < x.length; i++) poison += x[i] * 0;
  if (poison === 0) return -1;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}

/**
 * Throws when `x` holds a NaN or ±∞, naming `what` and where: the element, or row and column when `x` is
 * rows of a `cols`-wide matrix starting at row `rowOffset`.
 */
export function assertFinite(x: ArrayLike<number>, what: string, cols = 0, rowOffset = 0): void {
  const i = firstNonFinite(x);
  if (i < 0) return;
  const at = cols > 0 ? `row ${rowOffset + Math.floor(i / cols)}, column ${i % cols}` : `element ${i}`;
  throw new Error(`${what}: non-finite value ${x[i]} at ${at}`);
}

/** Throws when half-float bits (bf16 or f16) hold a NaN or ±∞ (exponent all ones), naming `what`. */
export function assertFiniteHalf(bits: Uint16Array, dtype: "bf16" | "f16", what: string): void {
  const exp = dtype === "bf16" ? 0x7f80 : 0x7c00;
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & exp) === exp) {
      throw new Error(`${what}: non-finite ${dtype} value (bits 0x${bits[i].toString(16)}) at element ${i}`);
    }
  }
}
