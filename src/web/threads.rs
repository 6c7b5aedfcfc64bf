//! The CPU kernels' threads in the browser. The build with shared memory (`+atomics`) runs the
//! shared [`ThreadPool`] as a hosted one: the worker the engine runs in starts
//! `startKernelPool(n)` more Web Workers on the same module and memory, and each gives itself to
//! the pool through `runKernelWorker`.

use wasm_bindgen::prelude::*;

use crate::backend::kernels::ThreadPool;

/// The most threads a page may ask for: beyond the cores a phone or laptop has, a product's rows
/// split too thin to gain.
#[cfg(target_feature = "atomics")]
const MOST_THREADS: usize = 16;

/// Makes the kernels' pool `threads` wide (at most 16) unless a model already uses it; returns
/// how many workers the page must start, each calling `runKernelWorker`.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen(js_name = startKernelPool)]
pub fn start_kernel_pool(threads: usize) -> usize {
    ThreadPool::share_hosted(threads.clamp(1, MOST_THREADS)).threads() - 1
}

/// Lends the calling Web Worker to the kernels' pool; returns only if the pool ends.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen(js_name = runKernelWorker)]
pub fn run_kernel_worker() {
    ThreadPool::shared().hosted_worker().run()
}

/// How many threads the CPU kernels run on: 1 in the build without shared memory.
#[wasm_bindgen(js_name = kernelThreads)]
pub fn kernel_threads() -> usize {
    ThreadPool::shared().threads()
}
