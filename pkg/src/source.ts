/** Turning what a caller hands in (a URL, a file, bytes, parts) into a `Blob`, with progress. */

import type { ModelCache } from "./cache.js";
import type { GlassboxErrorName } from "./errors.js";

/** A model: a URL, a `File` or `Blob`, bytes, or the parts of a file over 2 GB in order. */
export type ModelSource = string | URL | Blob | ArrayBuffer | ArrayBufferView | ModelSource[];

export interface LoadProgress {
  /** `download`: bytes arriving over the network; `load`: weights going into the engine. */
  phase: "download" | "load";
  loaded: number;
  /** Null when the server did not say how large the file is. */
  total: number | null;
}

/**
 * Whether to keep a downloaded model on this device: `"ask"` (the default) calls `askToCache`,
 * loads the model meanwhile, and stores it only on a yes (nothing without an `askToCache`);
 * `"never"` and `"always"` do not ask.
 */
export type CachePolicy = "ask" | "always" | "never";

export interface FetchOptions {
  onProgress?: ((progress: LoadProgress) => void) | undefined;
  cache?: CachePolicy | undefined;
  /** `name` is `url` as it may be shown: without its query, fragment or credentials. */
  askToCache?: ((model: { url: string; name: string; bytes: number }) => boolean | Promise<boolean>) | undefined;
  /** Called once a downloaded model has been stored in the cache. */
  onCached?: ((url: string) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export class LoadError extends Error {
  override name: GlassboxErrorName = "LoadError";
}

/** A URL without what may hold a signed URL's secrets (its query, fragment and credentials). */
export function shownUrl(url: string | URL): string {
  let shown: URL;
  try {
    shown = new URL(String(url), globalThis.location?.href);
  } catch {
    // Text that is no URL is named in an error message, still without what follows a `?` or `#`.
    return String(url).replace(/[?#].*$/s, "");
  }
  shown.search = "";
  shown.hash = "";
  shown.username = "";
  shown.password = "";
  return shown.href;
}

/** A readable name: a URL's last path segment or a file's name. */
export function sourceName(source: ModelSource): string | undefined {
  if (typeof source === "string" || source instanceof URL) {
    const path = new URL(String(source), globalThis.location?.href).pathname;
    return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1)) || undefined;
  }
  if (typeof File !== "undefined" && source instanceof File) return source.name;
  return undefined;
}

/** `fetch`, with a failed request or an HTTP error status as a `LoadError`. */
async function fetchOk(url: string, signal?: AbortSignal): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, signal ? { signal } : {});
  } catch (e) {
    throw new LoadError(`could not fetch ${shownUrl(url)}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!response.ok) throw new LoadError(`could not fetch ${shownUrl(url)}: HTTP ${response.status} ${response.statusText}`.trimEnd());
  return response;
}

async function download(url: string, options: FetchOptions): Promise<Blob> {
  const response = await fetchOk(url, options.signal);
  if (response.body === null) throw new LoadError(`${shownUrl(url)} has no body`);
  const header = response.headers.get("Content-Length");
  const total = header === null ? null : Number(header);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    options.onProgress?.({ phase: "download", loaded, total });
  }
  if (total !== null && loaded !== total) throw new LoadError(`${shownUrl(url)} ended after ${loaded} of ${total} bytes`);
  return new Blob(chunks as BlobPart[]);
}

/** The model as one `Blob`; a URL is read from the cache when there, else downloaded. */
export async function toBlob(source: ModelSource, cache: ModelCache, options: FetchOptions = {}): Promise<Blob> {
  if (Array.isArray(source)) {
    const parts: Blob[] = [];
    for (const part of source) parts.push(await toBlob(part, cache, options));
    return new Blob(parts);
  }
  if (source instanceof Blob) return source;
  if (source instanceof ArrayBuffer) return new Blob([source]);
  if (ArrayBuffer.isView(source)) return new Blob([source as ArrayBufferView<ArrayBuffer>]);
  const url = new URL(String(source), globalThis.location?.href).href;
  const policy = options.cache ?? "ask";
  if (policy !== "never") {
    const cached = await cache.get(url).catch(() => null);
    if (cached !== null) {
      options.onProgress?.({ phase: "download", loaded: cached.size, total: cached.size });
      return cached;
    }
  }
  const blob = await download(url, options);
  const store = async () => {
    await cache.put(url, blob);
    options.onCached?.(url);
  };
  if (policy === "always") {
    await store();
  } else if (policy === "ask" && options.askToCache !== undefined) {
    // The model loads while the user decides.
    const answer = Promise.resolve(options.askToCache({ url, name: shownUrl(url), bytes: blob.size }));
    void answer.then((yes) => (yes ? store() : undefined)).catch((e: unknown) => console.error("glassbox: caching failed", e));
  }
  return blob;
}

/** Image bytes (PNG or JPEG) from a `Blob`, a URL, or `ImageData` (encoded as PNG here). */
export async function imageBytes(image: Blob | ImageData | string | URL): Promise<Uint8Array> {
  if (typeof ImageData !== "undefined" && image instanceof ImageData) {
    const canvas = new OffscreenCanvas(image.width, image.height);
    const context = canvas.getContext("2d");
    if (context === null) throw new LoadError("this browser cannot draw ImageData to encode it");
    context.putImageData(image, 0, 0);
    image = await canvas.convertToBlob({ type: "image/png" });
  }
  if (image instanceof Blob) return new Uint8Array(await image.arrayBuffer());
  return new Uint8Array(await (await fetchOk(String(image))).arrayBuffer());
}

/** Text from a URL or a `Blob`. */
export async function textOf(source: string | URL | Blob): Promise<string> {
  if (source instanceof Blob) return source.text();
  return (await fetchOk(String(source))).text();
}

/** Bytes from a URL, a `Blob` or bytes. */
export async function bytesOf(source: string | URL | Blob | ArrayBuffer | Uint8Array): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (source instanceof Blob) return new Uint8Array(await source.arrayBuffer());
  return new Uint8Array(await (await fetchOk(String(source))).arrayBuffer());
}
