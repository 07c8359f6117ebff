// Pixel checks of the PNG charts Ferry draws: a chart is judged by what is on
// it (the series' colours, the threshold line), not by its file size.
import { PNG } from 'pngjs';

/** Decodes a PNG (bytes or base64). */
export function readPng(data: Buffer | string): PNG {
  return PNG.sync.read(typeof data === 'string' ? Buffer.from(data, 'base64') : data);
}

/** How many pixels are within a small distance of `colour` (#rrggbb): anti-aliasing blurs the rest. */
export function pixelsOf(png: PNG, colour: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(colour.slice(i, i + 2), 16)) as [
    number,
    number,
    number,
  ];
  let n = 0;
  for (let i = 0; i < png.data.length; i += 4)
    if (
      Math.abs((png.data[i] as number) - r) < 8 &&
      Math.abs((png.data[i + 1] as number) - g) < 8 &&
      Math.abs((png.data[i + 2] as number) - b) < 8
    )
      n++;
  return n;
}
