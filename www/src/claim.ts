/**
 * The Check a claim panel: the verdict with its label probabilities, the explanation as it is
 * written, the evidence tokens marked in the claim, affect bars, and retrieved examples.
 */

import type { Classification, Evidence } from "../../pkg/src/index.js";
import { bars, element, make, Progress, say, track } from "./dom.js";
import { model } from "./model.js";

/** Where `make setup` puts the lexicons; `make demo` serves them beside the page. */
const LEXICONS = {
  vader: "models/lexicons/vader_lexicon.txt",
  emoji: "models/lexicons/emoji_utf8_lexicon.txt",
  empath: "models/lexicons/empath_categories.tsv",
};

const status = element<HTMLParagraphElement>("claim-status");
const verdict = element<HTMLParagraphElement>("claim-verdict");
const probs = element<HTMLDivElement>("claim-probs");
const explanation = element<HTMLParagraphElement>("claim-explanation");
const evidenceView = element<HTMLParagraphElement>("claim-evidence-text");
const affectView = element<HTMLDivElement>("claim-affect-bars");
const retrieved = element<HTMLOListElement>("claim-retrieved");
const probeVerdict = element<HTMLParagraphElement>("claim-probe");
const probeProbs = element<HTMLDivElement>("claim-probe-probs");
const checked = (id: string) => element<HTMLInputElement>(id).checked;
/** `{ [setting]: the number field's value }`, or nothing for an emptied field (the default applies). */
const given = (setting: string, id: string) => {
  const value = element<HTMLInputElement>(id).valueAsNumber;
  return Number.isFinite(value) ? { [setting]: value } : {};
};

/** The lexicons are read once per model. */
const withLexicons = new WeakSet<object>();

/** `text` with the evidence tokens of `field` marked; offsets count code points. */
function markEvidence(text: string, field: string, evidence: Evidence[]): Node[] {
  const chars = Array.from(text);
  const spans = evidence.filter((e) => e.field === field).sort((a, b) => a.start - b.start);
  const max = Math.max(0, ...spans.map((e) => e.score));
  const nodes: Node[] = [];
  let at = 0;
  for (const span of spans) {
    if (span.start < at) continue;
    nodes.push(document.createTextNode(chars.slice(at, span.start).join("")));
    const mark = make("mark", chars.slice(span.start, span.end).join(""));
    mark.dataset["score"] = String(span.score);
    mark.title = `s = ${span.score.toFixed(4)}`;
    // The mark's colour, not its text, fades with the score, so every mark's text reads alike.
    const strength = Math.round(100 * (0.4 + 0.6 * (max > 0 ? Math.max(0, span.score) / max : 0)));
    mark.style.background = `color-mix(in srgb, var(--mark) ${strength}%, transparent)`;
    nodes.push(mark);
    at = span.end;
  }
  nodes.push(document.createTextNode(chars.slice(at).join("")));
  return nodes;
}

function render(result: Classification, fields: Record<string, string>): void {
  say(verdict, `Verdict: ${result.label ?? "none"}`, "ready");
  verdict.dataset["label"] = result.label ?? "";
  probs.replaceChildren(...bars(Object.entries(result.probs)));
  if (result.explanation !== undefined) say(explanation, result.explanation, "ready");
  if (result.evidence !== undefined) {
    const field = "claim" in fields ? "claim" : "text";
    evidenceView.replaceChildren(...markEvidence(fields[field] ?? "", field, result.evidence));
    evidenceView.dataset["state"] = "ready";
  } else {
    evidenceView.replaceChildren();
  }
  if (result.affect !== undefined) {
    const { vader, empath, llm_intensity } = result.affect;
    affectView.replaceChildren(
      make("h4", "VADER"),
      ...bars([["negative", vader.neg], ["neutral", vader.neu], ["positive", vader.pos], ["compound", vader.compound]]),
      make("h4", "Empath"),
      ...bars(Object.entries(empath)),
      make("h4", "The model's intensity"),
      ...bars([["intensity", llm_intensity]]),
    );
    affectView.dataset["state"] = "ready";
  } else {
    affectView.replaceChildren();
  }
  retrieved.replaceChildren(
    ...(result.retrieved ?? []).map((r) => {
      const item = make("li", `${r.id} (${r.label}), similarity ${r.score.toFixed(3)}`);
      item.dataset["id"] = r.id;
      return item;
    }),
  );
}

const progress = new Progress("claim-progress");
/** The engine's cap on an explanation's tokens (`maxNewTokens`'s default). */
const EXPLANATION_TOKENS = 128;

async function check(): Promise<void> {
  for (const view of [verdict, probs, explanation, evidenceView, affectView, probeVerdict, probeProbs]) view.replaceChildren();
  verdict.dataset["state"] = "working";
  const signal = progress.start("Scoring the labels");
  let pieces = 0;
  await track(status, "Checking the claim", async () => {
    const gb = model();
    const task = element<HTMLSelectElement>("claim-task").value;
    const claim = element<HTMLTextAreaElement>("claim-text").value;
    const context = element<HTMLTextAreaElement>("claim-context").value;
    const fields: Record<string, string> = task === "fmd" ? { claim, context } : { text: claim };
    const affect = checked("claim-affect");
    if (affect && !withLexicons.has(gb)) {
      say(status, "Reading the affect lexicons…", "working");
      await gb.useLexicons(LEXICONS);
      withLexicons.add(gb);
    }
    const index = element<HTMLInputElement>("claim-index").files?.[0];
    say(status, "Checking the claim…", "working");
    explanation.dataset["state"] = "streaming";
    const result = await gb.classify(task, fields, {
      explain: checked("claim-explain"),
      evidence: checked("claim-evidence"),
      affect,
      writing: {
        ...given("noRepeatNgram", "claim-no-repeat"),
        ...given("maxSentences", "claim-sentences"),
        ...given("repetitionPenalty", "claim-penalty"),
        oneParagraph: checked("claim-paragraph"),
      },
      ...(index === undefined ? {} : { index }),
      signal,
      onText: (piece) => {
        if (!progress.current(signal)) return;
        explanation.append(piece);
        progress.show("Explanation tokens written (it may end before the cap)", ++pieces, EXPLANATION_TOKENS);
      },
    });
    signal.throwIfAborted();
    render(result, fields);
    const probeFile = element<HTMLInputElement>("claim-probe-file").files?.[0];
    if (probeFile !== undefined) {
      say(status, "Reading the probe…", "working");
      const reading = await gb.probe(new Uint8Array(await probeFile.arrayBuffer()), fields);
      say(probeVerdict, `Probe on ${reading.hook}: ${reading.label}`, "ready");
      probeVerdict.dataset["label"] = reading.label;
      probeProbs.replaceChildren(...bars(Object.entries(reading.probabilities)));
    }
  }, "Done", signal);
  if (progress.finish(signal) && status.dataset["state"] !== "ready") verdict.dataset["state"] = status.dataset["state"] === "error" ? "error" : "";
}

export function setUpClaimPanel(): void {
  element<HTMLFormElement>("claim-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void check();
  });
}
