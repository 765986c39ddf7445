// Minimal assertions (Deno's std is not reachable from this project's machines).

// The tests start CLI children in the checkout: under `deno task test` typed in a subfolder, the INIT_CWD
// they would inherit moves the CLI there (it follows `deno task`'s INIT_CWD). Every test imports this file.
try {
  Deno.env.delete("INIT_CWD");
} catch {
  // no --allow-env: no children either
}

/** Throws unless `cond` is truthy. */
export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Deep equality via structured comparison of JSON-able values and typed arrays. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!equal(actual, expected)) {
    throw new Error(`${msg ? msg + ": " : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

/** Throws unless `f` throws (or rejects) an error whose message includes `includes`. */
export async function assertRejects(f: () => unknown, includes: string | RegExp): Promise<Error> {
  try {
    await f();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const ok = typeof includes === "string" ? msg.includes(includes) : includes.test(msg);
    if (!ok) throw new Error(`error message ${JSON.stringify(msg)} does not match ${includes}`);
    return e as Error;
  }
  throw new Error(`expected an error matching ${includes}, but nothing was thrown`);
}

/** |actual − expected| ≤ tol (elementwise for arrays). */
export function assertClose(
  actual: number | ArrayLike<number>,
  expected: number | ArrayLike<number>,
  tol: number,
  msg = "",
): void {
  const a = typeof actual === "number" ? [actual] : actual;
  const e = typeof expected === "number" ? [expected] : expected;
  if (a.length !== e.length) throw new Error(`${msg}: length ${a.length} vs ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - e[i]) <= tol)) throw new Error(`${msg}[${i}]: ${a[i]} vs ${e[i]} (tol ${tol})`);
  }
}

function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    return equal(
      Array.from(a as unknown as ArrayLike<number>),
      Array.from(b as unknown as ArrayLike<number>),
    );
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length &&
      ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

function show(v: unknown): string {
  try {
    return JSON.stringify(ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v);
  } catch {
    return String(v);
  }
}
