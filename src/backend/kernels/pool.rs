//! A pool of threads that lives as long as the backend and splits each product into tasks (runs
//! of output rows) that every thread, the caller's included, claims with one atomic
//! compare-and-swap. A decoded token runs a few hundred products, so waking threads per product
//! has to cost microseconds: idle workers spin briefly on the job counter before they sleep.
//!
//! Where Rust cannot start threads (wasm, whose threads are Web Workers sharing its memory), the
//! host starts them and lends each to [`HostedWorker::run`]: a hosted pool.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

/// How many times an idle worker checks for a new job before it sleeps: about a hundred
/// microseconds, longer than the serial work between a decoded token's products. Natively each
/// check pauses (`spin_loop`, tens of cycles); wasm has no pause, so it checks more often.
const SPINS_BEFORE_SLEEP: usize = if cfg!(target_arch = "wasm32") { 100_000 } else { 4000 };

type Task = dyn Fn(usize) + Sync;

/// The task of the running job, its lifetime erased: [`ThreadPool::run`] does not return before
/// every claimed task has finished, and a worker calls it only after claiming one.
#[derive(Clone, Copy)]
struct TaskPointer(*const Task);
// SAFETY: the pointee is `Sync`, and it outlives every use (see above).
unsafe impl Send for TaskPointer {}

struct Job {
    generation: u32,
    task: Option<TaskPointer>,
    tasks: usize,
    sleepers: usize,
}

struct Shared {
    job: Mutex<Job>,
    wake: Condvar,
    /// The running job's generation (high 32 bits) and its next unclaimed task (low 32 bits):
    /// a claim from a worker still holding an older job fails on the generation.
    cursor: AtomicU64,
    /// Tasks of the running job not yet finished.
    unfinished: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            job: Mutex::new(Job { generation: 0, task: None, tasks: 0, sleepers: 0 }),
            wake: Condvar::new(),
            cursor: AtomicU64::new(0),
            unfinished: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        }
    }

    fn job(&self) -> MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims and runs tasks of job `generation` until none is left.
    fn work(&self, generation: u32, tasks: usize, task: TaskPointer) {
        loop {
            let cursor = self.cursor.load(Ordering::Acquire);
            let index = (cursor & u32::MAX as u64) as usize;
            if (cursor >> 32) as u32 != generation || index >= tasks {
                return;
            }
            if self.cursor.compare_exchange_weak(cursor, cursor + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                // SAFETY: the claimed task has not finished, so `run` is still waiting and the
                // task it lent is alive.
                let task = unsafe { &*task.0 };
                if catch_unwind(AssertUnwindSafe(|| task(index))).is_err() {
                    self.panicked.store(true, Ordering::Relaxed);
                }
                self.unfinished.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Workers the host runs on threads of its own, each in [`HostedWorker::run`].
    hosted: usize,
    /// One job at a time; a second caller meanwhile runs its tasks on its own thread.
    running: Mutex<()>,
}

impl ThreadPool {
    /// `threads` in all: the caller and `threads − 1` workers.
    pub fn new(threads: usize) -> ThreadPool {
        let shared = Arc::new(Shared::new());
        let workers = (1..threads.max(1))
            .filter_map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new().name(format!("glassbox-kernel-{i}")).spawn(move || worker(&shared)).ok()
            })
            .collect();
        ThreadPool { shared, workers, hosted: 0, running: Mutex::new(()) }
    }

    /// A pool of `threads` whose `threads − 1` workers the host starts, each calling
    /// [`HostedWorker::run`]. Tasks are claimed by whoever is there, so until they have
    /// started (or if one never does), the caller runs the rest.
    pub fn hosted(threads: usize) -> ThreadPool {
        let shared = Arc::new(Shared::new());
        ThreadPool { shared, workers: Vec::new(), hosted: threads.saturating_sub(1), running: Mutex::new(()) }
    }

    /// One of a hosted pool's workers, for a thread the host lends it.
    pub fn hosted_worker(&self) -> HostedWorker {
        HostedWorker(self.shared.clone())
    }

    /// The pool every CPU backend shares unless given its own: one thread per physical core,
    /// started on first use.
    pub fn shared() -> &'static ThreadPool {
        SHARED.get_or_init(|| ThreadPool::new(physical_cores()))
    }

    /// Makes the shared pool a [hosted](ThreadPool::hosted) one of `threads`, unless it is already
    /// in use; returns the shared pool.
    pub fn share_hosted(threads: usize) -> &'static ThreadPool {
        SHARED.get_or_init(|| ThreadPool::hosted(threads))
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + self.hosted + 1
    }

    /// Runs `task(0)`, …, `task(tasks − 1)` across the pool and returns when all have finished.
    pub fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        let guard = match self.running.try_lock() {
            Ok(guard) if self.threads() > 1 && tasks > 1 => guard,
            _ => return (0..tasks).for_each(task),
        };
        assert!(tasks <= u32::MAX as usize, "a product split into more than 2^32 tasks");
        // SAFETY: erases the borrow's lifetime only; see `TaskPointer`.
        let pointer = TaskPointer(unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Task>(task as *const _)
        });
        let generation = {
            let mut job = self.shared.job();
            job.generation = job.generation.wrapping_add(1);
            job.task = Some(pointer);
            job.tasks = tasks;
            self.shared.unfinished.store(tasks, Ordering::Relaxed);
            self.shared.cursor.store((job.generation as u64) << 32, Ordering::Release);
            if job.sleepers > 0 {
                self.shared.wake.notify_all();
            }
            job.generation
        };
        self.shared.work(generation, tasks, pointer);
        let mut spins = 0usize;
        while self.shared.unfinished.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < SPINS_BEFORE_SLEEP {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        self.shared.job().task = None;
        drop(guard);
        if self.shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a kernel task panicked on a pool thread");
        }
    }

    /// `[f(0), …, f(n − 1)]`, computed across the pool.
    pub fn map<T: Send>(&self, n: usize, f: &(dyn Fn(usize) -> T + Sync)) -> Vec<T> {
        let cells: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
        self.run(n, &|i| *cells[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(f(i)));
        cells
            .into_iter()
            .map(|cell| cell.into_inner().unwrap_or_else(PoisonError::into_inner).expect("every task ran"))
            .collect()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _job = self.shared.job();
            self.shared.wake.notify_all();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

static SHARED: OnceLock<ThreadPool> = OnceLock::new();

/// A worker of a [hosted](ThreadPool::hosted) pool.
pub struct HostedWorker(Arc<Shared>);

impl HostedWorker {
    /// Takes the pool's tasks on the calling thread until the pool is dropped.
    pub fn run(self) {
        worker(&self.0)
    }
}

fn worker(shared: &Shared) {
    let mut seen = 0u32;
    loop {
        let mut spins = 0usize;
        let (generation, tasks, task) = loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            if (shared.cursor.load(Ordering::Acquire) >> 32) as u32 != seen {
                let job = shared.job();
                match job.task {
                    Some(task) if job.generation != seen => break (job.generation, job.tasks, task),
                    _ => seen = job.generation,
                }
                continue;
            }
            spins += 1;
            if spins < SPINS_BEFORE_SLEEP {
                std::hint::spin_loop();
                continue;
            }
            let mut job = shared.job();
            job.sleepers += 1;
            while job.generation == seen && !shared.shutdown.load(Ordering::Acquire) {
                job = shared.wake.wait(job).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            job.sleepers -= 1;
            spins = 0;
        };
        shared.work(generation, tasks, task);
        seen = generation;
    }
}

/// Physical cores this process may use: the logical CPUs it may run on, less SMT siblings where
/// the system says which they are (Linux).
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_os = "linux")]
    {
        let siblings: std::collections::BTreeSet<String> = std::fs::read_dir("/sys/devices/system/cpu")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix("cpu").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("topology/thread_siblings_list")).ok())
            .collect();
        if !siblings.is_empty() {
            return logical.min(siblings.len());
        }
    }
    logical
}
