// The loss curve's step axis: from step 1, or from a resumed run's first step when the losses before it are
// not there (the web page's curve of a run saved without its history).
import { assertEquals } from "./_assert.ts";
import { lossCurveSvg } from "../src/run/loss_svg.ts";

/** The step axis's end labels and the x of the training curve's first and last points. */
function axis(svg: string) {
  const labels = [...svg.matchAll(/text-anchor="middle">(\d+)<\/text>/g)].map((m) => Number(m[1]));
  const raw = svg.match(/<path d="([^"]+)" fill="none" stroke="#9ecae1"/)![1];
  const xs = [...raw.matchAll(/[ML]([\d.]+),/g)].map((m) => Number(m[1]));
  return { labels, first: xs[0], last: xs.at(-1) };
}

Deno.test("lossCurveSvg: steps from 1, or from firstStep, with validation dots on the same axis", () => {
  const losses = [3, 2.5, 2, 1.8];
  assertEquals(axis(lossCurveSvg(losses)), { labels: [1, 4], first: 60, last: 700 });
  const resumed = lossCurveSvg(losses, [{ step: 8, loss: 2 }], { firstStep: 5 });
  assertEquals(axis(resumed), { labels: [5, 8], first: 60, last: 700 });
  // the validation dot at step 8 is the last point, at the right edge
  assertEquals(resumed.match(/<circle cx="([\d.]+)"/)![1], "700.0");
});
