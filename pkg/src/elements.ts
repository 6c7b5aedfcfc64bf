/**
 * Custom elements: `<glassbox-heatmap>` and `<glassbox-claim-check>`. One import registers
 * both; no build step is needed. Everything from the model or the user is shown as text.
 *
 * ```html
 * <script type="module" src="node_modules/glassbox/elements.js"></script>
 * <glassbox-heatmap mmproj="mmproj.gguf" model="lm.gguf" image="scene.png"
 *   prompt="USER: <image>\nWhat is the color of the circle?\nASSISTANT:"></glassbox-heatmap>
 * <glassbox-claim-check model="SmolLM2-135M-Instruct.Q4_1.gguf" task="fmd"></glassbox-claim-check>
 * ```
 */
import { Glassbox, GlassboxVision, type HeatmapMethod } from "./index.js";
import { describe, paintHeatmap, progressText, say } from "./view.js";

const STYLE = `
:host { display: inline-block; font: 14px system-ui, sans-serif; }
.status[data-state=error] { color: #b00020; }
.frame { position: relative; display: inline-block; }
.frame img, .frame canvas { display: block; width: var(--glassbox-size, 288px); height: var(--glassbox-size, 288px); image-rendering: pixelated; }
.frame canvas { position: absolute; inset: 0; }
textarea { width: 100%; min-height: 3em; box-sizing: border-box; }
.bar { display: flex; gap: .5em; align-items: center; }
.bar span:first-child { min-width: 6em; }
meter { flex: 1; }
.explanation { white-space: pre-wrap; }
`;

/** `<glassbox-heatmap mmproj model image prompt [method] [opacity] [backend]>`. */
export class GlassboxHeatmapElement extends HTMLElement {
  static observedAttributes = ["image", "prompt", "method", "opacity"];
  #root = this.attachShadow({ mode: "open" });
  #status = document.createElement("p");
  #image = document.createElement("img");
  #canvas = document.createElement("canvas");
  #answer = document.createElement("p");
  #vision: Promise<GlassboxVision> | null = null;
  #run = 0;

  constructor() {
    super();
    const style = document.createElement("style");
    style.textContent = STYLE;
    const frame = document.createElement("div");
    frame.className = "frame";
    frame.append(this.#image, this.#canvas);
    this.#status.className = "status";
    this.#status.setAttribute("part", "status");
    this.#answer.setAttribute("part", "answer");
    this.#image.alt = "";
    this.#root.append(style, frame, this.#answer, this.#status);
  }

  connectedCallback(): void {
    void this.#render();
  }

  attributeChangedCallback(name: string): void {
    if (!this.isConnected) return;
    if (name === "opacity") this.#canvas.style.opacity = this.getAttribute("opacity") ?? "1";
    else void this.#render();
  }

  async #render(): Promise<void> {
    const [mmproj, model, image, prompt] = ["mmproj", "model", "image", "prompt"].map((a) => this.getAttribute(a));
    if (!mmproj || !model || !image || !prompt) {
      say(this.#status, "Set the mmproj, model, image and prompt attributes.", "error");
      return;
    }
    const run = ++this.#run;
    try {
      this.#vision ??= Glassbox.loadVision(mmproj, model, {
        backend: (this.getAttribute("backend") as "auto" | "cpu" | "webgpu" | null) ?? "auto",
        cache: "never",
        onProgress: (p) => say(this.#status, progressText(p), "loading"),
      });
      const vision = await this.#vision;
      say(this.#status, "Computing the heatmap…", "working");
      const method = (this.getAttribute("method") ?? "lpi") as HeatmapMethod;
      const imageUrl = new URL(image, document.baseURI).href;
      const result = await vision.heatmap(imageUrl, prompt.replaceAll("\\n", "\n"), { method });
      if (run !== this.#run) return;
      this.#image.src = imageUrl;
      paintHeatmap(this.#canvas, result.heatmap.cells, result.heatmap.grid, 1);
      this.#canvas.style.opacity = this.getAttribute("opacity") ?? "0.6";
      say(this.#answer, `${result.target.token.trim()} (p = ${result.target.prob.toFixed(3)})`, "ready");
      say(this.#status, `${method} heatmap`, "ready");
      this.dispatchEvent(new CustomEvent("glassbox-result", { detail: result }));
    } catch (e) {
      if (run === this.#run) say(this.#status, describe(e), "error");
      this.#vision = null;
    }
  }
}

/** `<glassbox-claim-check model [task] [explain] [backend]>`: a claim and its context in, a verdict out. */
export class GlassboxClaimCheckElement extends HTMLElement {
  #root = this.attachShadow({ mode: "open" });
  #claim = document.createElement("textarea");
  #context = document.createElement("textarea");
  #button = document.createElement("button");
  #status = document.createElement("p");
  #verdict = document.createElement("p");
  #bars = document.createElement("div");
  #explanation = document.createElement("p");
  #model: Promise<Glassbox> | null = null;

  constructor() {
    super();
    const style = document.createElement("style");
    style.textContent = STYLE;
    this.#claim.placeholder = "A claim to check";
    this.#claim.setAttribute("aria-label", "claim");
    this.#context.placeholder = "Context (optional)";
    this.#context.setAttribute("aria-label", "context");
    this.#button.textContent = "Check";
    this.#button.addEventListener("click", () => void this.check());
    this.#status.className = "status";
    this.#verdict.setAttribute("part", "verdict");
    this.#explanation.className = "explanation";
    this.#root.append(style, this.#claim, this.#context, this.#button, this.#status, this.#verdict, this.#bars, this.#explanation);
  }

  /** Checks the claim in the form; also called by the button. */
  async check(): Promise<void> {
    const model = this.getAttribute("model");
    if (!model) {
      say(this.#status, "Set the model attribute.", "error");
      return;
    }
    this.#button.disabled = true;
    this.#explanation.textContent = "";
    try {
      this.#model ??= Glassbox.load(model, {
        backend: (this.getAttribute("backend") as "auto" | "cpu" | "webgpu" | null) ?? "auto",
        cache: "never",
        onProgress: (p) => say(this.#status, progressText(p), "loading"),
      });
      const gb = await this.#model;
      say(this.#status, "Checking…", "working");
      const input: Record<string, string> = { claim: this.#claim.value, text: this.#claim.value, context: this.#context.value };
      const result = await gb.classify(this.getAttribute("task") ?? "fmd", input, {
        explain: this.hasAttribute("explain"),
        onText: (piece) => this.#explanation.append(piece),
      });
      say(this.#verdict, result.label ?? "no verdict", "ready");
      this.#bars.replaceChildren(
        ...Object.entries(result.probs).map(([label, p]) => {
          const row = document.createElement("div");
          row.className = "bar";
          const name = document.createElement("span");
          name.textContent = label;
          const meter = document.createElement("meter");
          meter.value = p;
          const value = document.createElement("span");
          value.textContent = p.toFixed(3);
          row.append(name, meter, value);
          return row;
        }),
      );
      if (result.explanation !== undefined) this.#explanation.textContent = result.explanation;
      say(this.#status, "", "ready");
      this.dispatchEvent(new CustomEvent("glassbox-result", { detail: result }));
    } catch (e) {
      say(this.#status, describe(e), "error");
      this.#model = null;
    } finally {
      this.#button.disabled = false;
    }
  }
}

if (!customElements.get("glassbox-heatmap")) customElements.define("glassbox-heatmap", GlassboxHeatmapElement);
if (!customElements.get("glassbox-claim-check")) customElements.define("glassbox-claim-check", GlassboxClaimCheckElement);
