/**
 * The Image panel: a LLaVA model, an example scene from the fixture's generator or an uploaded
 * image, the answer, the patch heatmap over the image (LPI, attention mean, occlusion) and the
 * visual logit lens of the patch under the pointer.
 */

import { drawScene, Glassbox, type GlassboxVision, type HeatmapMethod, type VisualLens } from "../../pkg/src/index.js";
import { paintHeatmap } from "../../pkg/src/view.js";
import { element, make, say, showToken, track } from "./dom.js";
import { backend } from "./model.js";

const status = element<HTMLParagraphElement>("image-status");
const answerLine = element<HTMLParagraphElement>("image-answer");
const view = element<HTMLImageElement>("image-view");
const overlay = element<HTMLCanvasElement>("heatmap-overlay");
const promptInput = element<HTMLTextAreaElement>("image-prompt");
const opacity = element<HTMLInputElement>("opacity");
const lensBody = element<HTMLTableElement>("patch-lens").tBodies[0] as HTMLTableSectionElement;

/** The fixture's scenes of stream 2, which its training (stream 1) never saw. */
const EXAMPLE_SEED = 2;

let vision: Promise<GlassboxVision> | null = null;
let image: Blob | null = null;
let lens: VisualLens | null = null;

function method(): HeatmapMethod {
  return (document.querySelector<HTMLInputElement>("input[name=method]:checked")?.value ?? "lpi") as HeatmapMethod;
}

function loadVision(): Promise<GlassboxVision> {
  const mmproj = element<HTMLInputElement>("mmproj-url").value.trim();
  const lm = element<HTMLInputElement>("vision-lm-url").value.trim();
  vision = Glassbox.loadVision(mmproj, lm, { backend: backend(), cache: "never" });
  vision.catch(() => {
    vision = null;
  });
  return vision;
}

function show(blob: Blob): void {
  image = blob;
  if (view.src.startsWith("blob:")) URL.revokeObjectURL(view.src);
  view.src = URL.createObjectURL(blob);
  overlay.getContext("2d")?.clearRect(0, 0, overlay.width, overlay.height);
  answerLine.textContent = "";
  lens = null;
  lensBody.replaceChildren();
}

async function ask(): Promise<void> {
  await track(status, "Computing the heatmap", async () => {
    if (image === null) throw new Error("draw an example or choose an image first");
    const model = await (vision ?? loadVision());
    const prompt = promptInput.value;
    const chosen = method();
    const result = await model.heatmap(image, prompt, { method: chosen });
    say(answerLine, `Answer: ${showToken(result.target.token)} (p = ${result.target.prob.toFixed(4)})`, "ready");
    answerLine.dataset["token"] = result.target.token;
    answerLine.dataset["prob"] = String(result.target.prob);
    paintHeatmap(overlay, result.heatmap.cells, result.heatmap.grid, 1);
    overlay.style.opacity = opacity.value;
    overlay.dataset["method"] = chosen;
    overlay.dataset["cells"] = JSON.stringify(Array.from(result.heatmap.cells));
    overlay.dataset["state"] = "ready";
    say(status, "Reading the image patches through the logit lens…", "working");
    lens = await model.lens(image, prompt, { topK: 3 });
  }, "Hover a patch to read it through the logit lens.");
}

/** The lens rows of the patch under the pointer, last layer first. */
function showPatch(event: MouseEvent): void {
  if (lens === null) return;
  const box = overlay.getBoundingClientRect();
  const col = Math.floor(((event.clientX - box.left) / box.width) * lens.grid);
  const row = Math.floor(((event.clientY - box.top) / box.height) * lens.grid);
  if (col < 0 || row < 0 || col >= lens.grid || row >= lens.grid) return;
  const cells = lens.cells.filter((c) => c.row === row && c.col === col).sort((a, b) => b.layer - a.layer);
  lensBody.dataset["patch"] = String(row * lens.grid + col);
  lensBody.replaceChildren(
    ...cells.map((cell) => {
      const tr = make("tr");
      tr.dataset["layer"] = String(cell.layer);
      tr.dataset["token"] = cell.tokens[0]?.token ?? "";
      tr.append(make("th", `layer ${cell.layer}`), make("td", cell.tokens.map((t) => `${showToken(t.token)} ${t.prob.toFixed(3)}`).join("  ")));
      return tr;
    }),
  );
}

export function setUpImagePanel(): void {
  element<HTMLFormElement>("vision-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void track(status, "Loading the LLaVA model", loadVision, "Loaded");
  });
  element("draw-scene").addEventListener("click", () => {
    void track(status, "Drawing", async () => {
      const index = Number(element<HTMLInputElement>("scene-index").value);
      const scene = await drawScene(EXAMPLE_SEED, index);
      show(scene.png);
      promptInput.value = scene.prompt;
      view.dataset["answer"] = scene.answer;
    });
  });
  element<HTMLInputElement>("image-file").addEventListener("change", (event) => {
    const file = (event.target as HTMLInputElement).files?.[0];
    if (file !== undefined) {
      show(file);
      delete view.dataset["answer"];
    }
  });
  element<HTMLFormElement>("question-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void ask();
  });
  for (const radio of document.querySelectorAll<HTMLInputElement>("input[name=method]")) {
    radio.addEventListener("change", () => image !== null && answerLine.textContent !== "" && void ask());
  }
  opacity.addEventListener("input", () => {
    overlay.style.opacity = opacity.value;
  });
  overlay.addEventListener("mousemove", showPatch);
}
