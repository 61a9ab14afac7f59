// The peers comparison as an SVG: one pair of horizontal bars per case and measure (QEMU's median
// and pagewire's, same scale within the measure), the ratio written beside; the cases QEMU never
// finished are left to the table. Written by `npm run bench -- peers` into docs/peers.svg.
import type { Row } from "./report.js";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
const OURS = "#4e79a7";
const THEIRS = "#bab0ac";

export function peersChart(rows: Row[], meta: { date: string; machine: string }): string {
  const measures = [
    { id: "total-time", title: "total time (ms)" },
    { id: "downtime", title: "downtime (ms)" },
  ];
  const left = 360;
  const barWidth = 380;
  const line = 15;
  const out: string[] = [];
  let y = 60;
  const body: string[] = [];
  for (const m of measures) {
    // Cases with QEMU beside (the capped link, where it never finishes, is in the table only).
    const mine = rows.filter((r) => r.id?.endsWith(`.${m.id}`) && Number.isFinite(r.value) && r.baseline && Number.isFinite(r.baseline.value));
    if (mine.length === 0) continue;
    const max = Math.max(...mine.flatMap((r) => [r.value, r.baseline?.value ?? 0].filter(Number.isFinite)));
    body.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(m.title)}</text>`);
    y += 10;
    for (const r of mine) {
      const name = r.name.replace(/: (total time|downtime)$/, "");
      const theirs = r.baseline!.value;
      body.push(`<text x="${left - 8}" y="${y + line - 3}" text-anchor="end">${esc(name)}</text>`);
      body.push(`<rect x="${left}" y="${y + 2}" width="${(theirs / max) * barWidth}" height="${line - 4}" fill="${THEIRS}"/>`);
      body.push(`<text x="${left + (theirs / max) * barWidth + 4}" y="${y + line - 3}">${theirs.toFixed(0)} ${esc(r.baseline!.name)}</text>`);
      y += line;
      const ratio = ` (${(r.value / theirs).toFixed(2)}x)`;
      body.push(`<rect x="${left}" y="${y + 2}" width="${Math.max(1, (r.value / max) * barWidth)}" height="${line - 4}" fill="${OURS}"/>`);
      body.push(`<text x="${left + (r.value / max) * barWidth + 4}" y="${y + line - 3}">${r.value.toFixed(0)} pagewire${ratio}</text>`);
      y += line + 6;
    }
    y += 20;
  }
  const width = left + barWidth + 200;
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">pagewire and QEMU migrating the same 1 GiB guest over loopback (medians)</text>`);
  out.push(`<text x="10" y="38">${esc(meta.machine)}, ${esc(meta.date)}; grey: QEMU, blue: pagewire; shorter is better</text>`);
  out.push(...body, "</svg>");
  return out.join("\n") + "\n";
}
