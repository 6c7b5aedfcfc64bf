//! The wgpu device: adapter discovery and the kernels that run on it. `layer.rs` holds the
//! tensors that stay on the device and the decoder layer's operations on them.

mod backend;
pub mod check;
mod layer;
mod pool;

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

pub use backend::{WebGpuBackend, WebGpuValue};
pub use layer::{GpuMatrix, GpuTensor, MatmulKernel};
use thiserror::Error;
use wgpu::util::DeviceExt;

use crate::backend::DeviceCounts;
use crate::gguf::GgmlType;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no WebGPU adapter is available ({0}); use the CPU backend instead")]
    NoAdapter(String),
    #[error("the WebGPU adapter refused to create a device: {0}")]
    NoDevice(String),
    #[error("reading results back from the GPU failed: {0}")]
    Readback(String),
    #[error("{len} elements exceed this kernel's limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("a {bytes}-byte buffer exceeds this adapter's binding limit of {max} bytes")]
    BindingTooLarge { bytes: usize, max: usize },
    #[error("input lengths differ: x has {x}, y has {y}")]
    LengthMismatch { x: usize, y: usize },
    #[error("the WebGPU kernels do not read {0} weights yet")]
    UnsupportedType(&'static str),
    #[error("bad shape: {0}")]
    BadShape(String),
    #[error("the GPU ran out of memory for {bytes} bytes ({detail}); the CPU backend may still hold it")]
    OutOfMemory { bytes: usize, detail: String },
}

/// An adapter, its device and queue, and the pipelines built so far.
///
/// Kernels and copies are recorded into one pending command encoder and submitted together
/// when the host needs a value ([`GpuDevice::read`]), when the buffers they free up pass
/// [`RETIRED_LIMIT`], or on [`GpuDevice::flush`]: a decoded token is one submit, not one per
/// kernel.
pub struct GpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pending: RefCell<Option<wgpu::CommandEncoder>>,
    /// The compute pass that consecutive kernels share, open on `pending` until a copy or the
    /// submit ends it.
    pass: RefCell<Option<wgpu::ComputePass<'static>>>,
    counts: Cell<DeviceCounts>,
    info: wgpu::AdapterInfo,
    pipelines: RefCell<HashMap<KernelKey, Kernel>>,
    /// Bind groups made so far, by kernel and bindings: a decode step binds the same pooled
    /// buffers to the same kernels every token.
    bind_groups: RefCell<HashMap<BindingKey, wgpu::BindGroup>>,
    /// Kernel parameters by value ([`GpuDevice::uniform`]).
    uniforms: RefCell<HashMap<Vec<u32>, wgpu::Buffer>>,
    pool: Rc<pool::Pool>,
    /// The last rotary table uploaded, `(key, cos, sin)`.
    rope_table: RefCell<Option<(crate::backend::RopeTableKey, GpuTensor, GpuTensor)>>,
    /// The most bytes one binding may hold: the adapter's `maxStorageBufferBindingSize` and
    /// `maxBufferSize`, or less (`with_binding_limit`). Weight matrices larger than this are
    /// split by rows over several buffers.
    max_binding: usize,
    /// Whether the kernels read f16 values natively (the adapter's shader-f16 feature).
    shader_f16: bool,
    /// Whether decoding's products add up their lanes with subgroup operations.
    subgroups: bool,
    /// Why the device was lost, once it has been (set by wgpu's device-lost callback).
    lost: Arc<Mutex<Option<String>>>,
}

/// A kernel's pipeline and the layout of its bindings.
type Kernel = (wgpu::ComputePipeline, wgpu::BindGroupLayout);

/// A kernel: shader, entry point and the value of its `KIND` constant where it has one.
type KernelKey = (&'static str, &'static str, Option<u32>);
/// A kernel and the buffers bound to it in order, each whole or to a size.
type BindingKey = (KernelKey, Vec<(wgpu::Buffer, Option<u64>)>);

/// `buffers` bound whole.
fn whole<'a>(buffers: &[&'a wgpu::Buffer]) -> Vec<(&'a wgpu::Buffer, Option<u64>)> {
    buffers.iter().map(|&b| (b, None)).collect()
}

/// The caches of bind groups and uniforms start again past these sizes (workloads whose shapes
/// keep changing, such as attribution over many prompts).
const CACHED_BIND_GROUPS: usize = 8192;
const CACHED_UNIFORMS: usize = 4096;

/// The most storage buffers one kernel binds (attention: q, k, v, z, probabilities).
const STORAGE_BUFFERS_PER_KERNEL: u32 = 5;
/// The most workgroup memory one kernel uses (topk.wgsl: 256 values and 256 indices).
const WORKGROUP_STORAGE_BYTES: u32 = 2 * 256 * 4;

const WORKGROUP_SIZE: u32 = 64;

/// Pending work is submitted once the buffers it has retired hold this many bytes, so that a
/// long prefill does not keep every intermediate of every layer alive.
const RETIRED_LIMIT: u64 = 64 << 20;

/// What a shader's source is compiled after.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prelude {
    None,
    /// It reads GGUF blocks: quant.wgsl's decoders and one of the two ways to read an f16
    /// (half_f16.wgsl where the adapter has shader-f16, else half_u32.wgsl).
    Blocks,
    /// A product with a weight matrix: as `Blocks`, then product.wgsl's parameters and bindings.
    Product,
    /// A product reading GGUF blocks as whole words, its f16 values out of them: half_u32.wgsl,
    /// quant.wgsl and product.wgsl.
    ProductInWords,
    /// As `Product`, then matmul.wgsl, whose functions it reuses.
    Matmul,
    /// It reduces rows over a workgroup: reduce.wgsl.
    Reduction,
}

/// Each shader's WGSL and its prelude.
const SHADERS: &[(&str, Prelude, &str)] = &[
    ("saxpy", Prelude::None, include_str!("saxpy.wgsl")),
    ("matmul", Prelude::Product, include_str!("matmul.wgsl")),
    ("matmul_blocks", Prelude::ProductInWords, include_str!("matmul_blocks.wgsl")),
    ("matvec_subgroups", Prelude::Matmul, include_str!("matvec_subgroups.wgsl")),
    ("embed", Prelude::Blocks, include_str!("embed.wgsl")),
    ("columns", Prelude::Blocks, include_str!("columns.wgsl")),
    ("elementwise", Prelude::None, include_str!("elementwise.wgsl")),
    ("rms_norm", Prelude::None, include_str!("rms_norm.wgsl")),
    ("rms", Prelude::Reduction, include_str!("rms.wgsl")),
    ("rope", Prelude::None, include_str!("rope.wgsl")),
    ("attention", Prelude::None, include_str!("attention.wgsl")),
    ("topk", Prelude::Reduction, include_str!("topk.wgsl")),
    ("logprob", Prelude::Reduction, include_str!("logprob.wgsl")),
];

/// Subgroup operations, where the adapter has them: natively only, as wgpu 30 offers them (in a
/// browser WGSL would also need `enable subgroups;`, which naga does not parse yet).
#[cfg(not(target_arch = "wasm32"))]
const SUBGROUPS: wgpu::Features = wgpu::Features::SUBGROUP;
#[cfg(target_arch = "wasm32")]
const SUBGROUPS: wgpu::Features = wgpu::Features::empty();

/// The binding of half_f16.wgsl's second view of the weights (binding 1).
const WEIGHTS_F16_BINDING: u32 = 7;

impl GpuDevice {
    /// Finds an adapter (WebGPU in a browser; Vulkan, Metal or DX12 natively) and opens a device.
    pub async fn new() -> Result<Self, GpuError> {
        // In a browser wgpu panics if neither a window nor a dedicated worker offers
        // `navigator.gpu`; ask first so that the answer is an error, not a trap.
        #[cfg(target_arch = "wasm32")]
        if !wgpu::util::is_browser_webgpu_supported().await {
            return Err(GpuError::NoAdapter("this browser exposes no navigator.gpu adapter here".into()));
        }
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions::default())
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("glassbox"),
                required_features: adapter.features() & (wgpu::Features::SHADER_F16 | SUBGROUPS),
                // Everything the adapter offers: large models need its largest bindings, and
                // attention binds five storage buffers (the downlevel defaults allow four).
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoDevice(e.to_string()))?;
        let limits = device.limits();
        if limits.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS_PER_KERNEL {
            return Err(GpuError::NoDevice(format!(
                "the adapter allows {} storage buffers per shader stage; the attention kernel binds {STORAGE_BUFFERS_PER_KERNEL}",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        if limits.max_compute_workgroup_storage_size < WORKGROUP_STORAGE_BYTES {
            return Err(GpuError::NoDevice(format!(
                "the adapter allows {} bytes of workgroup memory; the top-k kernel uses {WORKGROUP_STORAGE_BYTES}",
                limits.max_compute_workgroup_storage_size
            )));
        }
        let max_binding =
            usize::try_from(limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)).unwrap_or(usize::MAX);
        let shader_f16 = device.features().contains(wgpu::Features::SHADER_F16);
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let lost = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(format!("{reason:?}: {message}"));
        });
        Ok(GpuDevice {
            device,
            queue,
            pending: RefCell::new(None),
            pass: RefCell::new(None),
            counts: Cell::default(),
            info,
            pipelines: RefCell::new(HashMap::new()),
            bind_groups: RefCell::new(HashMap::new()),
            uniforms: RefCell::new(HashMap::new()),
            pool: Rc::default(),
            rope_table: RefCell::new(None),
            max_binding,
            shader_f16,
            subgroups,
            lost,
        })
    }

    /// Caps every binding at `bytes` (at most the adapter's own limit), as a smaller adapter
    /// would: large weight matrices then load split over several buffers.
    pub fn with_binding_limit(mut self, bytes: usize) -> Self {
        self.max_binding = self.max_binding.min(bytes);
        self
    }

    /// Blocks until the device has finished all submitted work (native only: a browser cannot
    /// block; there completion is observed through a read).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<(), GpuError> {
        self.flush();
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(drop).map_err(|e| GpuError::Readback(e.to_string()))
    }

    /// Submits, dispatches, read-backs and buffers so far: weights and parameters counted
    /// here, activation and staging buffers by the pool, which stops making them once a
    /// workload has run once.
    pub fn counts(&self) -> DeviceCounts {
        DeviceCounts {
            buffers_created: self.counts.get().buffers_created + self.pool.created() as u64,
            ..self.counts.get()
        }
    }

    fn count(&self, update: impl FnOnce(&mut DeviceCounts)) {
        let mut counts = self.counts.get();
        update(&mut counts);
        self.counts.set(counts);
    }

    /// The encoder that collects work until the next submit. A compute pass may be open on it:
    /// callers that record anything else end it first.
    fn encoder(&self) -> RefMut<'_, wgpu::CommandEncoder> {
        self.pool.set_pending(true);
        RefMut::map(self.pending.borrow_mut(), |pending| {
            pending.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()))
        })
    }

    /// The open compute pass, begun on the pending encoder if none is.
    fn compute_pass(&self) -> RefMut<'_, wgpu::ComputePass<'static>> {
        RefMut::map(self.pass.borrow_mut(), |pass| {
            pass.get_or_insert_with(|| self.encoder().begin_compute_pass(&Default::default()).forget_lifetime())
        })
    }

    /// Submits the pending work, if any; the buffers it retired become free.
    pub fn flush(&self) {
        self.pass.borrow_mut().take();
        let Some(encoder) = self.pending.borrow_mut().take() else { return };
        self.queue.submit([encoder.finish()]);
        self.count(|c| c.submits += 1);
        self.pool.submitted();
    }

    /// Reads f16 values by unpacking u32 words even where the adapter has shader-f16 (the other
    /// path, to compare the two).
    pub fn without_shader_f16(mut self) -> Self {
        self.shader_f16 = false;
        self
    }

    /// Whether the kernels read f16 values through shader-f16.
    pub fn uses_shader_f16(&self) -> bool {
        self.shader_f16
    }

    /// Whether decoding's products add up their lanes with subgroup operations.
    pub fn uses_subgroups(&self) -> bool {
        self.subgroups
    }

    /// Why the device was lost (driver reset, `destroy`, a browser reclaiming the GPU), once it
    /// has been: every later operation fails, and callers may move to the CPU.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Whether the adapter runs on the CPU (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A one-line description of the adapter, for people choosing a backend.
    pub fn description(&self) -> String {
        // Browsers hide the adapter's name; the driver string is then the most telling part.
        let name = [&self.info.name, &self.info.driver, &self.info.driver_info]
            .into_iter()
            .find(|s| !s.is_empty())
            .map_or("adapter details withheld by the browser", String::as_str);
        format!("{name} ({:?}, {:?})", self.info.backend, self.info.device_type)
    }

    /// BLAS saxpy, `a·x + y`, computed on the GPU. The device self-check runs it against values
    /// computed independently on the CPU.
    pub async fn saxpy(&self, a: f32, x: &[f32], y: &[f32]) -> Result<Vec<f32>, GpuError> {
        if x.len() != y.len() {
            return Err(GpuError::LengthMismatch { x: x.len(), y: y.len() });
        }
        let max = (self.device.limits().max_compute_workgroups_per_dimension as usize)
            .saturating_mul(WORKGROUP_SIZE as usize)
            .min(self.max_binding / 4);
        if x.len() > max {
            return Err(GpuError::TooLarge { len: x.len(), max });
        }
        if x.is_empty() {
            return Ok(Vec::new());
        }
        let len = x.len() as u32;
        let params: [u32; 2] = [a.to_bits(), len];
        let params = self.buffer("saxpy params", bytemuck::cast_slice(&params), wgpu::BufferUsages::UNIFORM);
        let x_buf = self.buffer("saxpy x", bytemuck::cast_slice(x), wgpu::BufferUsages::STORAGE);
        let y_buf =
            self.buffer("saxpy y", bytemuck::cast_slice(y), wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
        self.dispatch("saxpy", "main", &[&params, &x_buf, &y_buf], (len.div_ceil(WORKGROUP_SIZE), 1, 1));
        Ok(self.read_back(&[(&y_buf, 4 * x.len() as u64)]).await?.remove(0))
    }

    /// `x · Wᵀ` for `x: [t, cols]` and `W: [rows, cols]` given in its GGUF encoding (F32, F16,
    /// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), dequantised in registers, never into an f32 copy. Uploads both and
    /// reads the product back: the self-contained form of [`GpuDevice::linear`].
    pub async fn matmul(
        &self,
        ggml_type: GgmlType,
        weights: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        let w = self.matrix(ggml_type, weights, rows, cols)?;
        if x.len() % cols != 0 {
            return Err(GpuError::BadShape(format!("{} inputs are not whole rows of {cols}", x.len())));
        }
        if x.is_empty() || rows == 0 {
            return Ok(Vec::new());
        }
        let x = self.upload(x.len() / cols, cols, x)?;
        self.read(&self.linear(&x, &w)?).await
    }

    /// A pooled buffer of at least `bytes`.
    fn take(&self, bytes: u64, usage: wgpu::BufferUsages) -> Rc<pool::Pooled> {
        if self.pool.retired_bytes() > RETIRED_LIMIT {
            self.flush();
        }
        pool::take(&self.pool, &self.device, bytes, usage)
    }

    /// A pooled buffer holding `contents` (padded to whole words).
    fn filled(&self, contents: &[u8], usage: wgpu::BufferUsages) -> Rc<pool::Pooled> {
        let buffer = self.take(contents.len().next_multiple_of(4) as u64, usage | wgpu::BufferUsages::COPY_DST);
        let mut padded = contents.to_vec();
        padded.resize(contents.len().next_multiple_of(4), 0);
        self.queue.write_buffer(buffer.buffer(), 0, &padded);
        buffer
    }

    /// A storage buffer holding `bytes` (padded to whole u32 words), written straight from the
    /// slice: in a browser a mapped buffer would stage another copy in wasm memory, and a model
    /// streamed onto the GPU must keep at most one tensor there.
    fn weights(&self, bytes: &[u8]) -> wgpu::Buffer {
        self.count(|c| c.buffers_created += 1);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("weights"),
            size: bytes.len().next_multiple_of(4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let whole_words = bytes.len() - bytes.len() % 4;
        if whole_words > 0 {
            self.queue.write_buffer(&buffer, 0, &bytes[..whole_words]);
        }
        if whole_words < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole_words].copy_from_slice(&bytes[whole_words..]);
            self.queue.write_buffer(&buffer, whole_words as u64, &tail);
        }
        buffer
    }

    fn buffer(&self, label: &str, contents: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.count(|c| c.buffers_created += 1);
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage })
    }

    /// The pipeline of `shader`'s entry point `entry` and its bind group layout, built on first
    /// use; `kind` sets the shader's `KIND` constant, where it has one.
    fn pipeline(&self, shader: &'static str, entry: &'static str, kind: Option<u32>) -> Kernel {
        if let Some(built) = self.pipelines.borrow().get(&(shader, entry, kind)) {
            return built.clone();
        }
        let constants: Vec<(&str, f64)> = kind.map(|kind| ("KIND", f64::from(kind))).into_iter().collect();
        let source = self.source(shader);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
            cache: None,
        });
        let built = (pipeline.clone(), pipeline.get_bind_group_layout(0));
        self.pipelines.borrow_mut().insert((shader, entry, kind), built.clone());
        built
    }

    /// `shader`'s whole WGSL source.
    fn source(&self, shader: &str) -> String {
        let (_, prelude, body) =
            SHADERS.iter().find(|(name, _, _)| *name == shader).expect("every shader is in SHADERS");
        let half = if self.shader_f16 { include_str!("half_f16.wgsl") } else { include_str!("half_u32.wgsl") };
        let (quant, product) = (include_str!("quant.wgsl"), include_str!("product.wgsl"));
        // `enable` (in half_f16.wgsl) must come first in a module.
        match prelude {
            Prelude::None => body.to_string(),
            Prelude::Reduction => [include_str!("reduce.wgsl"), body].concat(),
            Prelude::Blocks => [half, quant, body].concat(),
            Prelude::Product => [half, quant, product, body].concat(),
            Prelude::ProductInWords => [include_str!("half_u32.wgsl"), quant, product, body].concat(),
            Prelude::Matmul => [half, quant, product, include_str!("matmul.wgsl"), body].concat(),
        }
    }

    /// Whether `shader` reads f16 values through half_f16.wgsl's binding, where the adapter has
    /// shader-f16.
    fn binds_f16_weights(shader: &str) -> bool {
        SHADERS.iter().any(|(name, prelude, _)| {
            *name == shader && matches!(prelude, Prelude::Blocks | Prelude::Product | Prelude::Matmul)
        })
    }

    /// Runs `shader`'s `entry` with `buffers` bound in order to group 0, over `groups`
    /// workgroups.
    fn dispatch(&self, shader: &'static str, entry: &'static str, buffers: &[&wgpu::Buffer], groups: (u32, u32, u32)) {
        self.dispatch_kernel(shader, entry, None, &whole(buffers), groups);
    }

    /// [`dispatch`](Self::dispatch) with bindings that may cover only the first bytes of their
    /// buffer, so that `arrayLength` in the kernel reads that size.
    fn dispatch_sized(
        &self,
        shader: &'static str,
        entry: &'static str,
        buffers: &[(&wgpu::Buffer, Option<u64>)],
        groups: (u32, u32, u32),
    ) {
        self.dispatch_kernel(shader, entry, None, buffers, groups);
    }

    /// [`dispatch`](Self::dispatch) of a shader whose `KIND` constant is set to `kind` (the
    /// weights' ggml type).
    fn dispatch_kind(
        &self,
        shader: &'static str,
        entry: &'static str,
        kind: u32,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) {
        self.dispatch_kernel(shader, entry, Some(kind), &whole(buffers), groups);
    }

    fn dispatch_kernel(
        &self,
        shader: &'static str,
        entry: &'static str,
        kind: Option<u32>,
        buffers: &[(&wgpu::Buffer, Option<u64>)],
        (x, y, z): (u32, u32, u32),
    ) {
        let (pipeline, layout) = self.pipeline(shader, entry, kind);
        let key: BindingKey = ((shader, entry, kind), buffers.iter().map(|&(b, size)| (b.clone(), size)).collect());
        let cached = self.bind_groups.borrow().get(&key).cloned();
        let bind_group = cached.unwrap_or_else(|| {
            fn binding(buffer: &wgpu::Buffer, size: Option<u64>) -> wgpu::BindingResource<'_> {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: 0,
                    size: size.and_then(std::num::NonZeroU64::new),
                })
            }
            let mut entries: Vec<wgpu::BindGroupEntry> = buffers
                .iter()
                .enumerate()
                .map(|(i, &(b, size))| wgpu::BindGroupEntry { binding: i as u32, resource: binding(b, size) })
                .collect();
            if self.shader_f16 && Self::binds_f16_weights(shader) {
                let (weights, size) = buffers[1];
                entries.push(wgpu::BindGroupEntry { binding: WEIGHTS_F16_BINDING, resource: binding(weights, size) });
            }
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &entries,
            });
            let mut groups = self.bind_groups.borrow_mut();
            if groups.len() >= CACHED_BIND_GROUPS {
                groups.clear();
            }
            groups.insert(key, bind_group.clone());
            bind_group
        });
        let mut pass = self.compute_pass();
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, z);
        drop(pass);
        self.count(|c| c.dispatches += 1);
    }

    /// Records a copy of `bytes` from `source` at `from` to `target` at `to`.
    fn copy(&self, source: &wgpu::Buffer, from: u64, target: &wgpu::Buffer, to: u64, bytes: u64) {
        self.pass.borrow_mut().take();
        self.encoder().copy_buffer_to_buffer(source, from, target, to, bytes);
    }

    /// The first `bytes` of each `source` (a multiple of 4), copied to the host through one
    /// pooled staging buffer: one read-back however many sources.
    async fn read_back(&self, sources: &[(&wgpu::Buffer, u64)]) -> Result<Vec<Vec<f32>>, GpuError> {
        let bytes: u64 = sources.iter().map(|&(_, bytes)| bytes).sum();
        if bytes == 0 {
            return Ok(vec![Vec::new(); sources.len()]);
        }
        let staging = self.take(bytes, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let staging = staging.buffer();
        let mut at = 0;
        for &(source, size) in sources {
            self.copy(source, 0, staging, at, size);
            at += size;
        }
        self.flush();
        self.count(|c| {
            c.readbacks += 1;
            c.readback_bytes += bytes;
        });

        let (sender, receiver) = futures_channel::oneshot::channel();
        staging.slice(..bytes).map_async(wgpu::MapMode::Read, move |result| {
            // The receiver only disappears if the caller's future was dropped; nothing to report.
            let _ = sender.send(result);
        });
        // Natively the map callback fires only while the device is polled; in a browser the
        // event loop drives it and this returns at once.
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
        receiver
            .await
            .map_err(|_| GpuError::Readback("the device was lost before mapping finished".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let view = staging.slice(..bytes).get_mapped_range().map_err(|e| GpuError::Readback(e.to_string()))?;
        let mut at = 0;
        let values = sources
            .iter()
            .map(|&(_, size)| {
                let range = at as usize..(at + size) as usize;
                at += size;
                bytemuck::cast_slice(&view[range]).to_vec()
            })
            .collect();
        drop(view);
        staging.unmap();
        Ok(values)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Runs on whatever adapter the machine has; in CI that is Mesa's lavapipe (software Vulkan).
    #[test]
    fn saxpy_matches_the_cpu() {
        let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter (install mesa-vulkan-drivers)");
        let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.25).collect();
        let y: Vec<f32> = (0..1000).map(|i| 3.0 - i as f32).collect();
        let out = pollster::block_on(gpu.saxpy(-2.0, &x, &y)).unwrap();
        let expected: Vec<f32> = x.iter().zip(&y).map(|(x, y)| -2.0 * x + y).collect();
        assert_eq!(out, expected, "on {}", gpu.description());
    }

    #[test]
    fn saxpy_rejects_mismatched_lengths() {
        let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter");
        let err = pollster::block_on(gpu.saxpy(1.0, &[1.0, 2.0], &[1.0])).unwrap_err();
        assert!(matches!(err, GpuError::LengthMismatch { x: 2, y: 1 }));
    }
}
