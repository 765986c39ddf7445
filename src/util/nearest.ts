/**
 * "Did you mean" hints: the nearest of some names to a mistyped one.
 *
 * @module
 */

/** The candidate nearest to `name` within two edits, or undefined. */
export function nearest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined, bestDistance = 3;
  for (const c of candidates) {
    const d = distance(c, name);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** ` (did you mean "steps"?)` for the name of `candidates` nearest to `name`, or "" when none is near. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const near = nearest(name, candidates);
  return near ? ` (did you mean "${near}"?)` : "";
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
