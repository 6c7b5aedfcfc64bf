/** Reading model bytes from a URL the user chose, or from a local file, with progress. */

export type Progress = (loaded: number, total: number | null) => void;

/** ArrayBuffers beyond this cannot be allocated by current browsers. */
export const MAX_MODEL_BYTES = 4 * 1024 ** 3;

export class LoadError extends Error {
  override name = "LoadError";
}

function checkSize(bytes: number): void {
  if (bytes > MAX_MODEL_BYTES) {
    throw new LoadError(`the model is ${bytes} bytes; this browser build holds at most ${MAX_MODEL_BYTES}`);
  }
}

export async function fetchModel(url: string, onProgress: Progress): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new LoadError(`could not fetch ${url}: ${String(e)}`);
  }
  if (!response.ok || response.body === null) {
    throw new LoadError(`could not fetch ${url}: HTTP ${response.status} ${response.statusText}`);
  }
  const header = response.headers.get("Content-Length");
  const total = header === null ? null : Number(header);
  if (total !== null) checkSize(total);

  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    loaded += value.byteLength;
    checkSize(loaded);
    chunks.push(value);
    onProgress(loaded, total);
  }
  if (total !== null && loaded !== total) {
    throw new LoadError(`${url} ended after ${loaded} of ${total} bytes`);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

export async function readModelFile(file: File, onProgress: Progress): Promise<Uint8Array> {
  checkSize(file.size);
  onProgress(0, file.size);
  const bytes = new Uint8Array(await file.arrayBuffer());
  onProgress(bytes.byteLength, file.size);
  return bytes;
}
