/**
 * The view in the URL's fragment, `#PANEL&model=URL&prompt=TEXT`, so that a view can be
 * bookmarked and shared without a server: a fragment is never sent in a request. A model URL is
 * kept without its query, fragment or credentials, so a signed URL's secrets stay out of links.
 */

import { shownUrl } from "../../pkg/src/source.js";

export interface ViewState {
  panel?: string | undefined;
  model?: string | undefined;
  prompt?: string | undefined;
}

export function readViewState(): ViewState {
  const [panel, ...rest] = location.hash.replace(/^#/, "").split("&");
  const params = new URLSearchParams(rest.join("&"));
  return { panel: panel || undefined, model: params.get("model") ?? undefined, prompt: params.get("prompt") ?? undefined };
}

/** Changes the fields of the fragment that `change` names (undefined removes one). */
export function writeViewState(change: ViewState): void {
  const state = { ...readViewState(), ...change };
  const params = new URLSearchParams();
  if (state.model !== undefined) params.set("model", shownUrl(state.model));
  if (state.prompt !== undefined) params.set("prompt", state.prompt);
  // The panel's slot is written even when empty, so that a parameter is never read as a panel.
  const fragment = params.size === 0 ? state.panel ?? "" : `${state.panel ?? ""}&${params.toString()}`;
  history.replaceState(null, "", fragment === "" ? location.pathname + location.search : `#${fragment}`);
}

/**
 * Scrolls to the fragment's panel, and keeps the navigation's links from dropping the rest of it;
 * a link moves the focus to its panel, and marks itself as the current one.
 */
export function followPanels(): void {
  const links = [...document.querySelectorAll<HTMLAnchorElement>('nav a[href^="#"]')];
  const mark = (panel: string) => {
    for (const link of links) {
      if (link.hash.slice(1) === panel) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  };
  const start = readViewState().panel ?? "";
  document.getElementById(start)?.scrollIntoView();
  mark(start);
  for (const link of links) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const panel = link.hash.slice(1);
      writeViewState({ panel });
      mark(panel);
      const section = document.getElementById(panel);
      section?.scrollIntoView();
      section?.focus({ preventScroll: true });
    });
  }
}
