// The policy comparison as an SVG a reader takes in at a glance: for each link, two panels
// (pages sent relative to memory, and downtime as the application saw it), grouped by workload,
// one bar per policy in a fixed colour, its value written above it. Both scales are logarithmic:
// pre-copy's 31x would otherwise flatten the differences between 1x and 4x that matter.
import type { Cell } from "./cells.js";

const COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

interface Panel {
  title: string;
  value: (c: Cell) => number;
  format: (x: number) => string;
  /** Values at or below this are drawn as a stub: a log scale has no zero. */
  floor: number;
}

export function policyChart(cells: Cell[], meta: { bytes: number; runs: number }): string {
  const links = [...new Set(cells.map((c) => c.link))];
  const workloads = [...new Set(cells.map((c) => c.workload))];
  const policies = [...new Set(cells.map((c) => c.policy))];
  const panels: Panel[] = [
    { title: "pages sent / memory size (log scale)", value: (c) => c.median.sentPerMemory, format: (x) => `${x.toFixed(x < 10 ? 2 : 1)}x`, floor: 0.01 },
    { title: "downtime the application saw (ms, log scale)", value: (c) => c.median.appDowntimeMs, format: (x) => x.toFixed(0), floor: 1 },
  ];
  const bar = 13;
  const barsOf = (w: string) => cells.filter((c) => c.workload === w && c.link === links[0]).length;
  // Every group is wide enough for its label, however few bars it has.
  const groupWidth = (w: string) => Math.max(130, barsOf(w) * bar + 20);
  const plotWidth = workloads.reduce((s, w) => s + groupWidth(w), 0);
  const left = 60;
  const panelHeight = 170;
  // Room above the tallest bar for its label.
  const labelRoom = 34;
  const top = 70;
  const width = Math.max(left + plotWidth + 20, left + policies.length * 110);
  const panelBlock = panelHeight + 70;
  const height = top + links.length * panels.length * panelBlock + 20;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="15" font-weight="bold">Migration policies against HPC kernels (${(meta.bytes / 2 ** 20).toFixed(0)} MiB guests, median of ${meta.runs})</text>`);
  policies.forEach((p, i) => {
    const x = left + i * 110;
    out.push(`<rect x="${x}" y="34" width="12" height="12" fill="${COLOURS[i % COLOURS.length]}"/><text x="${x + 16}" y="44">${esc(p)}</text>`);
  });
  let y = top;
  for (const link of links) {
    for (const panel of panels) {
      const mine = cells.filter((c) => c.link === link);
      const values = mine.map(panel.value).filter((v) => Number.isFinite(v) && v > panel.floor);
      const max = Math.max(...values, panel.floor * 10);
      const min = Math.min(...values, max);
      const barRoom = panelHeight - labelRoom;
      // The smallest value still gets a visible bar (the 0.3 decade), values under the floor a stub.
      const scale = (v: number) => {
        if (!Number.isFinite(v)) return 0;
        if (v <= panel.floor) return 2;
        return ((Math.log10(Math.max(v, min)) - Math.log10(min) + 0.3) / (Math.log10(max) - Math.log10(min) + 0.3)) * barRoom;
      };
      out.push(`<text x="${left}" y="${y + 4}" font-size="12" font-weight="bold">${esc(link)}: ${esc(panel.title)}</text>`);
      const base = y + 14 + panelHeight;
      out.push(`<line x1="${left}" y1="${base}" x2="${left + plotWidth}" y2="${base}" stroke="#333"/>`);
      let groupStart = left;
      for (const w of workloads) {
        const group = mine.filter((c) => c.workload === w);
        let x = groupStart + (groupWidth(w) - group.length * bar) / 2;
        group.forEach((c) => {
          const v = panel.value(c);
          const h = scale(v);
          const colour = COLOURS[policies.indexOf(c.policy) % COLOURS.length];
          const label = Number.isFinite(v) ? panel.format(v) : "n/a";
          out.push(`<rect x="${x}" y="${base - h}" width="${bar - 1}" height="${h}" fill="${colour}"><title>${esc(`${c.policy} on ${w}, ${link}: ${label}`)}</title></rect>`);
          const lx = x + bar / 2 + 3;
          const ly = base - h - 3;
          out.push(`<text x="${lx}" y="${ly}" font-size="9" fill="#333" transform="rotate(-90 ${lx} ${ly})">${esc(label)}</text>`);
          x += bar;
        });
        out.push(`<text x="${groupStart + groupWidth(w) / 2}" y="${base + 14}" text-anchor="middle">${esc(w)}</text>`);
        groupStart += groupWidth(w);
      }
      y += panelBlock;
    }
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
