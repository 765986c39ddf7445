/**
 * The browser build's types: `dist/mesp.d.ts`, one self-contained declaration file for `dist/mesp.js`, made by
 * the pinned dts-bundle-generator over the same `mod.ts`. TypeScript finds it beside the module; Deno and
 * other URL importers find it through the `@ts-self-types` comment `bundle.ts` puts at the top of mesp.js.
 *
 * @module
 */
// deno-lint-ignore no-import-prefix -- pinned here, no import map: the build is the only user
import { generateDtsBundle } from "npm:dts-bundle-generator@9.5.1";
// deno-lint-ignore no-import-prefix -- the compiler it runs, pinned (its peer range would take any newer one)
import "npm:typescript@5.9.3";

/** The declarations of `mod.ts` (run from the repository root) as one file. */
export function declarations(): Uint8Array {
  const [text] = generateDtsBundle(
    [{ filePath: "mod.ts", output: { noBanner: true, exportReferencedTypes: false } }],
    { preferredConfigPath: "asm/tsconfig.types.json" },
  );
  if (/\/work\/|\/home\/|\/root\/|file:\/\//.test(text)) {
    throw new Error("dist/mesp.d.ts: an absolute path is left");
  }
  return new TextEncoder().encode(text);
}
