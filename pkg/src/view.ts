/** What the widgets and the shell draw alike. Text goes in only through `textContent`. */
import type { LoadProgress } from "./source.js";

/** Sets `target`'s text and its `data-state` (`working`, `ready`, `error`, ...). */
export function say(target: HTMLElement, text: string, state: string): void {
  target.textContent = text;
  target.dataset["state"] = state;
}

export function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** `Downloading… 12.3 of 98.4 MB`, or `Loading…` for the weights' phase. */
export function progressText(progress: LoadProgress): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const what = progress.phase === "download" ? "Downloading" : "Loading";
  return progress.total === null ? `${what}… ${mb(progress.loaded)} MB` : `${what}… ${mb(progress.loaded)} of ${mb(progress.total)} MB`;
}

/** Paints normalised patch scores over an image, red where the answer comes from. */
export function paintHeatmap(canvas: HTMLCanvasElement, cells: ArrayLike<number>, grid: number, opacity: number): void {
  canvas.width = grid;
  canvas.height = grid;
  const context = canvas.getContext("2d");
  if (context === null) return;
  let max = 0;
  for (let i = 0; i < cells.length; i++) max = Math.max(max, cells[i] ?? 0);
  const pixels = context.createImageData(grid, grid);
  for (let i = 0; i < grid * grid; i++) {
    const v = max > 0 ? (cells[i] ?? 0) / max : 0;
    pixels.data.set([255, Math.round(220 * (1 - v)), 0, Math.round(255 * opacity * v)], i * 4);
  }
  context.putImageData(pixels, 0, 0);
}
