/**
 * A CPU kernel thread of the build with shared memory: worker-threads.js starts it with the
 * engine's module and memory, and it takes the kernels' tasks until the engine's worker ends.
 */
import { initSync, runKernelWorker } from "../glassbox-threads.js";

self.onmessage = (event: MessageEvent<{ module: WebAssembly.Module; memory: WebAssembly.Memory }>) => {
  const post = (reply: { started: boolean; reason?: string }) => (self as unknown as Worker).postMessage(reply);
  try {
    initSync({ module: event.data.module, memory: event.data.memory });
  } catch (e) {
    post({ started: false, reason: e instanceof Error ? e.message : String(e) });
    return;
  }
  post({ started: true });
  runKernelWorker();
};
