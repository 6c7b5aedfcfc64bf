/** The Token rewards panel: SePO's per-token rewards from the loaded model and a reference. */

import { Glassbox, type TokenRewards } from "../../pkg/src/index.js";
import { diverging, element, legend, make, paint, showToken, track } from "./dom.js";
import { backend, model } from "./model.js";

const status = element<HTMLParagraphElement>("rewards-status");
const tokensView = element<HTMLParagraphElement>("rewards-tokens");

let reference: { url: string; model: Promise<Glassbox> } | null = null;

function referenceModel(url: string): Promise<Glassbox> {
  if (reference?.url !== url) {
    reference?.model.then((m) => m.dispose()).catch(() => undefined);
    const loading = Glassbox.load(url, { backend: backend(), cache: "never" });
    reference = { url, model: loading };
    loading.catch(() => {
      reference = null;
    });
  }
  return reference.model;
}

function render(result: TokenRewards): void {
  const max = Math.max(...result.tokens.map((t) => Math.abs(t.reward)));
  tokensView.replaceChildren(
    ...result.tokens.map((t) => {
      const chip = make("span", showToken(t.token), t.selected ? "token selected" : "token");
      chip.dataset["position"] = String(t.position);
      chip.dataset["reward"] = String(t.reward);
      chip.dataset["selected"] = String(t.selected);
      paint(chip, diverging(t.reward, max));
      chip.title = `r = ${t.reward.toFixed(4)} (oracle ${t.oracle_logprob.toFixed(3)}, reference ${t.reference_logprob.toFixed(3)})${t.selected ? ", selected" : ""}`;
      return chip;
    }),
  );
  legend(element("rewards-legend"), "Reward r = log π_oracle − log π_ref (nats)", (t) => diverging(2 * t - 1, 1), [
    `−${max.toFixed(2)}`,
    "0",
    `+${max.toFixed(2)}`,
  ]);
  tokensView.dataset["state"] = "ready";
  tokensView.dataset["selectedCount"] = String(result.selected_count);
}

export function setUpRewardsPanel(): void {
  element<HTMLFormElement>("rewards-form").addEventListener("submit", (event) => {
    event.preventDefault();
    tokensView.dataset["state"] = "working";
    void track(status, "Scoring the response with both models", async () => {
      const oracle = model();
      const ref = await referenceModel(element<HTMLInputElement>("reference-url").value.trim());
      const k = Number(element<HTMLInputElement>("rewards-k").value);
      const rejected = element<HTMLInputElement>("rewards-rejected").checked;
      const prompt = element<HTMLInputElement>("rewards-prompt").value;
      const response = element<HTMLInputElement>("rewards-response").value;
      render(await oracle.tokenRewards(ref, prompt, response, { k, rejected }));
    }, "Marked tokens are the ones SePO selects.");
  });
}
