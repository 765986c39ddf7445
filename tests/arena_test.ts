import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  Arena,
  formatPlan,
  parseSize,
  planMemory,
  PlanTooLargeError,
  TAIL_GUARD,
} from "../src/runtime/arena.ts";
import { loadKernels } from "../src/runtime/kernels.ts";

Deno.test("planMemory: aligned, in order, guarded; rejects duplicates and bad sizes", async () => {
  const plan = planMemory([
    { name: "a", bytes: 10 },
    { name: "b", bytes: 100, align: 256 },
    { name: "c", bytes: 1 },
  ], { base: 64 });
  assertEquals(plan.regions.map((r) => r.offset), [64, 256, 356 + 28]);
  assertEquals(plan.end, 448 + TAIL_GUARD);
  assertEquals(plan.bytes, plan.end - 64);
  await assertRejects(
    () => planMemory([{ name: "a", bytes: 1 }, { name: "a", bytes: 2 }]),
    'duplicate region "a"',
  );
  await assertRejects(() => planMemory([{ name: "x", bytes: -1 }]), 'region "x" has invalid size');
  await assertRejects(() => planMemory([{ name: "x", bytes: 1, align: 3 }]), "invalid alignment 3");
});

Deno.test("Arena: grows memory once to the plan and hands out views by name", async () => {
  const k = await loadKernels();
  const before = k.memory.buffer.byteLength;
  const arena = Arena.create(k, [{ name: "big", bytes: 8 << 20 }, { name: "small", bytes: 12 }]);
  assert(arena.memoryBytes() >= arena.plan.end && arena.memoryBytes() > before);
  const v = arena.f32("small");
  assertEquals(v.length, 3);
  assertEquals(v.byteOffset, arena.ptr("small"));
  assert(arena.ptr("big") >= k.exports.heap_base(), "arena must start after the module's static data");
  await assertRejects(() => arena.ptr("nope"), 'no region "nope"');
});

Deno.test("Arena: refuses a plan over budget, showing the plan", async () => {
  const k = await loadKernels();
  const before = k.memory.buffer.byteLength;
  const err = await assertRejects(
    () =>
      Arena.create(
        k,
        [{ name: "weights", bytes: 30e6, purpose: "one layer" }, { name: "ckpt", bytes: 5e6 }],
        { budget: 20e6 },
      ),
    "memory plan needs 35.0 MB but the budget is 20.0 MB",
  );
  assert(err instanceof PlanTooLargeError);
  assert(
    err.message.includes("weights") && err.message.includes("30.0 MB") && err.message.includes("one layer"),
  );
  // a budget given in MB where bytes are meant shows as bytes, not as "0.0 MB"
  await assertRejects(
    () => Arena.create(k, [{ name: "weights", bytes: 30e6 }], { budget: 1000 }),
    "memory plan needs 30.0 MB but the budget is 1000 bytes (a byte count; 100 MB is 100e6)",
  );
  assertEquals(k.memory.buffer.byteLength, before, "a refused plan must not grow memory");
});

Deno.test("formatPlan lists regions largest first with a total", () => {
  const t = formatPlan(
    planMemory([{ name: "s", bytes: 1e6 }, { name: "l", bytes: 3e6, purpose: "big one" }]),
  );
  const lines = t.split("\n");
  assert(lines[0].startsWith("l") && lines[0].includes("3.0 MB") && lines[0].includes("big one"));
  assert(lines.at(-1)!.startsWith("total") && lines.at(-1)!.includes("4.0 MB"));
});

Deno.test("parseSize", async () => {
  assertEquals(parseSize("100MB"), 100e6);
  assertEquals(parseSize("1.5GB"), 1.5e9);
  assertEquals(parseSize("512MiB"), 512 * 1024 * 1024);
  assertEquals(parseSize("300m"), 300e6);
  assertEquals(parseSize("4096"), 4096);
  await assertRejects(() => parseSize("lots"), 'cannot read size "lots"');
});
