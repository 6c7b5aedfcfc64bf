/**
 * `make bench` in the browser: the engine's prefill and decode speed on the same model and
 * prompts as the wllama peer (shared/peers/wllama), timed with performance.now() around the npm
 * package's calls (its worker, as a page using it runs), on the backend `?backend=cpu|webgpu`
 * names (cpu by default) with `?threads=` CPU kernel threads (1 by default), `?reps=` times after a
 * warm-up, `?steps=` decode steps each. Writes `#result` with JSON when done.
 */
import { Glassbox } from "../../pkg/src/index.js";

const query = new URLSearchParams(location.search);
// A software WebGPU adapter is slow: its run takes fewer of both.
const REPETITIONS = Number(query.get("reps") ?? 3);
const DECODE_STEPS = Number(query.get("steps") ?? 128);

function report(result: Record<string, unknown>): void {
  const out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify(result);
  document.body.append(out);
}

async function fetched(url: string): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

async function text(url: string): Promise<string> {
  return (await (await fetched(url)).text()).trim();
}

async function main(): Promise<void> {
  const progress = document.getElementById("progress");
  const say = (line: string): void => {
    if (progress !== null) progress.textContent += line + "\n";
  };
  const [short, long] = await Promise.all([text("bench/short.txt"), text("bench/long.txt")]);
  const model = await (await fetched("models/SmolLM2-135M-Instruct.Q4_1.gguf")).blob();
  const backend = query.get("backend") === "webgpu" ? "webgpu" : "cpu";
  const threads = Number(query.get("threads") ?? 1);
  let start = performance.now();
  const gb = await Glassbox.load(model, { backend, threads });
  const loadMs = performance.now() - start;
  const shortIds = await gb.tokenize(short);
  const longIds = await gb.tokenize(long);

  const prefill: number[] = [];
  const decode: number[] = [];
  await gb.generate(short, { maxTokens: 8 }); // warm-up
  for (let rep = 0; rep < REPETITIONS; rep++) {
    start = performance.now();
    await gb.logits(long, { topK: 1 });
    prefill.push(longIds.length / ((performance.now() - start) / 1000));
    say(`prefill ${rep + 1}: ${prefill.at(-1)?.toFixed(1)} tok/s`);

    start = performance.now();
    await gb.logits(short, { topK: 1 });
    const shortPrefillMs = performance.now() - start;
    start = performance.now();
    const generated = await gb.generate(short, { maxTokens: DECODE_STEPS });
    const decodeMs = performance.now() - start - shortPrefillMs;
    decode.push(generated.ids.length / (decodeMs / 1000));
    say(`decode ${rep + 1}: ${decode.at(-1)?.toFixed(1)} tok/s`);
  }
  const result = { backend: gb.backend, device: gb.device, threads: gb.threads, fallback_reason: gb.fallbackReason };
  report({ ...result, decode_steps: DECODE_STEPS, load_ms: loadMs, n_short: shortIds.length, n_long: longIds.length, prefill_tok_s: prefill, decode_tok_s: decode });
}

main().catch((e: unknown) => report({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }));
