//! Reuse of device buffers: a buffer goes back to the pool when the last tensor using it drops,
//! and the next request of the same size class and usage takes it. After the first token a
//! decode step creates no buffers.
//!
//! Reuse must respect the order in which the device sees work. Kernels are recorded into one
//! pending command encoder (see `GpuDevice::flush`), while `queue.write_buffer` lands before the
//! next submitted command buffer, that is before everything still pending. A buffer dropped
//! while work is pending may be read by that work, so it is retired, not freed, until the
//! pending work is submitted; only then may a write reach it. Buffers taken from the free list
//! are therefore safe to fill with `write_buffer` and to write from kernels.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Sizes round up to a power of two from this many bytes, so that a growing KV cache and
/// prompts of different lengths still find buffers to reuse.
const SMALLEST: u64 = 256;

type Class = (u64, u32);

#[derive(Default)]
pub(crate) struct Pool {
    free: RefCell<HashMap<Class, Vec<wgpu::Buffer>>>,
    /// Dropped while work was pending: free once that work is submitted.
    retired: RefCell<Vec<wgpu::Buffer>>,
    retired_bytes: Cell<u64>,
    /// Whether a command encoder holds work not yet submitted.
    pending: Cell<bool>,
    created: Cell<usize>,
}

impl Pool {
    /// Buffers made so far because none of their class was free.
    pub fn created(&self) -> usize {
        self.created.get()
    }

    /// Bytes held back until the pending work is submitted.
    pub fn retired_bytes(&self) -> u64 {
        self.retired_bytes.get()
    }

    pub fn set_pending(&self, pending: bool) {
        self.pending.set(pending);
    }

    /// The pending work has been submitted: every retired buffer is free again.
    pub fn submitted(&self) {
        self.pending.set(false);
        let mut free = self.free.borrow_mut();
        for buffer in self.retired.borrow_mut().drain(..) {
            free.entry(class_of(&buffer)).or_default().push(buffer);
        }
        self.retired_bytes.set(0);
    }
}

fn class_of(buffer: &wgpu::Buffer) -> Class {
    (buffer.size(), buffer.usage().bits())
}

/// A buffer on loan from the pool, returned when dropped; or, without a pool, a buffer of
/// exactly its size (weights, which are not worth rounding up).
pub(crate) struct Pooled {
    buffer: wgpu::Buffer,
    pool: Option<Rc<Pool>>,
}

impl Pooled {
    pub fn unpooled(buffer: wgpu::Buffer) -> Rc<Self> {
        Rc::new(Pooled { buffer, pool: None })
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(pool) = &self.pool else { return };
        if pool.pending.get() {
            pool.retired_bytes.set(pool.retired_bytes.get() + self.buffer.size());
            pool.retired.borrow_mut().push(self.buffer.clone());
        } else {
            pool.free.borrow_mut().entry(class_of(&self.buffer)).or_default().push(self.buffer.clone());
        }
    }
}

/// The size class of a request of `bytes`.
pub(crate) fn size_class(bytes: u64) -> u64 {
    bytes.max(SMALLEST).next_power_of_two()
}

/// A buffer of at least `bytes` with `usage`: a free one of its class, or a new one.
pub(crate) fn take(pool: &Rc<Pool>, device: &wgpu::Device, bytes: u64, usage: wgpu::BufferUsages) -> Rc<Pooled> {
    let size = size_class(bytes);
    let reused = pool.free.borrow_mut().get_mut(&(size, usage.bits())).and_then(Vec::pop);
    let buffer = reused.unwrap_or_else(|| {
        pool.created.set(pool.created.get() + 1);
        device.create_buffer(&wgpu::BufferDescriptor { label: Some("pooled"), size, usage, mapped_at_creation: false })
    });
    Rc::new(Pooled { buffer, pool: Some(pool.clone()) })
}
