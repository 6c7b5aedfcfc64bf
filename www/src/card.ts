/** Renders a model card. Every value from the file is set as text, never as HTML. */

import type { ModelCard } from "../../pkg/src/index.js";

const FIELDS: [keyof ModelCard, string][] = [
  ["name", "name"],
  ["architecture", "architecture"],
  ["layers", "layers"],
  ["heads", "attention heads"],
  ["kv_heads", "key/value heads"],
  ["embedding_size", "embedding size"],
  ["vocab_size", "vocabulary"],
  ["context_length", "context length"],
  ["sliding_window", "sliding window"],
  ["tokenizer_model", "tokenizer"],
  ["parameter_count", "parameters"],
  ["tensor_count", "tensors"],
  ["file_size", "file size (bytes)"],
  ["gguf_version", "GGUF version"],
];

export function renderCard(list: HTMLElement, table: HTMLTableElement, card: ModelCard): void {
  const rows: Node[] = [];
  for (const [field, label] of FIELDS) {
    const value = card[field];
    if (field === "sliding_window" && value === null) continue;
    const term = document.createElement("dt");
    term.textContent = label;
    const detail = document.createElement("dd");
    detail.dataset["field"] = field;
    detail.textContent =
      value === null
        ? "unknown"
        : field === "sliding_window"
          ? `${String(value)} positions; layers ${card.global_layers.join(", ") || "none"} attend over all`
          : String(value);
    rows.push(term, detail);
  }
  list.replaceChildren(...rows);
  list.dataset["state"] = "ready";

  const body = table.tBodies[0];
  if (body === undefined) return;
  body.replaceChildren(
    ...Object.entries(card.tensor_types).map(([type, count]) => {
      const row = document.createElement("tr");
      row.dataset["type"] = type;
      for (const text of [type, String(count)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
  table.hidden = false;
}
