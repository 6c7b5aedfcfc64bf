//! Synchronous waits on the browser's promises, through JS Promise Integration (JSPI).
//!
//! The model code is synchronous, but a GPU buffer map or a `Blob` slice settles only from the
//! browser's event loop. Under JSPI, a wasm call entered through `WebAssembly.promising` may call
//! an import wrapped in `WebAssembly.Suspending`: its wasm stack is set aside until the import's
//! promise settles, and the event loop runs meanwhile. `scripts/jspi-glue.mjs` adds both wrappers
//! to wasm-bindgen's glue: every import whose JS name starts with `glassboxSuspending`, and the
//! exported `runTask(task)`, which enters [`glassbox_run_task`].
//!
//! Tasks run one at a time (`runTask` queues them). Rust keeps part of its stack in linear memory
//! below a global stack pointer; a suspended task's frames lie below that pointer, and a second
//! task finishing first would hand them out again.

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

type Work = Box<dyn FnOnce() -> Result<JsValue, JsValue>>;

thread_local! {
    static STAGED: RefCell<Option<Work>> = const { RefCell::new(None) };
    static OUTCOME: RefCell<Option<Result<JsValue, JsValue>>> = const { RefCell::new(None) };
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

/// A computation an `Engine` method prepared; `runTask(task)` runs it and resolves to its value.
#[wasm_bindgen]
pub struct Task {
    work: Option<Work>,
}

impl Task {
    pub fn new(work: impl FnOnce() -> Result<JsValue, JsValue> + 'static) -> Task {
        Task { work: Some(Box::new(work)) }
    }
}

#[wasm_bindgen]
impl Task {
    /// Hands the work to `glassbox_run_task` (called by `runTask`; a task runs once).
    pub fn stage(&mut self) -> Result<(), JsValue> {
        let work = self.work.take().ok_or_else(|| super::js_error("InputError", "this task has already run"))?;
        STAGED.with_borrow_mut(|staged| *staged = Some(work));
        Ok(())
    }
}

/// The staged task's value, or its error thrown (called by `runTask` after the task ends).
#[wasm_bindgen(js_name = takeTaskOutcome)]
pub fn take_task_outcome() -> Result<JsValue, JsValue> {
    OUTCOME.with_borrow_mut(Option::take).unwrap_or_else(|| Err(super::js_error("InputError", "no task has finished")))
}

/// Runs the staged task. `suspendable` is 1 when `runTask` entered through
/// `WebAssembly.promising`, so that waits may suspend.
#[no_mangle]
pub extern "C" fn glassbox_run_task(suspendable: u32) {
    let outcome = match STAGED.with_borrow_mut(Option::take) {
        Some(work) => {
            SUSPENDABLE.set(suspendable == 1);
            let outcome = work();
            SUSPENDABLE.set(false);
            outcome
        }
        None => Err(super::js_error("InputError", "no task was staged")),
    };
    OUTCOME.with_borrow_mut(|slot| *slot = Some(outcome));
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
