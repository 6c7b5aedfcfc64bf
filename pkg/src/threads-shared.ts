/**
 * Instantiating the build with shared memory (glassbox-threads_bg.wasm), in worker-threads.js: the
 * CPU kernels' pool takes `threads − 1` more Web Workers (kernel-worker.js), each instantiating the
 * same module on the same memory.
 */
import init, { startKernelPool } from "../glassbox-threads.js";

/**
 * Instantiates the wasm and starts the kernel workers; resolves once each has started or failed
 * (the kernels then run without it), to why fewer threads run than asked, if they do.
 */
export async function instantiate(wasmUrl: string | undefined, threads: number): Promise<string | null> {
  const url = wasmUrl ?? new URL("glassbox-threads_bg.wasm", import.meta.url);
  // Compiled here, so that each kernel worker instantiates this same module.
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${String(url)}: HTTP ${response.status}`);
  const module = await WebAssembly.compile(await response.arrayBuffer());
  const { memory } = await init({ module_or_path: module });
  const workers = startKernelPool(threads);
  const outcomes = await Promise.all(Array.from({ length: workers }, (_, i) => startKernelWorker(i + 1, module, memory)));
  const failures = outcomes.filter((reason) => reason !== null);
  return failures.length === 0 ? null : `${failures.length} of ${workers} kernel threads did not start (${failures[0]})`;
}

/** One kernel worker; resolves to null once it takes the pool's tasks, else to why it did not start. */
function startKernelWorker(index: number, module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<string | null> {
  return new Promise((resolve) => {
    const worker = new Worker(new URL("./kernel-worker.js", import.meta.url), { type: "module", name: `glassbox-kernel-${index}` });
    worker.onmessage = (event: MessageEvent<{ started: boolean; reason?: string }>) => resolve(event.data.started ? null : (event.data.reason ?? "no reason given"));
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      resolve(event.message || "kernel-worker.js did not load");
    };
    worker.postMessage({ module, memory });
  });
}
