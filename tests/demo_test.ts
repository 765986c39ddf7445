// The demo (`deno task train` with no --model/--data) shows learning: from a fresh cache it makes its random
// base model, and in 40 steps the loss already falls by several nats (measured 12.42 → 7.63, the means of
// the first and last ten steps). The full 300-step run and its "after" answer are in the README.
import { assert } from "./_assert.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).href;

Deno.test("demo: from a fresh cache, 40 steps lower the loss by more than 3 nats", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mesp-demo-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "train", "--steps", "40", "--out", `${tmp}/run`, "--json"],
      env: { NO_COLOR: "1", MESP_CACHE: `${tmp}/cache` },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.success, stderr);
    assert(stderr.includes("demo: a rank-32 LoRA adapter, 40 steps"), stderr);
    const losses = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.startsWith('{"step"'))
      .map((l) => JSON.parse(l).loss as number | undefined).filter((x) => x !== undefined); // not val_loss
    assert(losses.length === 40, `${losses.length} steps`);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(losses.slice(0, 10)), last = mean(losses.slice(-10));
    assert(first - last > 3, `loss ${first.toFixed(2)} → ${last.toFixed(2)}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
