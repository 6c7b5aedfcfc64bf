//! `Task`: a computation an `Engine` method prepared, run by the glue's `runTask` through
//! [`crate::jspi`], so that it may wait for the GPU and for file slices.
//!
//! Tasks run one at a time (`runTask` queues them). Rust keeps part of its stack in linear memory
//! below a global stack pointer; a suspended task's frames lie below that pointer, and a second
//! task finishing first would hand them out again.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use super::{js_error, ErrorName};

type Work = Box<dyn FnOnce() -> Result<JsValue, JsValue>>;

thread_local! {
    static STAGED: RefCell<Option<Work>> = const { RefCell::new(None) };
    static OUTCOME: RefCell<Option<Result<JsValue, JsValue>>> = const { RefCell::new(None) };
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
        let work = self.work.take().ok_or_else(|| js_error(ErrorName::InputError, "this task has already run"))?;
        STAGED.with_borrow_mut(|staged| *staged = Some(work));
        Ok(())
    }
}

/// The staged task's value, or its error thrown (called by `runTask` after the task ends).
#[wasm_bindgen(js_name = takeTaskOutcome)]
pub fn take_task_outcome() -> Result<JsValue, JsValue> {
    OUTCOME
        .with_borrow_mut(Option::take)
        .unwrap_or_else(|| Err(js_error(ErrorName::InputError, "no task has finished")))
}

/// Runs the staged task. `suspendable` is 1 when `runTask` entered through
/// `WebAssembly.promising`, so that waits may suspend.
#[no_mangle]
pub extern "C" fn glassbox_run_task(suspendable: u32) {
    let outcome = match STAGED.with_borrow_mut(Option::take) {
        Some(work) => crate::jspi::run_suspendable(suspendable == 1, work),
        None => Err(js_error(ErrorName::InputError, "no task was staged")),
    };
    OUTCOME.with_borrow_mut(|slot| *slot = Some(outcome));
}
