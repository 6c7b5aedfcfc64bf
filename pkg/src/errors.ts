/**
 * The names of the errors glassbox rejects with: `error.name` says which part failed and
 * `error.message` why. An error from outside glassbox (the browser's own) keeps its name.
 */

// The engine's own names: worker.ts checks at compile time that they are exactly the Rust
// `ErrorName` enum of src/web/mod.rs.
export const engineErrorNames = [
  "GgufError",
  "GpuError",
  "ImageError",
  "InputError",
  "InterpError",
  "ModelError",
  "TaskError",
  "TokenizerError",
  "VisionError",
] as const;

/** The engine's names, `LoadError` (a URL could not be fetched) and `InternalError` (the engine trapped or the worker failed). */
export const glassboxErrorNames = [...engineErrorNames, "LoadError", "InternalError"] as const;

export type EngineErrorName = (typeof engineErrorNames)[number];

export type GlassboxErrorName = (typeof glassboxErrorNames)[number];

export function glassboxError(name: GlassboxErrorName, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}
