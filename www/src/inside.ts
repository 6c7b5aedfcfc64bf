/**
 * The Look inside panel: the next-token distribution, the logit lens, head importance (LPI)
 * with per-position contributions, top neurons, and one-click ablation.
 */

import type { Attribution, LogitLens } from "../../pkg/src/index.js";
import { diverging, element, heat, legend, make, paint, Progress, say, showToken, tokenRows, track } from "./dom.js";
import { addExports } from "./export.js";
import { markGraph, renderGraph, setUpGraph } from "./graph.js";
import { model, modelLoaded } from "./model.js";
import { readViewState, writeViewState } from "./view-state.js";

const status = element<HTMLParagraphElement>("inside-status");
const promptInput = element<HTMLInputElement>("inside-prompt");
const nextTokens = element<HTMLTableElement>("next-tokens");
const ablatedTokens = element<HTMLTableElement>("ablated-tokens");
const ablationBox = element<HTMLDivElement>("ablation-box");
const lensGrid = element<HTMLTableElement>("lens-grid");
const headGrid = element<HTMLTableElement>("head-grid");
const lensLegend = element<HTMLDivElement>("lens-legend");
const headLegend = element<HTMLDivElement>("head-legend");
const headGridCaption = element<HTMLHeadingElement>("head-grid-caption");
const floatToggle = element<HTMLInputElement>("inside-float");
const floatHeads = element<HTMLDivElement>("float-heads");
const floatHeadGrid = element<HTMLTableElement>("head-grid-float");
const headComparison = element<HTMLParagraphElement>("head-comparison");
const headDetail = element<HTMLDivElement>("head-detail");
const neuronBody = element<HTMLTableElement>("neuron-table").tBodies[0] as HTMLTableSectionElement;

const progress = new Progress("inside-progress");
/** What each of the attribution's steps does, by the steps done before it. */
const ATTRIBUTION_STEPS = ["the forward pass", "layers and heads", "neurons", "positions and the graph", "value neurons", "query neurons"];
/** Look inside's steps: the next token, the lens, then the attribution's. */
const LOOK_STEPS = 2 + ATTRIBUTION_STEPS.length;

/** Heads compared between the quantised and f32 grids, as `glassbox compare-weights` does. */
const COMPARED_HEADS = 10;
/** Comparisons started, so that a stale one's results are dropped. */
let comparisons = 0;

/** The prompt the views show, kept so that an ablation re-runs the same one. */
let shown = "";
let attribution: Attribution | null = null;
let selectedHead: string | null = null;

function renderLens(lens: LogitLens): void {
  const positions = lens.input_tokens.length;
  const head = make("tr");
  head.append(make("th", "layer"), ...lens.input_tokens.map((t) => make("th", showToken(t))));
  const rows = new Map<number, HTMLTableRowElement>();
  for (const cell of lens.cells) {
    let row = rows.get(cell.layer);
    if (row === undefined) {
      row = make("tr");
      row.append(make("th", String(cell.layer)));
      rows.set(cell.layer, row);
    }
    const top = cell.tokens[0];
    const td = make("td", top === undefined ? "" : `${showToken(top.token)} ${top.prob.toFixed(2)}`);
    td.dataset["layer"] = String(cell.layer);
    td.dataset["position"] = String(cell.position);
    if (top !== undefined) {
      td.dataset["token"] = top.token;
      paint(td, heat(top.prob));
      td.title = cell.tokens.map((t) => `${showToken(t.token)} ${t.prob.toFixed(3)}`).join("\n");
    }
    row.append(td);
  }
  lensGrid.dataset["positions"] = String(positions);
  // The last layer on top, where the prediction is read.
  lensGrid.replaceChildren(head, ...[...rows.values()].reverse());
  legend(lensLegend, "Probability of the cell's top token", heat, ["0", "0.5", "1"]);
}

/** The head grids' scale: LPI in nats, signed, up to `max` either way. */
function headScale(max: number): void {
  legend(headLegend, "LPI (nats): what the head adds to log p of the explained token", (t) => diverging(2 * t - 1, 1), [
    `−${max.toFixed(2)}`,
    "0",
    `+${max.toFixed(2)}`,
  ]);
}

function largestHeadScore(result: Attribution): number {
  return Math.max(...result.heads.map((h) => Math.abs(h.score)));
}

/** `LAYER.HEAD` of the `n` heads of highest LPI, highest first (`heads` comes ranked). */
function topHeads(result: Attribution, n: number): string[] {
  return result.heads.slice(0, n).map((h) => `${h.layer}.${h.head}`);
}

/**
 * The grid of head LPIs into `table`, coloured on a scale up to `max`; `interactive` grids open
 * a head's per-position view. Heads in `marked` are drawn in bold.
 */
function renderHeads(table: HTMLTableElement, result: Attribution, max: number, interactive: boolean, marked: string[] = []): void {
  const layers = Math.max(...result.heads.map((h) => h.layer)) + 1;
  const heads = Math.max(...result.heads.map((h) => h.head)) + 1;
  const withPositions = new Set(result.positions.map((p) => `${p.layer}.${p.head}`));
  const score = new Map(result.heads.map((h) => [`${h.layer}.${h.head}`, h.score]));
  const header = make("tr");
  header.append(make("th", "layer \\ head"), ...Array.from({ length: heads }, (_, h) => make("th", String(h))));
  const rows: HTMLTableRowElement[] = [];
  for (let layer = layers - 1; layer >= 0; layer--) {
    const row = make("tr");
    row.append(make("th", String(layer)));
    for (let h = 0; h < heads; h++) {
      const id = `${layer}.${h}`;
      const value = score.get(id) ?? 0;
      const td = make("td", value.toFixed(2));
      td.dataset["head"] = id;
      td.dataset["score"] = String(value);
      paint(td, diverging(value, max));
      td.title = `head ${id}: LPI ${value.toFixed(4)}`;
      if (marked.includes(id)) td.classList.add("top");
      if (interactive) {
        if (withPositions.has(id)) td.classList.add("ranked");
        td.tabIndex = 0;
        td.onclick = () => showHead(id);
        td.onkeydown = (event) => event.key === "Enter" && showHead(id);
      }
      row.append(td);
    }
    rows.push(row);
  }
  table.replaceChildren(header, ...rows);
  headScale(max);
}

function showTarget(result: Attribution, note = ""): void {
  element("target-line").textContent = `Explaining ${showToken(result.target.token)} (log p = ${result.target.logprob.toFixed(3)})${note}`;
}

/**
 * With the toggle on, the head grid again with the weights dequantised to f32, beside the
 * quantised one on one colour scale, both for the f32 run's top token (re-attributing the
 * quantised model when its own top token differs), and the top heads the two share.
 */
async function compareHeads(): Promise<void> {
  const compared = floatToggle.checked && attribution !== null;
  const run = ++comparisons;
  floatHeads.hidden = !compared;
  headComparison.hidden = !compared;
  headGridCaption.hidden = !compared;
  if (!compared || attribution === null) {
    if (attribution !== null) {
      showTarget(attribution);
      renderHeads(headGrid, attribution, largestHeadScore(attribution), true);
    }
    return;
  }
  const prompt = shown;
  // A later look or toggle starts another comparison; this one's results are then dropped.
  const current = () => run === comparisons && prompt === shown;
  floatHeadGrid.dataset["state"] = "working";
  const done = await track(status, "Attributing with f32 weights (the first time loads a second copy of the model)", async () => {
    const gb = model();
    const float = await gb.attribute(prompt, { floatWeights: true });
    let quantised = attribution as Attribution;
    if (current() && quantised.target.id !== float.target.id) {
      say(status, "Attributing the f32 weights' top token with the quantised weights…", "working");
      quantised = await gb.attribute(prompt, { target: float.target.id, graph: true });
    }
    if (!current()) return false;
    if (quantised !== attribution) {
      attribution = quantised;
      renderNeurons(quantised);
      renderGraph(quantised);
    }
    showTarget(quantised, ` — the top token with f32 weights, log p = ${float.target.logprob.toFixed(3)} there`);
    const [topQuantised, topFloat] = [topHeads(quantised, COMPARED_HEADS), topHeads(float, COMPARED_HEADS)];
    const shared = topFloat.filter((h) => topQuantised.includes(h));
    const max = Math.max(largestHeadScore(quantised), largestHeadScore(float));
    renderHeads(headGrid, quantised, max, true, topQuantised);
    renderHeads(floatHeadGrid, float, max, false, topFloat);
    headGrid.dataset["top"] = topQuantised.join(",");
    floatHeadGrid.dataset["top"] = topFloat.join(",");
    headComparison.dataset["shared"] = String(shared.length);
    const only = (heads: string[], other: string[]) => heads.filter((h) => !other.includes(h)).join(", ") || "none";
    headComparison.textContent =
      `Both grids share one colour scale (±${max.toFixed(2)}); each one's top ${COMPARED_HEADS} heads by LPI are in bold. ` +
      `Shared: ${shared.length} of ${COMPARED_HEADS}. Only quantised: ${only(topQuantised, topFloat)}. Only f32: ${only(topFloat, topQuantised)}.`;
    floatHeadGrid.dataset["state"] = "ready";
    return true;
  }, "Done");
  if (done === undefined) floatHeadGrid.dataset["state"] = "error";
}

function showHead(id: string): void {
  if (attribution === null) return;
  selectedHead = id;
  headDetail.hidden = false;
  const [layer, head] = id.split(".").map(Number);
  const ofHead = (p: { layer: number; head: number }) => p.layer === layer && p.head === head;
  let scores = attribution.positions.filter(ofHead);
  const tokens = attribution.input_tokens;
  // Beyond the top heads, the positions the graph scored exactly.
  if (scores.length === 0) scores = (attribution.graph?.edges ?? []).filter(ofHead).map((e) => ({ ...e, token: tokens[e.position] ?? "" }));
  const fromGraph = scores.length > 0 && !attribution.positions.some(ofHead);
  element("head-name").textContent = fromGraph ? `Head ${id} (the positions among the graph's exact edges)` : `Head ${id}`;
  const line = element("head-positions");
  if (scores.length === 0) {
    say(line, `Per-position contributions are computed for the ${new Set(attribution.positions.map((p) => `${p.layer}.${p.head}`)).size} top heads (outlined).`, "empty");
    return;
  }
  const max = Math.max(...scores.map((p) => Math.abs(p.score)));
  line.replaceChildren(
    ...scores
      .sort((a, b) => a.position - b.position)
      .map((p) => {
        const chip = make("span", showToken(p.token), "token");
        chip.dataset["position"] = String(p.position);
        chip.dataset["score"] = String(p.score);
        paint(chip, diverging(p.score, max));
        chip.title = `position ${p.position}: c = ${p.score.toFixed(4)}`;
        return chip;
      }),
  );
  line.dataset["state"] = "ready";
}

function renderNeurons(result: Attribution): void {
  neuronBody.replaceChildren(
    ...result.neurons.slice(0, 20).map((n) => {
      const id = `${n.layer}.${n.neuron}`;
      const row = make("tr");
      row.dataset["neuron"] = id;
      const ablate = make("button", "Ablate");
      ablate.type = "button";
      ablate.onclick = () => void ablateAndCompare({ neurons: [id] });
      const cell = make("td");
      cell.append(ablate);
      row.append(make("td", id), make("td", n.score.toFixed(4)), make("td", n.exact ? "exact" : "first order"), cell);
      return row;
    }),
  );
}

async function ablateAndCompare(ablation: { heads?: string[]; neurons?: string[] }): Promise<void> {
  await track(status, "Ablating and re-running", async () => {
    const gb = model();
    await gb.ablate(ablation);
    const body = ablatedTokens.tBodies[0] ?? ablatedTokens.createTBody();
    tokenRows(body, await gb.logits(shown, { topK: 10 }));
    const { heads, neurons } = gb.ablations;
    element("ablation-list").textContent = [...heads.map((h) => `head ${h}`), ...neurons.map((n) => `neuron ${n}`)].join(", ");
    ablationBox.hidden = false;
    ablatedTokens.dataset["state"] = "ready";
  }, "Ablated");
}

async function look(): Promise<void> {
  const prompt = promptInput.value;
  shown = prompt;
  writeViewState({ panel: "inside-panel", prompt });
  for (const view of [nextTokens, lensGrid, headGrid]) view.dataset["state"] = "working";
  markGraph("working");
  const signal = progress.start("Reading the next token");
  const done = await track(status, "Looking inside", async () => {
    const gb = model();
    const body = nextTokens.tBodies[0] ?? nextTokens.createTBody();
    tokenRows(body, await gb.logits(prompt, { topK: 10 }));
    nextTokens.dataset["state"] = "ready";
    signal.throwIfAborted();
    progress.show("Running the logit lens, step", 1, LOOK_STEPS);
    renderLens(await gb.lens(prompt, { topK: 3 }));
    lensGrid.dataset["state"] = "ready";
    signal.throwIfAborted();
    progress.show(`Attributing ${ATTRIBUTION_STEPS[0]}, step`, 2, LOOK_STEPS);
    const onProgress = (done: number) => {
      if (progress.current(signal)) progress.show(`Attributing ${ATTRIBUTION_STEPS[done] ?? "done"}, step`, 2 + done, LOOK_STEPS);
    };
    const attributed = await gb.attribute(prompt, { graph: true, signal, onProgress });
    // Where the worker cannot be stopped (a page without cross-origin isolation), the result is dropped.
    signal.throwIfAborted();
    attribution = attributed;
    showTarget(attribution);
    renderHeads(headGrid, attribution, largestHeadScore(attribution), true);
    renderNeurons(attribution);
    renderGraph(attribution);
    headGrid.dataset["state"] = "ready";
    headDetail.hidden = true;
    return true;
  }, "Done", signal);
  const own = progress.finish(signal);
  if (done === undefined) {
    if (!own) return;
    const ended = signal.aborted ? "" : "error";
    for (const view of [nextTokens, lensGrid, headGrid]) if (view.dataset["state"] === "working") view.dataset["state"] = ended;
    markGraph(ended);
    return;
  }
  if (floatToggle.checked) await compareHeads();
}

/** A fragment naming this panel and a prompt opens on that prompt, looked at once a model is in. */
export function restoreInsideView(): void {
  const { panel, prompt } = readViewState();
  if (panel !== "inside-panel" || prompt === undefined) return;
  promptInput.value = prompt;
  if (modelLoaded()) void look();
}

export function setUpInsidePanel(): void {
  addExports(lensGrid, "logit-lens");
  addExports(headGrid, "head-lpi");
  addExports(floatHeadGrid, "head-lpi-f32");
  setUpGraph((id) => {
    showHead(id);
    headDetail.scrollIntoView({ block: "nearest" });
  });
  floatToggle.addEventListener("change", () => void compareHeads());
  element<HTMLFormElement>("inside-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void look();
  });
  element("ablate-head").addEventListener("click", () => {
    if (selectedHead !== null) void ablateAndCompare({ heads: [selectedHead] });
  });
  element("clear-ablations").addEventListener("click", () => {
    void track(status, "Clearing ablations", async () => {
      await model().clearAblations();
      ablationBox.hidden = true;
    });
  });
}
