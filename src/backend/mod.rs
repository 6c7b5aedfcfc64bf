//! Compute backends. The wgpu backend (WebGPU in the browser, Vulkan/Metal/DX12 natively) lives
//! behind the `webgpu` feature.

#[cfg(feature = "webgpu")]
pub mod webgpu;
