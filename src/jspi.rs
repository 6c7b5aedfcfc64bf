//! Synchronous waits on the browser's promises, through JS Promise Integration (JSPI).
//!
//! The model code is synchronous, but a GPU buffer map or a `Blob` slice settles only from the
//! browser's event loop. Under JSPI, a wasm call entered through `WebAssembly.promising` may call
//! an import wrapped in `WebAssembly.Suspending`: its wasm stack is set aside until the import's
//! promise settles, and the event loop runs meanwhile. `scripts/jspi-glue.mjs` adds both wrappers
//! to wasm-bindgen's glue: every import whose JS name starts with `glassboxSuspending`, and the
//! exported `runTask(task)`, which enters `web::task`'s `glassbox_run_task`.
//!
//! This module sits below both the WebGPU backend (which waits for buffer maps) and the
//! JavaScript API (which runs tasks and reads file slices), so neither imports the other.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(inline_js = r#"
let chunk = null;
export async function glassboxSuspendingAwait(promise) {
  await promise;
  return 1;
}
export async function glassboxSuspendingRead(blob, offset, length) {
  try {
    chunk = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    return 1;
  } catch (e) {
    chunk = e instanceof Error ? e : new Error(String(e));
    return 0;
  }
}
export function glassboxTakeChunk() {
  const taken = chunk;
  chunk = null;
  return taken;
}
"#)]
extern "C" {
    /// Suspends until `promise` settles.
    #[wasm_bindgen(js_name = glassboxSuspendingAwait)]
    fn suspending_await(promise: &js_sys::Promise) -> u32;
    /// Reads `length` bytes at `offset` of `blob` into the chunk slot; 0 when the read failed
    /// (the slot then holds the error).
    #[wasm_bindgen(js_name = glassboxSuspendingRead)]
    fn suspending_read(blob: &web_sys::Blob, offset: f64, length: f64) -> u32;
    #[wasm_bindgen(js_name = glassboxTakeChunk)]
    fn take_chunk() -> JsValue;
}

thread_local! {
    /// True while a task runs on a stack that `WebAssembly.promising` entered.
    static SUSPENDABLE: Cell<bool> = const { Cell::new(false) };
    /// The resolve function of the promise `wait_for` waits on.
    static RESOLVE: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

/// Why a wait cannot happen: outside `runTask`, or in a browser without JSPI.
pub const CANNOT_SUSPEND: &str = "this browser cannot pause wasm to wait for the GPU or a file \
    (it lacks JS Promise Integration, WebAssembly.Suspending)";

/// Whether the running code may wait on a promise.
pub fn can_suspend() -> bool {
    SUSPENDABLE.get()
}

/// Runs `work`, letting it wait on promises when `suspendable` (its stack was entered through
/// `WebAssembly.promising`).
pub fn run_suspendable<R>(suspendable: bool, work: impl FnOnce() -> R) -> R {
    SUSPENDABLE.set(suspendable);
    let outcome = work();
    SUSPENDABLE.set(false);
    outcome
}

/// Resolves the promise `wait_for` is suspended on, so that it polls its future again.
struct ResolveOnWake;

impl Wake for ResolveOnWake {
    fn wake(self: Arc<Self>) {
        if let Some(resolve) = RESOLVE.with_borrow_mut(Option::take) {
            // Resolving a pending promise cannot throw.
            let _ = resolve.call0(&JsValue::NULL);
        }
    }
}

/// Drives `future` to completion, suspending until its waker fires whenever it is pending: the
/// event loop runs meanwhile, and delivers the GPU map or adapter request that wakes it.
pub fn wait_for<F: Future>(future: F) -> Result<F::Output, String> {
    if !can_suspend() {
        return Err(CANNOT_SUSPEND.to_string());
    }
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ResolveOnWake));
    let mut context = Context::from_waker(&waker);
    loop {
        let mut resolver = None;
        let woken = js_sys::Promise::new(&mut |resolve, _reject| resolver = Some(resolve));
        RESOLVE.set(resolver);
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            RESOLVE.take();
            return Ok(value);
        }
        suspending_await(&woken);
    }
}

/// `length` bytes of `blob` from `offset`.
pub fn read_blob(blob: &web_sys::Blob, offset: u64, length: u64) -> Result<Vec<u8>, String> {
    if !can_suspend() {
        return Err(CANNOT_SUSPEND.to_string());
    }
    let succeeded = suspending_read(blob, offset as f64, length as f64) == 1;
    let taken = take_chunk();
    if !succeeded {
        let message = taken.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()));
        return Err(format!("reading the file failed: {}", message.unwrap_or_else(|| "no reason given".into())));
    }
    let chunk: js_sys::Uint8Array = taken.dyn_into().map_err(|_| "the file read returned no bytes".to_string())?;
    if u64::from(chunk.length()) != length {
        return Err(format!("the file ended early: wanted {length} bytes at {offset}, got {}", chunk.length()));
    }
    Ok(chunk.to_vec())
}
