/**
 * The Patch & steer panel: activation patching between a clean and a corrupted prompt as a
 * layers × positions heatmap, a steering vector with a coefficient slider that regenerates a
 * continuation, and named activations recorded into a safetensors download.
 */

import type { PatchingGrid, PatchMethod, PatchSite } from "../../pkg/src/index.js";
import { diverging, element, legend as drawLegend, make, paint, Progress, say, showToken, tokenRows, track } from "./dom.js";
import { addExports } from "./export.js";
import { model } from "./model.js";

const patchStatus = element<HTMLParagraphElement>("patch-status");
const grid = element<HTMLTableElement>("patch-grid");
const legend = element<HTMLParagraphElement>("patch-legend");
const steerStatus = element<HTMLParagraphElement>("steer-status");
const steerText = element<HTMLParagraphElement>("steer-text");
const coefficient = element<HTMLInputElement>("steer-coefficient");
const steerNext = element<HTMLTableElement>("steer-next").tBodies[0] as HTMLTableSectionElement;
const recordStatus = element<HTMLParagraphElement>("record-status");

const SITE_NAMES: Record<PatchingGrid["site"], string> = {
  resid_pre: "residual stream entering the layer",
  attn_out: "attention output",
  mlp_out: "MLP output",
  head: "head output (every position)",
};

const estimate = element<HTMLTableElement>("patch-estimate");
const estimateLegend = element<HTMLParagraphElement>("patch-estimate-legend");
const patchScale = element<HTMLDivElement>("patch-scale");

/** One grid of `result` (the exact one or its first-order estimate) into `table`; none empties it. */
function renderGrid(table: HTMLTableElement, cells: number[][] | undefined, result: PatchingGrid): void {
  const thead = table.tHead ?? table.createTHead();
  const body = table.tBodies[0] ?? table.createTBody();
  if (cells === undefined) {
    thead.replaceChildren();
    body.replaceChildren();
    table.dataset["state"] = "";
    return;
  }
  const columns = result.columns === "heads" ? cells[0]?.map((_, h) => `head ${h}`) ?? [] : result.tokens.map(showToken);
  const head = make("tr");
  head.append(make("th", "layer"), ...columns.map((label) => make("th", label, "token")));
  const rows = cells.map((row, layer) => {
    const tr = make("tr");
    tr.dataset["layer"] = String(layer);
    tr.append(
      make("th", String(layer)),
      ...row.map((value, position) => {
        const cell = make("td", "", "cell");
        cell.dataset["value"] = String(value);
        paint(cell, diverging(value, 1));
        cell.title = `layer ${layer}, ${result.columns === "heads" ? "" : "position "}${columns[position] ?? ""}: ${value.toFixed(3)} of the clean run's metric restored`;
        return cell;
      }),
    );
    return tr;
  });
  thead.replaceChildren(head);
  body.replaceChildren(...rows);
  table.dataset["state"] = "ready";
}

function renderResult(result: PatchingGrid): void {
  renderGrid(grid, result.grid, result);
  renderGrid(estimate, result.attribution_grid, result);
  const scale =
    `as the fraction of logit(${result.answer}) − logit(${result.wrong}) restored: ` +
    `clean ${result.clean_metric.toFixed(3)} is 1 (orange), corrupted ${result.corrupt_metric.toFixed(3)} is 0 (white), below 0 is blue.`;
  const what = `the clean run's ${SITE_NAMES[result.site]} at that layer and ${result.columns === "heads" ? "head" : "position"}`;
  legend.textContent = result.grid === undefined ? "" : `Each cell: the corrupted run with ${what}, ${scale}`;
  drawLegend(patchScale, "Share of the clean run's metric restored", (t) => diverging(2 * t - 1, 1), ["−1", "0", "1"]);
  estimateLegend.textContent =
    result.attribution_grid === undefined
      ? ""
      : `First order (attribution patching, one backward pass): each cell estimates patching ${what} from the corrupted run's gradient, ${scale}` +
        (result.correlation === undefined ? "" : ` Correlation with the exact grid: ${result.correlation.toFixed(3)}.`);
}

const progress = new Progress("patch-progress");

function setUpPatching(): void {
  element<HTMLFormElement>("patch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    grid.dataset["state"] = "working";
    estimate.dataset["state"] = "working";
    const signal = progress.start("Patching");
    const value = (id: string) => element<HTMLInputElement>(id).value;
    void track(patchStatus, "Patching every layer and position", async () => {
      const result = await model().patch(value("patch-clean"), value("patch-corrupt"), value("patch-answer"), value("patch-wrong"), {
        site: element<HTMLSelectElement>("patch-site").value as PatchSite,
        method: element<HTMLSelectElement>("patch-method").value as PatchMethod,
        signal,
        onProgress: (done, total) => progress.current(signal) && progress.show("Patching, forward passes", done, total),
      });
      signal.throwIfAborted();
      renderResult(result);
    }, "Hover a cell for its value.", signal).finally(() => {
      if (progress.finish(signal)) for (const table of [grid, estimate]) if (table.dataset["state"] === "working") table.dataset["state"] = "";
    });
  });
}

let vector: { bytes: Uint8Array; layer: number } | null = null;

/** The next tokens and the continuation with the current vector at the slider's coefficient (none without a vector). */
async function continuation(): Promise<void> {
  const gb = model();
  await gb.clearSteering();
  const scale = Number(coefficient.value);
  element<HTMLOutputElement>("steer-coefficient-value").value = scale.toFixed(1);
  if (vector !== null && scale !== 0) await gb.steer(vector.bytes, { layer: vector.layer, coefficient: scale });
  const prompt = element<HTMLInputElement>("steer-prompt").value;
  tokenRows(steerNext, await gb.logits(prompt, { topK: 5 }));
  const generation = await gb.generate(prompt, { maxTokens: 24 });
  steerText.textContent = generation.text;
  steerText.dataset["coefficient"] = String(scale);
}

function setUpSteering(): void {
  const lines = (id: string) => element<HTMLTextAreaElement>(id).value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  element<HTMLFormElement>("steer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void track(steerStatus, "Taking the steering vector", async () => {
      const layer = Number(element<HTMLInputElement>("steer-layer").value);
      vector = { bytes: await model().steeringVector(lines("steer-positive"), lines("steer-negative"), layer), layer };
      await continuation();
    }, "Move the slider to steer the continuation.");
  });
  coefficient.addEventListener("change", () => {
    void track(steerStatus, "Continuing with the steering", continuation, "Steering applies to every panel until cleared.");
  });
  element<HTMLButtonElement>("steer-clear").addEventListener("click", () => {
    coefficient.value = "0";
    void track(steerStatus, "Clearing the steering", continuation, "No steering.");
  });
}

function setUpRecording(): void {
  element<HTMLFormElement>("record-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void track(recordStatus, "Recording", async () => {
      const hooks = element<HTMLInputElement>("record-hooks").value;
      const positions = element<HTMLSelectElement>("record-positions").value;
      const bytes = await model().recordSafetensors(element<HTMLInputElement>("record-prompt").value, { hooks, positions: positions === "last" ? "last" : "all" });
      // A download made in the page: a blob: URL, no request leaves it.
      const link = element<HTMLAnchorElement>("record-download");
      if (link.href !== "") URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
      link.hidden = false;
      link.dataset["bytes"] = String(bytes.length);
      link.click();
      return bytes.length;
    }).then((bytes) => {
      if (bytes !== undefined) say(recordStatus, `${bytes} bytes, the file glassbox record writes.`, "ready");
    });
  });
}

export function setUpPatchPanel(): void {
  addExports(grid, "patching");
  addExports(estimate, "patching-first-order");
  setUpPatching();
  setUpSteering();
  setUpRecording();
}
