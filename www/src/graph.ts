/**
 * The attribution graph in Look inside: each prompt position's residual stream entering each
 * layer is a node (layer 0 at the bottom, the last position on the right); each edge is one head
 * carrying a position into the last position, coloured and sized by its LPI; the squares beside
 * the last position are the MLPs, which act there directly. Edges under the slider's threshold
 * are hidden; hovering or focusing one names it, clicking it opens its head.
 */

import type { Attribution, GraphEdge } from "../../pkg/src/index.js";
import { diverging, element, legend, showToken } from "./dom.js";
import { addSaveBar, csvField } from "./export.js";

const SVG_NS = "http://www.w3.org/2000/svg";
/** Pixels at zoom 1: a position's column, a layer's row, the margins for labels. */
const LAYOUT = { column: 64, row: 18, left: 56, right: 40, top: 16, bottom: 84 };
const ZOOMS = [0.5, 0.75, 1, 1.5, 2, 3, 4];

const box = element<HTMLDivElement>("graph-box");
const threshold = element<HTMLInputElement>("graph-threshold");
const thresholdValue = element<HTMLOutputElement>("graph-threshold-value");
const summary = element<HTMLParagraphElement>("graph-summary");
const hover = element<HTMLParagraphElement>("graph-hover");
const graphLegend = element<HTMLDivElement>("graph-legend");
const svg = document.getElementById("attribution-graph") as unknown as SVGSVGElement;

let drawn: Attribution | null = null;
/** The scale's end: the largest |LPI| of any edge or MLP drawn. */
let extent = 1;
let zoom = 2;
let size = { width: 0, height: 0 };
let openHead: (id: string) => void = () => undefined;

function svgElement<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const made = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, String(value));
  return made;
}

/** Edges and MLPs on one diverging scale; faint ones keep enough colour to be seen. */
function colour(score: number): string {
  return diverging(Math.sign(score) * Math.max(Math.abs(score), 0.3 * extent), extent);
}

function edgeName(edge: GraphEdge, tokens: string[]): string {
  const token = showToken(tokens[edge.position] ?? "");
  return `head ${edge.layer}.${edge.head} carries “${token}” (position ${edge.position}) into the last position: LPI ${edge.score >= 0 ? "+" : ""}${edge.score.toFixed(4)} nats`;
}

function applyZoom(): void {
  svg.setAttribute("width", String(Math.round(size.width * ZOOMS[zoom]!)));
  svg.setAttribute("height", String(Math.round(size.height * ZOOMS[zoom]!)));
  svg.dataset["zoom"] = String(ZOOMS[zoom]);
}

function setZoom(step: number): void {
  zoom = Math.min(ZOOMS.length - 1, Math.max(0, zoom + step));
  applyZoom();
}

/** The edges shown, strongest first: the order the arrow keys step through. */
function shownEdges(): SVGPathElement[] {
  const magnitude = (path: SVGPathElement) => Math.abs(Number(path.dataset["score"]));
  return [...svg.querySelectorAll<SVGPathElement>('path.graph-edge[display="inline"]')].sort((a, b) => magnitude(b) - magnitude(a));
}

/** One edge in the tab order (a roving tabindex), so the graph is one stop for the keyboard. */
function makeTabStop(edge: SVGPathElement | undefined): void {
  for (const path of svg.querySelectorAll<SVGPathElement>('path.graph-edge[tabindex="0"]')) path.setAttribute("tabindex", "-1");
  edge?.setAttribute("tabindex", "0");
}

/** Arrow keys move between the shown edges, Home and End to the strongest and the weakest. */
function stepFrom(edge: SVGPathElement, key: string): boolean {
  const edges = shownEdges();
  const at = edges.indexOf(edge);
  const to = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: edges.length - 1 }[key];
  if (to === undefined) return false;
  const next = edges[Math.min(edges.length - 1, Math.max(0, to))];
  makeTabStop(next);
  next?.focus();
  return true;
}

/** Hides edges under the threshold (a share of the largest |LPI|) and says how many remain. */
function applyThreshold(): void {
  if (drawn?.graph === undefined) return;
  const floor = Number(threshold.value) * extent;
  let shown = 0;
  for (const path of svg.querySelectorAll<SVGPathElement>("path.graph-edge")) {
    const visible = Math.abs(Number(path.dataset["score"])) >= floor;
    path.setAttribute("display", visible ? "inline" : "none");
    if (visible) shown++;
  }
  makeTabStop(shownEdges()[0]);
  thresholdValue.value = `${floor.toFixed(3)} nats`;
  svg.dataset["shown"] = String(shown);
  const { edges, edges_scored } = drawn.graph;
  summary.textContent =
    `${shown} of ${edges.length} edges shown (|LPI| ≥ ${floor.toFixed(3)} nats). The ${edges.length} strongest of all ` +
    `${edges_scored} head-position edges, chosen to first order, are scored exactly.`;
}

/** The graph of `result` (which must hold one), replacing any drawn before. */
export function renderGraph(result: Attribution): void {
  const graph = result.graph;
  if (graph === undefined) return;
  drawn = result;
  const tokens = result.input_tokens;
  const layers = result.layers.length;
  const last = tokens.length - 1;
  extent = Math.max(1e-6, ...graph.edges.map((e) => Math.abs(e.score)), ...result.layers.map((l) => Math.abs(l.ffn)));
  size = { width: LAYOUT.left + tokens.length * LAYOUT.column + LAYOUT.right, height: LAYOUT.top + layers * LAYOUT.row + LAYOUT.bottom };
  const x = (t: number) => LAYOUT.left + (t + 0.5) * LAYOUT.column;
  // Row `r` is the residual stream entering layer r; row `layers` is the final one.
  const y = (r: number) => LAYOUT.top + (layers - r) * LAYOUT.row;

  const parts: SVGElement[] = [];
  for (let r = 0; r <= layers; r += 5) {
    const label = svgElement("text", { x: LAYOUT.left - 8, y: y(r) + 3, "text-anchor": "end", class: "graph-label" });
    label.textContent = r === layers ? "out" : `layer ${r}`;
    parts.push(label);
  }
  tokens.forEach((token, t) => {
    const label = svgElement("text", { x: x(t), y: y(0) + 14, transform: `rotate(-35 ${x(t)} ${y(0) + 14})`, "text-anchor": "end", class: "graph-label" });
    label.textContent = showToken(token);
    parts.push(label);
  });
  parts.push(svgElement("line", { x1: x(last), y1: y(0), x2: x(last), y2: y(layers), class: "graph-spine" }));
  for (let t = 0; t < tokens.length; t++) {
    for (let r = 0; r <= layers; r++) parts.push(svgElement("circle", { cx: x(t), cy: y(r), r: t === last ? 2.5 : 1.5, class: "graph-node" }));
  }
  // Weaker edges first, so that the strong ones are drawn over them.
  for (const edge of [...graph.edges].sort((a, b) => Math.abs(a.score) - Math.abs(b.score))) {
    const [x0, y0, x1, y1] = [x(edge.position), y(edge.layer), x(last), y(edge.layer + 1)];
    // An arc over the row, higher for a longer reach; a head from the last position bows left.
    const control =
      edge.position === last
        ? `${x1 - 8 - 1.5 * edge.head} ${(y0 + y1) / 2}`
        : `${(x0 + x1) / 2} ${Math.min(y0, y1) - 0.12 * (x1 - x0) - edge.head}`;
    const name = edgeName(edge, tokens);
    const path = svgElement("path", {
      d: `M ${x0} ${y0} Q ${control} ${x1} ${y1}`,
      class: "graph-edge",
      stroke: colour(edge.score),
      "stroke-width": (0.75 + 4.25 * Math.abs(edge.score) / extent).toFixed(2),
      tabindex: -1,
      role: "button",
      "aria-label": name,
    });
    Object.assign(path.dataset, { layer: String(edge.layer), head: String(edge.head), position: String(edge.position), score: String(edge.score) });
    const title = svgElement("title", {});
    title.textContent = name;
    path.append(title);
    const open = () => openHead(`${edge.layer}.${edge.head}`);
    path.addEventListener("click", open);
    path.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") open();
      else if (!stepFrom(path, event.key)) return;
      event.preventDefault();
    });
    for (const shown of ["pointerenter", "focus"]) path.addEventListener(shown, () => (hover.textContent = name));
    parts.push(path);
  }
  result.layers.forEach((layer) => {
    const side = 10;
    const square = svgElement("rect", {
      x: x(last) + 10,
      y: (y(layer.layer) + y(layer.layer + 1)) / 2 - side / 2,
      width: side,
      height: side,
      fill: colour(layer.ffn),
      class: "graph-mlp",
    });
    square.dataset["layer"] = String(layer.layer);
    square.dataset["score"] = String(layer.ffn);
    const title = svgElement("title", {});
    title.textContent = `MLP of layer ${layer.layer} at the last position: LPI ${layer.ffn >= 0 ? "+" : ""}${layer.ffn.toFixed(4)} nats`;
    square.append(title);
    parts.push(square);
  });
  svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
  svg.replaceChildren(...parts);
  applyZoom();
  applyThreshold();
  legend(graphLegend, "LPI (nats) of each edge and MLP", (t) => diverging(2 * t - 1, 1), [`−${extent.toFixed(2)}`, "0", `+${extent.toFixed(2)}`]);
  hover.textContent = "Hover over or focus an edge to name it; click it to open its head.";
  svg.dataset["state"] = "ready";
}

/** The drawing as a standalone SVG: light colours, hidden edges left out. */
function standalone(): string {
  const copy = svg.cloneNode(true) as SVGSVGElement;
  copy.setAttribute("xmlns", SVG_NS);
  copy.setAttribute("width", String(size.width));
  copy.setAttribute("height", String(size.height));
  copy.setAttribute("style", "color: #111; font: 10px ui-monospace, monospace");
  for (const hidden of copy.querySelectorAll('[display="none"]')) hidden.remove();
  const style = svgElement("style", {});
  style.textContent =
    ".graph-label { fill: currentColor } .graph-node { fill: currentColor; fill-opacity: .35 } " +
    ".graph-spine, .graph-mlp { stroke: currentColor; stroke-opacity: .4 } .graph-edge { fill: none; stroke-linecap: round }";
  copy.prepend(style, svgElement("rect", { width: size.width, height: size.height, fill: "#fff" }));
  return new XMLSerializer().serializeToString(copy);
}

function edgesCsv(): string {
  const result = drawn as Attribution;
  const rows = (result.graph?.edges ?? []).map((e) => [e.layer, e.head, e.position, csvField(result.input_tokens[e.position] ?? ""), e.score].join(","));
  return ["layer,head,position,token,lpi", ...rows].join("\r\n") + "\r\n";
}

function graphJson(): string {
  const result = drawn as Attribution;
  return JSON.stringify({ target: result.target, input_tokens: result.input_tokens, layers: result.layers, graph: result.graph }, null, 1);
}

/** Wires the controls; `open` shows a head's per-position view. */
export function setUpGraph(open: (id: string) => void): void {
  openHead = open;
  threshold.addEventListener("input", applyThreshold);
  element("graph-zoom-in").addEventListener("click", () => setZoom(1));
  element("graph-zoom-out").addEventListener("click", () => setZoom(-1));
  // Ctrl (or ⌘) and the wheel zoom, as maps do, so the page still scrolls past the graph.
  box.addEventListener(
    "wheel",
    (event) => {
      if (!event.ctrlKey && !event.metaKey) return;
      event.preventDefault();
      setZoom(event.deltaY < 0 ? 1 : -1);
    },
    { passive: false },
  );
  // Dragging pans the scroll area.
  let from: { x: number; y: number; left: number; top: number } | null = null;
  box.addEventListener("pointerdown", (event) => {
    if (event.target instanceof SVGPathElement) return;
    from = { x: event.clientX, y: event.clientY, left: box.scrollLeft, top: box.scrollTop };
  });
  box.addEventListener("pointermove", (event) => {
    if (from === null || event.buttons === 0) return;
    box.scrollLeft = from.left - (event.clientX - from.x);
    box.scrollTop = from.top - (event.clientY - from.y);
  });
  box.addEventListener("pointerup", () => (from = null));
  addSaveBar(box, "attribution-graph", "attribution-graph", { csv: edgesCsv, json: graphJson, svg: standalone }, () => drawn === null);
}

/** Marks the graph as being recomputed, failed, or (`""`) left as it was. */
export function markGraph(state: "working" | "error" | ""): void {
  svg.dataset["state"] = state;
  hover.textContent = "";
}
