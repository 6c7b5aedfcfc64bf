import init, { inspectGguf, WebGpu } from "../../pkg/glassbox.js";
import { renderCard } from "./card.js";
import { fetchModel, readModelFile, type Progress } from "./load.js";
import type { ModelSummary } from "./types.js";

/** Served beside the page by `make demo`; `?model=` picks another. */
const DEFAULT_MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`page is missing #${id}`);
  return found as T;
}

const progressBar = element<HTMLProgressElement>("load-progress");
const status = element<HTMLParagraphElement>("load-status");
const card = element<HTMLElement>("model-card");
const tensorTypes = element<HTMLTableElement>("tensor-types");
const urlInput = element<HTMLInputElement>("model-url");

function say(target: HTMLElement, text: string, state: string): void {
  target.textContent = text;
  target.dataset["state"] = state;
}

const showProgress: Progress = (loaded, total) => {
  progressBar.hidden = false;
  if (total === null) {
    progressBar.removeAttribute("value");
    say(status, `Loading… ${(loaded / 1e6).toFixed(1)} MB`, "loading");
  } else {
    progressBar.value = total === 0 ? 1 : loaded / total;
    say(status, `Loading… ${(loaded / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`, "loading");
  }
};

async function show(label: string, read: () => Promise<Uint8Array>): Promise<void> {
  card.dataset["state"] = "loading";
  try {
    const bytes = await read();
    const summary = inspectGguf(bytes, bytes.byteLength) as ModelSummary;
    renderCard(card, tensorTypes, summary);
    say(status, `Loaded ${label}`, "ready");
  } catch (e) {
    card.dataset["state"] = "error";
    say(status, e instanceof Error ? `${e.name}: ${e.message}` : String(e), "error");
  }
}

function loadUrl(url: string): Promise<void> {
  return show(url, () => fetchModel(url, showProgress));
}

/** Runs one WGSL kernel and compares it with the same arithmetic done here. */
async function checkWebGpu(): Promise<void> {
  const target = element<HTMLParagraphElement>("webgpu-status");
  try {
    const gpu = await WebGpu.open();
    const x = Float32Array.from({ length: 256 }, (_, i) => i * 0.5);
    const y = Float32Array.from({ length: 256 }, (_, i) => 1 - i);
    const out = await gpu.saxpy(2, x, y);
    const bad = x.findIndex((xi, i) => out[i] !== 2 * xi + (y[i] ?? NaN));
    if (bad === -1) {
      say(target, `WebGPU ready: ${gpu.description}`, "ok");
    } else {
      say(target, `WebGPU gave a wrong result at element ${bad}; the CPU backend will be used`, "error");
    }
  } catch (e) {
    say(target, `WebGPU unavailable (${e instanceof Error ? e.message : String(e)}); the CPU backend will be used`, "error");
  }
}

async function main(): Promise<void> {
  await init({ module_or_path: "glassbox_bg.wasm" });
  element<HTMLFormElement>("url-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void loadUrl(urlInput.value.trim());
  });
  element<HTMLInputElement>("model-file").addEventListener("change", (event) => {
    const file = (event.target as HTMLInputElement).files?.[0];
    if (file !== undefined) void show(file.name, () => readModelFile(file, showProgress));
  });
  const url = new URLSearchParams(location.search).get("model") ?? DEFAULT_MODEL;
  urlInput.value = url;
  // A link can carry any ?model=; only this origin's models load without a click.
  const sameOrigin = new URL(url, location.href).origin === location.origin;
  await Promise.all([sameOrigin ? loadUrl(url) : Promise.resolve(), checkWebGpu()]);
}

void main();
