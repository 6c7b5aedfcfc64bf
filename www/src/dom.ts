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
 * it fails; once `signal` has aborted, a failure is the cancellation it caused, said as such (the
 * engine's own word for it kept in `data-reason`). Resolves to undefined on failure.
 */
export async function track<T>(status: HTMLElement, label: string, work: () => Promise<T>, done = "", signal?: AbortSignal): Promise<T | undefined> {
  const start = performance.now();
  say(status, `${label}…`, "working");
  delete status.dataset["reason"];
  const timer = setInterval(() => say(status, `${label}… ${((performance.now() - start) / 1000).toFixed(0)} s`, "working"), 1000);
  try {
    const value = await work();
    say(status, done, "ready");
    return value;
  } catch (e) {
    if (signal?.aborted === true) {
      say(status, "Cancelled.", "cancelled");
      status.dataset["reason"] = describe(e);
    } else {
      say(status, describe(e), "error");
    }
    return undefined;
  } finally {
    clearInterval(timer);
  }
}

/**
 * A long computation's progress line (`<progress>`, a `.progress-text` and a Cancel button in
 * the element `id`): what is being done, how far it is, the time left estimated from the pace so
 * far, and a Cancel that aborts the signal the work was given; the worker stops at its next step
 * or token.
 */
export class Progress {
  readonly #line: HTMLElement;
  readonly #bar: HTMLProgressElement;
  readonly #text: HTMLElement;
  #controller: AbortController | null = null;
  #start = 0;

  constructor(id: string) {
    this.#line = element(id);
    this.#bar = this.#line.querySelector("progress") as HTMLProgressElement;
    this.#text = this.#line.querySelector(".progress-text") as HTMLElement;
    (this.#line.querySelector("button.cancel") as HTMLButtonElement).addEventListener("click", () => this.#controller?.abort());
  }

  /** Shows the line for new work, cancelling any still running, and gives the work its signal. */
  start(what: string): AbortSignal {
    this.#controller?.abort();
    this.#controller = new AbortController();
    this.#start = performance.now();
    this.#line.hidden = false;
    this.show(what);
    return this.#controller.signal;
  }

  /** `what` is being done: `done` of `total` steps when known, else an indeterminate bar. */
  show(what: string, done?: number, total?: number): void {
    if (done === undefined || total === undefined || total <= 0) {
      this.#bar.removeAttribute("value");
      this.#text.textContent = `${what}…`;
      return;
    }
    this.#bar.max = total;
    this.#bar.value = done;
    const seconds = (performance.now() - this.#start) / 1000;
    const left = done > 0 && done < total ? `, about ${Math.max(1, Math.round((seconds / done) * (total - done)))} s left` : "";
    this.#text.textContent = `${what}: ${done} of ${total}${left}`;
  }

  /** Whether the work given `signal` is still the line's own: not cancelled, not replaced by newer work. */
  current(signal: AbortSignal): boolean {
    return this.#controller?.signal === signal && !signal.aborted;
  }

  /**
   * Hides the line once the work given `signal` has ended. False, leaving the line as it is, when
   * newer work has taken it over: that work marks its views itself.
   */
  finish(signal: AbortSignal): boolean {
    if (this.#controller === null) return true;
    if (this.#controller.signal !== signal) return false;
    this.#controller = null;
    this.#line.hidden = true;
    return true;
  }
}

/** A token as text, with its leading space and newlines made visible. */
export function showToken(token: string): string {
  return token.replaceAll("\n", "⏎").replaceAll(" ", "·");
}

/** Cividis (Nuñez et al. 2018), sampled at 0, 0.25, 0.5, 0.75 and 1: readable with any colour vision. */
const CIVIDIS: [number, number, number][] = [
  [0, 32, 77],
  [65, 77, 107],
  [124, 123, 120],
  [188, 175, 111],
  [255, 234, 70],
];

/** The ends of the diverging scale: blue for negative, orange for positive, white between. */
const NEGATIVE: [number, number, number] = [33, 102, 172];
const POSITIVE: [number, number, number] = [230, 97, 1];

function mix(a: [number, number, number], b: [number, number, number], t: number): [number, number, number] {
  return [0, 1, 2].map((i) => Math.round(a[i]! + (b[i]! - a[i]!) * t)) as [number, number, number];
}

function rgb([r, g, b]: [number, number, number]): string {
  return `rgb(${r} ${g} ${b})`;
}

/** Cividis at `value` in [0, 1] (sequential: probabilities). */
export function heat(value: number): string {
  const v = (Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0) * (CIVIDIS.length - 1);
  const i = Math.min(CIVIDIS.length - 2, Math.floor(v));
  return rgb(mix(CIVIDIS[i]!, CIVIDIS[i + 1]!, v - i));
}

/** White at zero, to blue at −max and orange at +max (signed values: LPI, patching, rewards). */
export function diverging(value: number, max: number): string {
  const v = max > 0 ? Math.min(1, Math.abs(value) / max) : 0;
  return rgb(mix([255, 255, 255], value >= 0 ? POSITIVE : NEGATIVE, v));
}

/**
 * Black or white, whichever contrasts more with `background` (an `rgb(r g b)` colour) by WCAG's
 * relative luminance: white below about 0.18, where its contrast ratio overtakes black's. Pure
 * black and white keep every background at 4.58:1 or more, past WCAG's 4.5 for small text.
 */
export function inkOn(background: string): string {
  const linear = (channel: number) => {
    const c = channel / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const [r, g, b] = (background.match(/\d+/g) ?? ["255", "255", "255"]).map(Number).map(linear);
  const luminance = 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
  return 1.05 / (luminance + 0.05) > (luminance + 0.05) / 0.05 ? "#fff" : "#000";
}

/** Fills `element` with its background colour and a text colour that reads on it. */
export function paint(element: HTMLElement, background: string): void {
  element.style.background = background;
  element.style.color = inkOn(background);
}

/**
 * A colour bar into `target`: `colour` sampled across [0, 1], `caption` before it and `labels`
 * spread under it (its ends, and the middle when three are given).
 */
export function legend(target: HTMLElement, caption: string, colour: (t: number) => string, labels: string[]): void {
  const stops = Array.from({ length: 11 }, (_, i) => colour(i / 10)).join(", ");
  const bar = make("span", "", "legend-bar");
  bar.style.background = `linear-gradient(to right, ${stops})`;
  bar.setAttribute("aria-hidden", "true");
  const ticks = make("span", "", "legend-labels");
  ticks.append(...labels.map((label) => make("span", label)));
  target.replaceChildren(make("span", caption, "legend-caption"), bar, ticks);
  target.dataset["labels"] = labels.join("|");
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
