/**
 * The Synthesise a table panel: HARMONIC on the loaded model, or a baseline, over a CSV that
 * stays in the page; privacy (DCR, copies), utility (classifiers on held-out rows) and fidelity
 * from the engine, histograms of each column, and the synthetic table to download.
 */
import { evaluateTable, readTable, tableBaseline, type TableReport, type TableView } from "../../pkg/src/index.js";
import { describe, element, make, say } from "./dom.js";
import { model } from "./model.js";

/** The engine reads at most 4 MiB of CSV; a larger file is refused before it is read. */
const MAX_CSV_BYTES = 4 << 20;
/** Prompts per call to the engine: between calls the panel shows progress and may stop. */
const PROMPTS_PER_CALL = 4;
const BINS = 10;

const status = element<HTMLParagraphElement>("table-status");
const labelSelect = element<HTMLSelectElement>("table-label");
const report = element<HTMLTableElement>("table-report");
const histograms = element<HTMLDivElement>("table-histograms");
const download = element<HTMLAnchorElement>("table-download");
const lastReply = element<HTMLParagraphElement>("table-reply");
const start = element<HTMLButtonElement>("table-start");
const stop = element<HTMLButtonElement>("table-stop");

let real: { csv: string; view: TableView } | null = null;
let stopping = false;

/** A file's text, or an error naming the cap. */
async function csvOf(input: HTMLInputElement): Promise<string | null> {
  const file = input.files?.[0];
  if (file === undefined) return null;
  if (file.size > MAX_CSV_BYTES) throw new Error(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; at most ${MAX_CSV_BYTES / (1 << 20)} MiB are read`);
  return file.text();
}

async function chooseTable(): Promise<void> {
  real = null;
  labelSelect.replaceChildren();
  try {
    const csv = await csvOf(element<HTMLInputElement>("table-file"));
    if (csv === null) return;
    const view = await readTable(csv);
    real = { csv, view };
    labelSelect.replaceChildren(...view.columns.map((c) => Object.assign(make("option", c), { value: c })));
    labelSelect.value = view.columns[view.columns.length - 1] ?? "";
    say(status, `${view.rows.length} rows, ${view.columns.length} columns (${view.kinds.filter((k) => k === "numeric").length} numeric).`, "ready");
  } catch (e) {
    say(status, describe(e), "error");
  }
}

function csvCell(cell: string): string {
  return /[",\n\r]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell;
}

function toCsv(columns: string[], rows: string[][]): string {
  return [columns, ...rows].map((row) => row.map(csvCell).join(",") + "\n").join("");
}

function reportRow(name: string, value: string, key: string): HTMLTableRowElement {
  const row = make("tr");
  row.dataset["key"] = key;
  const th = make("th", name);
  th.scope = "row";
  row.append(th, make("td", value));
  return row;
}

const fixed = (v: number | undefined, digits = 3) => (v === undefined || v === null ? "—" : v.toFixed(digits));

function showReport(r: TableReport, made: string): void {
  const rows = [
    reportRow("rows", made, "rows"),
    reportRow("DCR, 5th percentile (higher is more private)", fixed(r.dcr_p5), "dcr_p5"),
    reportRow("DCR, median", fixed(r.dcr_median), "dcr_median"),
    reportRow("copies of real rows", `${r.copied_rows} (${(100 * r.copies).toFixed(1)}%)`, "copies"),
    reportRow("mean KS of numeric columns (lower is closer)", fixed(r.fidelity.mean_ks), "mean_ks"),
    reportRow("mean total variation of categorical columns", fixed(r.fidelity.mean_tv), "mean_tv"),
    reportRow("mean |Δ correlation|", fixed(r.fidelity.correlation_mean_abs_difference), "correlation"),
  ];
  if (r.mle !== null) {
    const accuracy = (s: { accuracy?: number; not_trained?: string }) => s.not_trained ?? fixed(s.accuracy);
    rows.push(
      reportRow(`logistic regression on ${r.mle.test_rows} held-out rows: trained on synthetic / real`, `${accuracy(r.mle.synthetic.logistic_regression)} / ${accuracy(r.mle.real.logistic_regression)}`, "mle_logistic"),
      reportRow(`random forest on ${r.mle.test_rows} held-out rows: trained on synthetic / real`, `${accuracy(r.mle.synthetic.random_forest)} / ${accuracy(r.mle.real.random_forest)}`, "mle_forest"),
    );
  }
  report.tBodies[0]?.replaceChildren(...rows);
  report.dataset["dcrP5"] = String(r.dcr_p5);
  report.dataset["copies"] = String(r.copied_rows);
}

/**
 * Real and synthetic shares per bin (a numeric column of more than ten values: ten equal bins
 * over the real range) or per value.
 */
function showHistograms(view: TableView, synthetic: string[][]): void {
  const blocks = view.columns.map((name, c) => {
    const realValues = view.rows.map((r) => r[c] ?? "");
    const synValues = synthetic.map((r) => r[c] ?? "");
    let bins: [string, (v: string) => boolean][];
    const distinct = [...new Set(realValues)];
    if (view.kinds[c] === "numeric" && distinct.length > BINS) {
      const numbers = realValues.map(Number);
      const [lo, hi] = [Math.min(...numbers), Math.max(...numbers)];
      const width = (hi - lo) / BINS || 1;
      const bin = (v: string) => Math.min(BINS - 1, Math.max(0, Math.floor((Number(v) - lo) / width)));
      bins = Array.from({ length: BINS }, (_, i) => [`${(lo + i * width).toPrecision(3)}…`, (v: string) => bin(v) === i]);
    } else {
      const categories = distinct.sort();
      bins = categories.map((k) => [k, (v: string) => v === k]);
      bins.push(["(other)", (v: string) => !categories.includes(v)]);
    }
    const block = make("div", "", "histogram");
    block.append(make("h4", name));
    const table = make("table");
    for (const [label, inBin] of bins) {
      const row = make("tr");
      const share = (values: string[]) => (values.length === 0 ? 0 : values.filter(inBin).length / values.length);
      const meter = (value: number, title: string) => {
        const m = make("meter");
        m.value = value;
        m.title = `${title} ${(100 * value).toFixed(1)}%`;
        const cell = make("td");
        cell.append(m);
        return cell;
      };
      row.append(make("th", label), meter(share(realValues), "real"), meter(share(synValues), "synthetic"));
      table.append(row);
    }
    block.append(table);
    return block;
  });
  histograms.replaceChildren(make("p", "In each row: real share, then synthetic share.", "hint"), ...blocks);
}

async function run(): Promise<void> {
  stopping = false;
  say(status, "Reading the tables…", "working");
  report.tBodies[0]?.replaceChildren();
  histograms.replaceChildren();
  lastReply.replaceChildren();
  download.hidden = true;
  if (real === null) return say(status, "Choose a CSV table first.", "error");
  const { csv, view } = real;
  const label = labelSelect.value;
  const n = Number(element<HTMLInputElement>("table-n").value);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) return say(status, "Rows must be a whole number from 1 to 10000.", "error");
  const method = element<HTMLSelectElement>("table-method").value;
  const began = performance.now();
  const seconds = () => ((performance.now() - began) / 1000).toFixed(0);
  stop.disabled = false;
  start.disabled = true;
  try {
    const test = (await csvOf(element<HTMLInputElement>("table-test-file"))) ?? undefined;
    let rows: string[][] = [];
    let made = `${n}`;
    if (method === "model") {
      const gb = model();
      const description = element<HTMLInputElement>("table-description").value.trim() || "the table's rows";
      let prompts = 0;
      let rejected = 0;
      while (rows.length < n && prompts < 4 * n && !stopping) {
        say(status, `${rows.length} of ${n} rows from ${prompts} prompts (${rejected} rejected)… ${seconds()} s`, "working");
        const result = await gb.synthesise(csv, {
          label, n: n - rows.length, description, firstAttempt: prompts, maxAttempts: Math.min(PROMPTS_PER_CALL, 4 * n - prompts),
          onAttempt: (attempt) => {
            lastReply.textContent = attempt.rejected === undefined ? attempt.reply : `${attempt.reply}\n(rejected: ${attempt.rejected}${attempt.column === undefined ? "" : ` in ${attempt.column}`})`;
          },
        });
        rows = rows.concat(result.rows);
        prompts += result.attempts.length;
        rejected += result.attempts.filter((a) => a.rejected !== undefined).length;
      }
      made = `${rows.length} from ${prompts} prompts, ${rejected} rejected (${prompts === 0 ? 0 : ((100 * rejected) / prompts).toFixed(0)}%)`;
    } else {
      const synthetic = await tableBaseline(csv, label, method === "smote" ? "smote" : "resample", n, 0);
      rows = (await readTable(synthetic)).rows;
    }
    if (rows.length === 0) return say(status, `No rows were made in ${seconds()} s (${made}).`, "error");
    const syntheticCsv = toCsv(view.columns, rows);
    say(status, `Measuring ${rows.length} rows…`, "working");
    showReport(await evaluateTable(csv, syntheticCsv, label, test === undefined ? {} : { test }), made);
    showHistograms(view, rows);
    if (download.href.startsWith("blob:")) URL.revokeObjectURL(download.href);
    download.href = URL.createObjectURL(new Blob([syntheticCsv], { type: "text/csv" }));
    download.hidden = false;
    say(status, `${stopping ? "Stopped" : "Done"}: ${rows.length} synthetic rows in ${seconds()} s.`, "ready");
  } catch (e) {
    say(status, describe(e), "error");
  } finally {
    stop.disabled = true;
    start.disabled = false;
  }
}

export function setUpTablePanel(): void {
  element<HTMLInputElement>("table-file").addEventListener("change", () => void chooseTable());
  element<HTMLFormElement>("table-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void run();
  });
  stop.addEventListener("click", () => {
    stopping = true;
    say(status, "Stopping after this prompt…", "working");
  });
}
