//! Reuse of device buffers: a buffer goes back to the pool when the last tensor using it drops,
//! and the next request of the same size class and usage takes it. After the first token a
//! decode step creates no buffers. Reuse is safe without waiting: the queue runs work in
//! submission order, so a later write to a reused buffer follows every earlier read of it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Sizes round up to a power of two from this many bytes, so that a growing KV cache and
/// prompts of different lengths still find buffers to reuse.
const SMALLEST: u64 = 256;

#[derive(Default)]
pub(crate) struct Pool {
    free: RefCell<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
    created: Cell<usize>,
}

impl Pool {
    /// Buffers made so far because none of their class was free.
    pub fn created(&self) -> usize {
        self.created.get()
    }
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
        if let Some(pool) = &self.pool {
            let key = (self.buffer.size(), self.buffer.usage().bits());
            pool.free.borrow_mut().entry(key).or_default().push(self.buffer.clone());
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
