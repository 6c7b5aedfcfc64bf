/** Small DOM helpers. Text from models and users only ever goes in through `textContent`. */
import { describe, say } from "../../pkg/src/view.js";

export { describe, say };

export function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`page is missing #${id}`);
  return found as T;
}

/** A new element with `text` as its text. */
export function make<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const made = document.createElement(tag);
  made.textContent = text;
  if (className !== "") made.className = className;
  return made;
}

/**
 * Runs `work`, saying `label…` with the seconds spent while it runs, and its error readably if
 * it fails. Resolves to undefined on failure.
 */
export async function track<T>(status: HTMLElement, label: string, work: () => Promise<T>, done = ""): Promise<T | undefined> {
  const start = performance.now();
  say(status, `${label}…`, "working");
  const timer = setInterval(() => say(status, `${label}… ${((performance.now() - start) / 1000).toFixed(0)} s`, "working"), 1000);
  try {
    const value = await work();
    say(status, done, "ready");
    return value;
  } catch (e) {
    say(status, describe(e), "error");
    return undefined;
  } finally {
    clearInterval(timer);
  }
}

/** A token as text, with its leading space and newlines made visible. */
export function showToken(token: string): string {
  return token.replaceAll("\n", "⏎").replaceAll(" ", "·");
}

/** White to orange for a value in [0, 1]. */
export function heat(value: number): string {
  const v = Math.min(1, Math.max(0, value));
  return `rgb(255 ${Math.round(255 - 120 * v)} ${Math.round(255 - 230 * v)})`;
}

/** Blue for negative, white for zero, red for positive, scaled by `max`. */
export function diverging(value: number, max: number): string {
  const v = max > 0 ? Math.min(1, Math.abs(value) / max) : 0;
  const fade = Math.round(255 - 200 * v);
  return value >= 0 ? `rgb(255 ${fade} ${fade})` : `rgb(${fade} ${fade} 255)`;
}

/** Rows of `label | bar | value` for a set of probabilities or scores. */
export function bars(rows: [string, number][], max = 1): HTMLElement[] {
  return rows.map(([label, value]) => {
    const row = make("div", "", "bar");
    const meter = make("meter");
    meter.max = max;
    meter.value = Math.max(0, value);
    row.append(make("span", label, "label"), meter, make("span", value.toFixed(3), "value"));
    row.dataset["label"] = label;
    row.dataset["value"] = String(value);
    return row;
  });
}

/** A table body of next tokens: token, probability bar, probability. */
export function tokenRows(body: HTMLTableSectionElement, tokens: { id: number; token: string; prob: number }[]): void {
  body.replaceChildren(
    ...tokens.map((t) => {
      const row = make("tr");
      row.dataset["id"] = String(t.id);
      const meter = make("meter");
      meter.value = t.prob;
      const bar = make("td");
      bar.append(meter);
      row.append(make("td", showToken(t.token), "token"), bar, make("td", t.prob.toFixed(4)));
      return row;
    }),
  );
}
