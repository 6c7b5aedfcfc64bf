/**
 * The Take an exam panel: EMPEC's evaluation on the loaded model. The questions file stays in
 * the page; questions are asked one at a time with progress and a stop button, and the accuracy
 * table (computed by the engine, as `glassbox evaluate --task exam` does) grows as they finish.
 */
import { examReport, type ExamReply, type ExamReport, type ExamTally } from "../../pkg/src/index.js";
import { describe, element, make, say } from "./dom.js";
import { model } from "./model.js";

/** Far above any exam set; a larger file is refused before it is read. */
const MAX_FILE_BYTES = 16 << 20;
const MAX_QUESTIONS = 10_000;

const status = element<HTMLParagraphElement>("exam-status");
const accuracy = element<HTMLTableElement>("exam-accuracy");
const replies = element<HTMLTableElement>("exam-replies");
const errors = element<HTMLUListElement>("exam-errors");
const stop = element<HTMLButtonElement>("exam-stop");
const start = element<HTMLButtonElement>("exam-start");

let stopping = false;

function tallyRow(group: string, name: string, tally: ExamTally): HTMLTableRowElement {
  const row = make("tr");
  row.dataset["group"] = group;
  row.dataset["name"] = name;
  row.dataset["count"] = String(tally.count);
  row.dataset["correct"] = String(tally.correct);
  row.append(make("th", name), make("td", String(tally.count)), make("td", String(tally.correct)), make("td", `${(100 * tally.accuracy).toFixed(1)}%`));
  row.cells[0]?.setAttribute("scope", "row");
  return row;
}

function showReport(report: ExamReport): void {
  const rows = [tallyRow("overall", "all questions", report.overall)];
  if (report.normalised !== undefined) rows.push(tallyRow("normalised", "all, normalised reading", report.normalised));
  for (const [group, tallies] of [["profession", report.by_profession], ["subject", report.by_subject]] as const) {
    const heading = make("tr");
    const cell = make("th", `By ${group}`);
    cell.colSpan = 4;
    heading.append(cell);
    rows.push(heading, ...Object.entries(tallies).map(([name, tally]) => tallyRow(group, name, tally)));
  }
  const note = make("tr");
  const cell = make("td", `No answer: ${report.no_answer}. Chance: ${(100 * report.chance).toFixed(0)}%.`);
  cell.colSpan = 4;
  note.append(cell);
  accuracy.tBodies[0]?.replaceChildren(...rows, note);
}

/** A row for a question being asked; its reply cell is filled as the reply streams in. */
function replyRow(line: number): { row: HTMLTableRowElement; reply: HTMLTableCellElement } {
  const row = make("tr");
  row.dataset["line"] = String(line);
  const reply = make("td", "", "reply");
  row.append(make("td"), make("td"), make("td"), reply, make("td"), make("td"));
  replies.tBodies[0]?.append(row);
  return { row, reply };
}

function fillRow(row: HTMLTableRowElement, answered: ExamReply): void {
  row.dataset["id"] = answered.id;
  row.dataset["answer"] = answered.answer ?? "";
  if (answered.probs !== undefined) row.dataset["probs"] = JSON.stringify(answered.probs);
  const letters = answered.probs === undefined ? "" : Object.entries(answered.probs).map(([l, p]) => `${l} ${p.toFixed(3)}`).join("  ");
  const cells = [answered.id, answered.profession ?? "", answered.gold ?? "", answered.output ?? letters, answered.answer ?? "none", answered.correct === undefined ? "" : answered.correct ? "✓" : "✗"];
  cells.forEach((text, i) => {
    const cell = row.cells[i];
    if (cell !== undefined) cell.textContent = text;
  });
}

async function run(): Promise<void> {
  stopping = false;
  say(status, "Reading the questions…", "working");
  replies.tBodies[0]?.replaceChildren();
  accuracy.tBodies[0]?.replaceChildren();
  errors.replaceChildren();
  const file = element<HTMLInputElement>("exam-file").files?.[0];
  if (file === undefined) return say(status, "Choose a JSONL file of questions first.", "error");
  if (file.size > MAX_FILE_BYTES) return say(status, `The file is ${(file.size / 1e6).toFixed(1)} MB; at most ${MAX_FILE_BYTES / (1 << 20)} MiB are read.`, "error");
  let gb;
  try {
    gb = model();
  } catch (e) {
    return say(status, describe(e), "error");
  }
  const lines = (await file.text()).split("\n").map((text, i) => ({ number: i + 1, text: text.replace(/\r$/, "") })).filter((l) => l.text.trim() !== "");
  if (lines.length === 0) return say(status, "The file has no questions.", "error");
  if (lines.length > MAX_QUESTIONS) return say(status, `The file has ${lines.length} questions; at most ${MAX_QUESTIONS} are asked.`, "error");
  const mode = element<HTMLSelectElement>("exam-mode").value === "score" ? "score" : "generate";
  const answered: ExamReply[] = [];
  const began = performance.now();
  const seconds = () => ((performance.now() - began) / 1000).toFixed(0);
  let asked = 0;
  const progress = () => say(status, `Question ${Math.min(asked + 1, lines.length)} of ${lines.length}… ${seconds()} s`, "working");
  const timer = setInterval(progress, 1000);
  stop.disabled = false;
  start.disabled = true;
  try {
    for (const line of lines) {
      if (stopping) break;
      progress();
      const { row, reply } = replyRow(line.number);
      try {
        const result = await gb.exam(line.text, { mode, onText: (piece) => reply.append(piece) });
        fillRow(row, result);
        answered.push(result);
        showReport(await examReport(answered));
      } catch (e) {
        row.remove();
        errors.append(make("li", `line ${line.number}: ${describe(e)}`));
      }
      asked++;
    }
    const failed = errors.childElementCount;
    const summary = `${answered.length} of ${lines.length} questions answered in ${seconds()} s${failed > 0 ? `, ${failed} ${failed === 1 ? "row" : "rows"} not read (listed below)` : ""}`;
    say(status, stopping ? `Stopped: ${summary}.` : `Done: ${summary}.`, "ready");
  } catch (e) {
    say(status, describe(e), "error");
  } finally {
    clearInterval(timer);
    stop.disabled = true;
    start.disabled = false;
  }
}

export function setUpExamPanel(): void {
  element<HTMLFormElement>("exam-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void run();
  });
  stop.addEventListener("click", () => {
    stopping = true;
    say(status, "Stopping after this question…", "working");
  });
}
