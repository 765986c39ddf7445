/**
 * Counts with thousands separators (`1,234,567`), written out by hand: `toLocaleString` loads V8's number
 * formatting (ICU data), which cost a training process ~6 MB of peak memory for one summary line.
 *
 * @module
 */

/** `n` with a comma between each group of three digits. */
export function formatCount(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
