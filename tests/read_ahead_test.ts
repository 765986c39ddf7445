import { ReadAhead } from "../src/engine/read_ahead.ts";
import { assert, assertEquals, assertRejects } from "./_assert.ts";

/** A reader over two fake slots that records every read and completes when the test says so. */
function fakeReader(fail = new Set<number>()) {
  const slots: number[] = [-1, -1];
  const reads: string[] = [];
  const waiting: (() => void)[] = [];
  const read = (key: number, slot: 0 | 1) => {
    reads.push(`${key}→${slot}`);
    return new Promise<void>((resolve, reject) => {
      waiting.push(() => {
        if (fail.has(key)) return reject(new Error(`read ${key} failed`));
        slots[slot] = key;
        resolve();
      });
    });
  };
  // completes every read started so far, in order
  const finish = () => waiting.splice(0).forEach((f) => f());
  return { slots, reads, read, finish };
}

/** Resolves `p` while completing reads as they start. */
async function drive<T>(r: ReturnType<typeof fakeReader>, p: Promise<T>): Promise<T> {
  let settled: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  p.then((value) => settled = { ok: true, value }, (error) => settled = { ok: false, error });
  while (!settled) {
    r.finish();
    await new Promise((res) => setTimeout(res, 0));
  }
  if (!settled.ok) throw settled.error;
  return settled.value;
}

Deno.test("ReadAhead: the unit read ahead is used without another read, in the other slot", async () => {
  const r = fakeReader();
  const ra = new ReadAhead(r.read);
  const s0 = await drive(r, ra.load(0));
  assertEquals(r.slots[s0], 0);
  ra.prefetch(1);
  assertEquals(r.reads, ["0→1", "1→0"], "the prefetch starts at once, into the slot not in use");
  const s1 = await drive(r, ra.load(1));
  assertEquals(s1 === s0, false);
  assertEquals(r.slots[s1], 1);
  assertEquals(r.reads.length, 2, "no second read of unit 1");
  // the current unit is not read again
  assertEquals(await ra.load(1), s1);
  ra.prefetch(1);
  assertEquals(r.reads.length, 2, "prefetching the current unit does nothing");
});

Deno.test("ReadAhead: a wrong guess is waited for, then the wanted unit is read; never two reads into a slot", async () => {
  const r = fakeReader();
  const ra = new ReadAhead(r.read);
  await drive(r, ra.load(0));
  ra.prefetch(5);
  ra.prefetch(6); // ignored: a read is in flight
  const s = await drive(r, ra.load(7));
  assertEquals(r.reads, ["0→1", "5→0", "7→0"]);
  assertEquals(r.slots[s], 7);
  assertEquals(r.slots[s === 0 ? 1 : 0], 0, "the slot in use was never written");
});

Deno.test("ReadAhead: a failed read-ahead throws only for the unit that needed it", async () => {
  const r = fakeReader(new Set([2, 3]));
  const ra = new ReadAhead(r.read);
  await drive(r, ra.load(1));
  ra.prefetch(2);
  await assertRejects(() => drive(r, ra.load(2)), "read 2 failed");
  ra.prefetch(3); // fails, unused: no unhandled rejection, and loading another unit works
  const s = await drive(r, ra.load(4));
  assertEquals(r.slots[s], 4);
});

Deno.test("ReadAhead: settle waits for the read in flight and forgets the slots' contents", async () => {
  const r = fakeReader();
  const ra = new ReadAhead(r.read);
  await drive(r, ra.load(0));
  ra.prefetch(1);
  await drive(r, ra.settle());
  assert(r.reads.length === 2);
  await drive(r, ra.load(1));
  assertEquals(r.reads.length, 3, "after settle, even the unit read ahead is read again");
});
