/**
 * What a value is, for errors about an argument of the wrong kind ("got a string", "got a Promise"): plain
 * JavaScript callers (no type checker stops them) pass anything.
 *
 * @module
 */

/** `a string`, `a number (3)`, `null`, `an array`, `a Promise`, `a Uint8Array`, `an Int32Array`, `an object`, … */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "string") return "a string";
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return `a ${typeof value} (${String(value)})`;
  }
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  if (isThenable(value)) return "a Promise";
  const name = (value as object).constructor?.name;
  return name && name !== "Object" ? `a${/^[AEIO]/.test(name) ? "n" : ""} ${name}` : "an object";
}

/** True for a Promise or anything else with a `then` method (what `await` would wait for). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}
