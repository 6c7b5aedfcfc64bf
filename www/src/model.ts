/** The Model panel: load from a URL or a file, progress, the card, the backend, the cache. */

import { Glassbox, type LoadProgress } from "../../pkg/src/index.js";
import { shownUrl } from "../../pkg/src/source.js";
import { progressText } from "../../pkg/src/view.js";
import { renderCard } from "./card.js";
import { describe, element, make, say, track } from "./dom.js";
import { readViewState, writeViewState } from "./view-state.js";

/** Served beside the page by `make demo`; `?model=` or the fragment's `model=` picks another. */
const DEFAULT_MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

const progressBar = element<HTMLProgressElement>("load-progress");
const status = element<HTMLParagraphElement>("load-status");
const card = element<HTMLElement>("model-card");
const tensorTypes = element<HTMLTableElement>("tensor-types");
const urlInput = element<HTMLInputElement>("model-url");
const backendChoice = element<HTMLSelectElement>("backend");
const badge = element<HTMLSpanElement>("backend-badge");
const reason = element<HTMLSpanElement>("backend-reason");

let current: Glassbox | null = null;

/** The model the other panels use. */
export function model(): Glassbox {
  if (current === null) throw new Error("load a model in the Model panel first");
  return current;
}

export function modelLoaded(): boolean {
  return current !== null;
}

/** The backend the user chose, for every model the page loads. */
export function backend(): "auto" | "webgpu" | "cpu" {
  return backendChoice.value as "auto" | "webgpu" | "cpu";
}

function showProgress(bar: HTMLProgressElement, line: HTMLElement): (p: LoadProgress) => void {
  return (progress) => {
    bar.hidden = false;
    if (progress.total === null) bar.removeAttribute("value");
    else bar.value = progress.total === 0 ? 1 : progress.loaded / progress.total;
    say(line, progressText(progress), "working");
  };
}

function showBackend(gb: Glassbox): void {
  const cpu = gb.threads > 1 ? `CPU (wasm, ${gb.threads} threads)` : "CPU (wasm)";
  say(badge, gb.backend === "webgpu" ? "WebGPU" : cpu, gb.backend);
  badge.title = gb.device;
  reason.textContent = gb.fallbackReason ?? "";
}

/** Asks, beside the progress bar, whether to keep a downloaded model; the load goes on meanwhile. */
function askToCache({ name, bytes }: { name: string; bytes: number }): Promise<boolean> {
  const box = element<HTMLParagraphElement>("cache-question");
  element("cache-question-text").textContent = `Keep a copy of ${name} (${(bytes / 1e6).toFixed(1)} MB) on this device, so it loads without downloading next time?`;
  box.hidden = false;
  return new Promise((resolve) => {
    const answer = (yes: boolean) => () => {
      box.hidden = true;
      resolve(yes);
    };
    element("cache-yes").onclick = answer(true);
    element("cache-no").onclick = answer(false);
  });
}

async function load(label: string, source: string | File): Promise<void> {
  card.dataset["state"] = "loading";
  const loaded = await track(status, `Loading ${label}`, () =>
    Glassbox.load(source, { backend: backend(), onProgress: showProgress(progressBar, status), askToCache, onCached: () => void listCache() }),
  );
  progressBar.hidden = true;
  if (loaded === undefined) {
    card.dataset["state"] = "error";
    return;
  }
  current?.dispose();
  current = loaded;
  writeViewState({ model: typeof source === "string" ? source : undefined });
  renderCard(card, tensorTypes, loaded.info());
  showBackend(loaded);
  say(status, `Loaded ${label}`, "ready");
  void listCache();
}

async function listCache(): Promise<void> {
  const line = element("cache-status");
  const body = element<HTMLTableElement>("cache-list").tBodies[0];
  if (body === undefined) return;
  try {
    const [entries, store] = await Promise.all([Glassbox.cache.list(), Glassbox.cache.store()]);
    const total = entries.reduce((sum, e) => sum + e.bytes, 0);
    say(line, `${entries.length} model(s), ${(total / 1e6).toFixed(1)} MB, in ${store === "opfs" ? "the Origin Private File System" : "IndexedDB"}`, "ready");
    body.replaceChildren(
      ...entries.map((entry) => {
        const row = make("tr");
        const remove = make("button", "Delete");
        remove.type = "button";
        remove.onclick = () => void Glassbox.cache.delete(entry.key).then(listCache);
        const cell = make("td");
        cell.append(remove);
        row.append(make("td", entry.name), make("td", `${(entry.bytes / 1e6).toFixed(1)} MB`), cell);
        return row;
      }),
    );
  } catch (e) {
    say(line, describe(e), "error");
  }
}

export function setUpModelPanel(): Promise<void> {
  element<HTMLFormElement>("url-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = urlInput.value.trim();
    void load(shownUrl(url), url);
  });
  element<HTMLInputElement>("model-file").addEventListener("change", (event) => {
    const file = (event.target as HTMLInputElement).files?.[0];
    if (file !== undefined) void load(file.name, file);
  });
  void listCache();
  const query = new URLSearchParams(location.search);
  // `?model=` with no value opens the page with nothing loaded.
  const url = query.get("model") ?? readViewState().model ?? DEFAULT_MODEL;
  urlInput.value = url || DEFAULT_MODEL;
  const choice = query.get("backend");
  if (choice === "cpu" || choice === "webgpu" || choice === "auto") backendChoice.value = choice;
  // A link can carry any ?model=; only this origin's models load without a click.
  const sameOrigin = new URL(url, location.href).origin === location.origin;
  return url !== "" && sameOrigin ? load(shownUrl(url), url) : Promise.resolve();
}
