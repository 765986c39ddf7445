// formatCount writes what Intl's en-US number format writes, without loading it: V8's ICU number formatting
// cost the training process ~6 MB of peak for one summary line, so nothing under src/ calls toLocaleString.
import { assert, assertEquals } from "./_assert.ts";
import { formatCount } from "../src/util/count.ts";

Deno.test("formatCount: the same text as toLocaleString('en-US')", () => {
  for (const n of [0, 7, 42, 999, 1000, 1001, 65536, 999_999, 1_000_000, 1_234_567, 151_936, 2 ** 53 - 1]) {
    assertEquals(formatCount(n), n.toLocaleString("en-US"), String(n));
  }
});

Deno.test("formatCount: nothing under src/ calls toLocaleString", async () => {
  const found: string[] = [];
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
      if (e.isDirectory) await walk(url);
      else if (e.name.endsWith(".ts")) {
        const lines = (await Deno.readTextFile(url)).split("\n");
        lines.forEach((l, i) => {
          if (l.includes(".toLocaleString(") && !l.trimStart().startsWith("*")) {
            found.push(`${url.pathname}:${i + 1}`);
          }
        });
      }
    }
  };
  await walk(new URL("../src/", import.meta.url));
  assert(found.length === 0, `toLocaleString in: ${found.join(", ")}`);
});
