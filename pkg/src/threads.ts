/**
 * Instantiating the build without shared memory (glassbox_bg.wasm): its CPU kernels run on the
 * worker's own thread. worker-threads.js is built with threads-shared.ts in its place.
 */
import init from "../glassbox.js";

/** Instantiates the wasm; resolves to why the kernels run on fewer threads than asked, if they do. */
export async function instantiate(wasmUrl: string | undefined, threads: number): Promise<string | null> {
  await init({ module_or_path: wasmUrl ?? new URL("glassbox_bg.wasm", import.meta.url) });
  return threads > 1 ? "one CPU thread: this worker carries the build without shared memory" : null;
}
