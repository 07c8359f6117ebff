// Small charts for the soak: an ASCII plot for the Markdown and an SVG file.
export interface Series {
  name: string;
  /** [seconds since start, MiB] */
  points: [number, number][];
}

const MARKS = ['w', 'b', 'k', 'x', 'o'];

/** A text plot, `width` columns × `height` rows; each series drawn with its own letter. */
export function asciiChart(series: Series[], width = 60, height = 12): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return '(no samples)';
  const maxX = Math.max(1, ...all.map((p) => p[0]));
  const maxY = Math.max(1, ...all.map((p) => p[1])) * 1.1;
  const grid = Array.from({ length: height }, () => Array.from({ length: width }, () => ' '));
  series.forEach((s, i) => {
    for (const [x, y] of s.points) {
      const col = Math.min(width - 1, Math.round((x / maxX) * (width - 1)));
      const row = height - 1 - Math.min(height - 1, Math.round((y / maxY) * (height - 1)));
      (grid[row] as string[])[col] = MARKS[i % MARKS.length] as string;
    }
  });
  const label = (row: number) => `${Math.round((maxY * (height - 1 - row)) / (height - 1))}`.padStart(5);
  const lines = grid.map((r, i) => `${i % 3 === 0 ? label(i) : '     '} |${r.join('')}`);
  lines.push(`      +${'-'.repeat(width)}`);
  lines.push(`       0 s${' '.repeat(Math.max(1, width - 12))}${Math.round(maxX)} s`);
  lines.push(`       MiB RSS; ${series.map((s, i) => `${MARKS[i % MARKS.length]} = ${s.name}`).join(', ')}`);
  return lines.join('\n');
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

export function svgChart(series: Series[], title: string, width = 640, height = 260): string {
  const all = series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...all.map((p) => p[0]));
  const maxY = Math.max(1, ...all.map((p) => p[1])) * 1.1;
  const pad = { l: 50, r: 120, t: 24, b: 30 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const x = (v: number) => (pad.l + (v / maxX) * w).toFixed(1);
  const y = (v: number) => (pad.t + h - (v / maxY) * h).toFixed(1);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(maxY * f));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${pad.l}" y="15" font-size="12">${title}</text>`,
    ...ticks.map(
      (t) =>
        `<line x1="${pad.l}" x2="${pad.l + w}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/><text x="${pad.l - 6}" y="${y(t)}" text-anchor="end" dy="3">${t}</text>`,
    ),
    `<text x="${pad.l + w / 2}" y="${height - 6}" text-anchor="middle">seconds (RSS in MiB)</text>`,
    `<text x="${pad.l + w}" y="${height - 18}" text-anchor="end">${Math.round(maxX)}</text>`,
    ...series.map(
      (s, i) =>
        `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${s.points.map((p) => `${x(p[0])},${y(p[1])}`).join(' ')}"/>` +
        `<text x="${pad.l + w + 8}" y="${pad.t + 14 * (i + 1)}" fill="${COLORS[i % COLORS.length]}">${s.name}</text>`,
    ),
    '</svg>',
  ].join('\n');
}
