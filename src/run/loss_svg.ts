/**
 * A loss curve as a standalone SVG: training loss per step (and its running mean), validation loss as dots.
 *
 * @module
 */

/** Options for {@linkcode lossCurveSvg}. */
export interface LossCurveOptions {
  title?: string;
  width?: number;
  height?: number;
  /**
   * The step of `train[0]` (default 1): a resumed run's curve without the losses from before the resume
   * starts at its real step number.
   */
  firstStep?: number;
}

/** The SVG text of a loss curve. */
export function lossCurveSvg(
  train: readonly number[],
  val: readonly { step: number; loss: number }[] = [],
  options: LossCurveOptions = {},
): string {
  const W = options.width ?? 720, H = options.height ?? 400;
  const left = 60, right = 20, top = 36, bottom = 44;
  const all = [...train, ...val.map((v) => v.loss)].filter(Number.isFinite);
  const lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
  const pad = (hi - lo) * 0.05 || 0.5;
  const y0 = lo - pad, y1 = hi + pad;
  const first = options.firstStep ?? 1;
  const steps = Math.max(first + train.length - 1, ...val.map((v) => v.step), first);
  const X = (step: number) => left + ((step - first) / Math.max(1, steps - first)) * (W - left - right);
  const Y = (loss: number) => top + (1 - (loss - y0) / (y1 - y0)) * (H - top - bottom);
  const path = (pts: [number, number][]) =>
    pts.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const raw = train.map((l, i) => [X(first + i), Y(l)] as [number, number]);
  const k = Math.max(1, Math.round(train.length / 25));
  const smooth = train.map((_, i) => {
    const s = train.slice(Math.max(0, i - k + 1), i + 1);
    return [X(first + i), Y(s.reduce((a, b) => a + b, 0) / s.length)] as [number, number];
  });
  const ticks = 5;
  const grid: string[] = [];
  for (let i = 0; i <= ticks; i++) {
    const v = y0 + ((y1 - y0) * i) / ticks, y = Y(v);
    grid.push(
      `<line x1="${left}" x2="${W - right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#eee"/>`,
    );
    grid.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(options.title ?? "loss")}</text>
${grid.join("\n")}
<line x1="${left}" x2="${left}" y1="${top}" y2="${H - bottom}" stroke="#999"/>
<line x1="${left}" x2="${W - right}" y1="${H - bottom}" y2="${H - bottom}" stroke="#999"/>
<text x="${left}" y="${H - bottom + 16}" text-anchor="middle">${first}</text>
<text x="${W - right}" y="${H - bottom + 16}" text-anchor="middle">${steps}</text>
<text x="${(left + W - right) / 2}" y="${H - 10}" text-anchor="middle">step</text>
<path d="${path(raw)}" fill="none" stroke="#9ecae1" stroke-width="1"/>
<path d="${path(smooth)}" fill="none" stroke="#08519c" stroke-width="2"/>
${
    val.map((v) =>
      `<circle cx="${X(v.step).toFixed(1)}" cy="${Y(v.loss).toFixed(1)}" r="3.5" fill="#e6550d"/>`
    ).join("\n")
  }
<text x="${W - right}" y="${top + 12}" text-anchor="end" fill="#08519c">train (running mean)</text>
${
    val.length
      ? `<text x="${W - right}" y="${top + 26}" text-anchor="end" fill="#e6550d">validation</text>`
      : ""
  }
</svg>
`;
}
