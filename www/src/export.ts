/**
 * Saving what a grid shows, made in the page and never sent anywhere: its numbers as CSV and
 * JSON, its picture (the cells' own colours and text) as SVG and PNG.
 */

import { describe, make, say } from "./dom.js";

/** A grid read back from its table: the column labels, and each row's label and cells. */
interface GridContents {
  corner: string;
  columns: string[];
  rows: { label: string; cells: { value: string; background: string; ink: string }[] }[];
}

/** The number a cell stands for where it keeps one (`data-value`, `data-score`), else its text. */
function cellValue(cell: HTMLTableCellElement): string {
  return cell.dataset["value"] ?? cell.dataset["score"] ?? cell.textContent ?? "";
}

function contents(table: HTMLTableElement): GridContents {
  const [header, ...body] = Array.from(table.rows);
  const headings = Array.from(header?.cells ?? []).map((c) => c.textContent ?? "");
  return {
    corner: headings[0] ?? "",
    columns: headings.slice(1),
    rows: body.map((row) => {
      const [label, ...cells] = Array.from(row.cells);
      return {
        label: label?.textContent ?? "",
        cells: cells.map((cell) => {
          const style = getComputedStyle(cell);
          return { value: cellValue(cell), background: style.backgroundColor, ink: style.color };
        }),
      };
    }),
  };
}

/**
 * RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. Text that
 * is not a number and starts as a spreadsheet formula does (a token such as "=cmd") gets a
 * leading apostrophe, so a spreadsheet shows it rather than running it.
 */
export function csvField(text: string): string {
  const inert = /^[=+\-@\t\r]/.test(text) && !Number.isFinite(Number(text)) ? `'${text}` : text;
  return /[",\r\n]/.test(inert) ? `"${inert.replaceAll('"', '""')}"` : inert;
}

function toCsv(grid: GridContents): string {
  const lines = [[grid.corner, ...grid.columns], ...grid.rows.map((r) => [r.label, ...r.cells.map((c) => c.value)])];
  return lines.map((line) => line.map(csvField).join(",")).join("\r\n") + "\r\n";
}

function toJson(grid: GridContents, name: string): string {
  const numeric = (v: string) => (v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : v);
  return JSON.stringify(
    { name, corner: grid.corner, columns: grid.columns, rows: grid.rows.map((r) => ({ label: r.label, values: r.cells.map((c) => numeric(c.value)) })) },
    null,
    1,
  );
}

const CELL = { width: 56, height: 16, label: 64 };

/** Text for an XML text node: markup escaped, and the control characters XML forbids dropped. */
function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "").replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** The grid drawn as SVG: a rectangle per cell in its colour, its text as the table shows it. */
function toSvg(table: HTMLTableElement, grid: GridContents): string {
  const shown = Array.from(table.rows).slice(1).map((row) => Array.from(row.cells).slice(1).map((c) => c.textContent ?? ""));
  const width = CELL.label + CELL.width * grid.columns.length;
  const height = CELL.height * (grid.rows.length + 1);
  const text = (x: number, y: number, content: string, ink = "#111") =>
    `<text x="${x + 3}" y="${y + CELL.height - 4}" fill="${ink}">${escapeXml(content)}</text>`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="10">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(0, 0, grid.corner),
    ...grid.columns.map((c, i) => text(CELL.label + i * CELL.width, 0, c)),
  ];
  grid.rows.forEach((row, r) => {
    const y = CELL.height * (r + 1);
    parts.push(text(0, y, row.label));
    row.cells.forEach((cell, i) => {
      const x = CELL.label + i * CELL.width;
      parts.push(`<rect x="${x}" y="${y}" width="${CELL.width}" height="${CELL.height}" fill="${cell.background}" stroke="#eee"/>`);
      parts.push(text(x, y, shown[r]?.[i] ?? "", cell.ink));
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}

function save(blob: Blob, file: string): void {
  const url = URL.createObjectURL(blob);
  const link = make("a");
  link.href = url;
  link.download = file;
  link.click();
  // Some browsers read the URL after the click returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function toPng(svg: string): Promise<Blob> {
  const image = new Image();
  const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  try {
    image.src = url;
    await image.decode();
    const canvas = make("canvas");
    [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
    canvas.getContext("2d")?.drawImage(image, 0, 0);
    return await new Promise<Blob>((resolve, reject) => canvas.toBlob((b) => (b === null ? reject(new Error("no PNG")) : resolve(b)), "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** What a save bar offers: each format's file contents, made when its button is clicked. */
export interface Savers {
  csv: () => string;
  json: () => string;
  svg: () => string;
}

/**
 * Buttons after `anchor` that save what `savers` make as `name`.csv, .json, .svg and .png (the
 * SVG drawn), unless `empty()` says there is nothing to save yet.
 */
export function addSaveBar(anchor: HTMLElement, forId: string, name: string, savers: Savers, empty: () => boolean): void {
  const bar = make("p", "Save: ", "exports");
  const problem = make("span", "", "hint");
  bar.dataset["for"] = forId;
  const formats: [string, () => Promise<Blob> | Blob][] = [
    ["CSV", () => new Blob([savers.csv()], { type: "text/csv" })],
    ["JSON", () => new Blob([savers.json()], { type: "application/json" })],
    ["SVG", () => new Blob([savers.svg()], { type: "image/svg+xml" })],
    ["PNG", () => toPng(savers.svg())],
  ];
  for (const [format, blobOf] of formats) {
    const button = make("button", format);
    button.type = "button";
    button.dataset["format"] = format.toLowerCase();
    button.onclick = async () => {
      if (empty()) return;
      try {
        save(await blobOf(), `${name}.${format.toLowerCase()}`);
        say(problem, "", "ready");
      } catch (e) {
        say(problem, `${format}: ${describe(e)}`, "error");
      }
    };
    bar.append(button);
  }
  bar.append(problem);
  anchor.after(bar);
}

/** A save bar after `table` (after its scroll area), reading the grid as it is drawn. */
export function addExports(table: HTMLTableElement, name: string): void {
  const anchor = table.parentElement?.classList.contains("scroll") ? table.parentElement : table;
  const savers = {
    csv: () => toCsv(contents(table)),
    json: () => toJson(contents(table), name),
    svg: () => toSvg(table, contents(table)),
  };
  addSaveBar(anchor, table.id, name, savers, () => table.rows.length < 2);
}
