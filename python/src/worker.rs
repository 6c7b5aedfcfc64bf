//! The thread that owns a model. A model on WebGPU holds its device through `Rc`s, so it lives
//! on one thread for its whole life; Python's threads hand it work and wait with the
//! interpreter released, receiving progress, streamed text and the result as events. A wait
//! looks for Ctrl-C every 50 ms, and on it (or a callback that raises) asks the work to stop:
//! work that reports progress or text stops at its next step, other work finishes first.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glassbox::model::AnyLoaded;
use pyo3::prelude::*;

use crate::errors::Failure;

/// A piece of work for the model's thread.
type Work = Box<dyn FnOnce(&AnyLoaded) + Send>;

enum Event {
    Progress(usize, usize),
    Text(String),
    /// The work's `Result<T, Failure>`.
    Done(Box<dyn Any + Send>),
}

/// What running work tells the waiting Python thread, and how it learns to stop.
pub struct Reporter {
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
    /// Where the caller has an `on_text`, its answer to each piece: the work waits for it, so a
    /// `False` stops the generation at that very token.
    answers: Option<Receiver<bool>>,
}

impl Reporter {
    /// A method's `go_on(done, total)`: reports progress, and is false once the caller stopped.
    pub fn go_on(&self, done: usize, total: usize) -> bool {
        let _ = self.events.send(Event::Progress(done, total));
        !self.stop.load(Ordering::Relaxed)
    }

    /// Streams generated text; false once the caller stopped, or its `on_text` said `False`.
    pub fn text(&self, piece: &str) -> bool {
        let _ = self.events.send(Event::Text(piece.to_string()));
        let answered = self.answers.as_ref().is_none_or(|answers| answers.recv().unwrap_or(false));
        answered && !self.stop.load(Ordering::Relaxed)
    }
}

/// The Python callables a call reports to: `progress(done, total)` and `on_text(piece)` (a
/// `False` from it stops the generation).
#[derive(Default)]
pub struct Callbacks {
    pub progress: Option<Py<PyAny>>,
    pub on_text: Option<Py<PyAny>>,
}

pub struct Worker {
    /// Dropping it ends the thread once its current work is done.
    work: Mutex<Sender<Work>>,
}

/// The stack of the model's thread: the main thread's size, which deep attributions were
/// written for.
const STACK_BYTES: usize = 8 << 20;

impl Worker {
    /// Starts the thread, which runs `open` (with progress) and then serves work on what it
    /// opened; returns with what `open` said of the model, or its failure.
    pub fn start<T: Send + 'static>(
        py: Python<'_>,
        callbacks: &Callbacks,
        open: impl FnOnce(&Reporter) -> Result<(AnyLoaded, T), Failure> + Send + 'static,
    ) -> PyResult<(Worker, T)> {
        let (work_in, work_out) = mpsc::channel::<Work>();
        let (events, received) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let reporter = Reporter { events: events.clone(), stop: Arc::clone(&stop), answers: None };
        std::thread::Builder::new()
            .name("glassbox-model".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let opened = catch_unwind(AssertUnwindSafe(|| open(&reporter))).unwrap_or_else(|p| Err(panicked(p)));
                let (loaded, said) = match opened {
                    Ok(pair) => pair,
                    Err(failure) => {
                        let _ = events.send(Event::Done(Box::new(Err::<T, Failure>(failure))));
                        return;
                    }
                };
                let _ = events.send(Event::Done(Box::new(Ok::<T, Failure>(said))));
                drop(events);
                for work in work_out {
                    work(&loaded);
                }
            })
            .map_err(|e| Failure::internal(format!("the model's thread did not start: {e}")).into_py())?;
        let said = wait::<T>(py, received, &stop, callbacks, None)?;
        Ok((Worker { work: Mutex::new(work_in) }, said))
    }

    /// Runs `job` on the model's thread and waits for its result with the interpreter released.
    pub fn call<T: Send + 'static>(
        &self,
        py: Python<'_>,
        callbacks: &Callbacks,
        job: impl FnOnce(&AnyLoaded, &Reporter) -> Result<T, Failure> + Send + 'static,
    ) -> PyResult<T> {
        let (events, received) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (answer, answers) = match callbacks.on_text {
            Some(_) => {
                let (answer, answers) = mpsc::channel();
                (Some(answer), Some(answers))
            }
            None => (None, None),
        };
        let reporter = Reporter { events: events.clone(), stop: Arc::clone(&stop), answers };
        let work: Work = Box::new(move |loaded| {
            let result = catch_unwind(AssertUnwindSafe(|| job(loaded, &reporter))).unwrap_or_else(|p| Err(panicked(p)));
            let _ = events.send(Event::Done(Box::new(result)));
        });
        let sent = self.work.lock().map_err(|_| Failure::internal("the model's thread is gone").into_py())?.send(work);
        sent.map_err(|_| Failure::internal("the model's thread is gone").into_py())?;
        wait::<T>(py, received, &stop, callbacks, answer)
    }
}

fn panicked(payload: Box<dyn Any + Send>) -> Failure {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    Failure::internal(format!("glassbox failed inside: {what}"))
}

/// How often a wait looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Serves the events of one piece of work until it is done: progress and text go to the
/// callbacks (each text's answer back to the work through `answer`) until the caller stops it.
/// Ctrl-C, or a callback raising, asks the work to stop; no callback is called after that, and
/// the exception is raised once the work has stopped.
fn wait<T: 'static>(
    py: Python<'_>,
    received: Receiver<Event>,
    stop: &AtomicBool,
    callbacks: &Callbacks,
    answer: Option<Sender<bool>>,
) -> PyResult<T> {
    let mut received = received;
    let mut raised: Option<PyErr> = None;
    let halt = |error: Option<PyErr>, raised: &mut Option<PyErr>| {
        stop.store(true, Ordering::Relaxed);
        if raised.is_none() {
            *raised = error;
        }
    };
    let mut checked = Instant::now();
    loop {
        let (event, back) = py.detach(move || (received.recv_timeout(SIGNAL_CHECK), received));
        received = back;
        // Events may come faster than the timeout: look for Ctrl-C by the clock.
        if checked.elapsed() >= SIGNAL_CHECK {
            checked = Instant::now();
            if let Err(error) = py.check_signals() {
                halt(Some(error), &mut raised);
            }
        }
        let halted = stop.load(Ordering::Relaxed);
        match event {
            Ok(Event::Done(result)) => {
                if let Some(error) = raised {
                    return Err(error);
                }
                let result = result
                    .downcast::<Result<T, Failure>>()
                    .map_err(|_| Failure::internal("the model's thread answered with the wrong type").into_py())?;
                return (*result).map_err(Failure::into_py);
            }
            Ok(Event::Progress(done, total)) => {
                if let Some(progress) = callbacks.progress.as_ref().filter(|_| !halted) {
                    if let Err(error) = progress.call1(py, (done, total)) {
                        halt(Some(error), &mut raised);
                    }
                }
            }
            Ok(Event::Text(piece)) => {
                let go_on = match callbacks.on_text.as_ref().filter(|_| !halted) {
                    Some(on_text) => match on_text.call1(py, (piece,)) {
                        Ok(reply) => !reply.bind(py).is(&*pyo3::types::PyBool::new(py, false)),
                        Err(error) => {
                            halt(Some(error), &mut raised);
                            false
                        }
                    },
                    None => !halted,
                };
                if let Some(answer) = &answer {
                    let _ = answer.send(go_on);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(raised.unwrap_or_else(|| Failure::internal("the model's thread stopped").into_py()))
            }
        }
    }
}
