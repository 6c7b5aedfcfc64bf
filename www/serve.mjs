// Serves www/dist, the downloaded models and the test fixtures on 127.0.0.1 only, cross-origin
// isolated. Usage: node serve.mjs [PORT]
import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
  ".png": "image/png",
  ".txt": "text/plain; charset=utf-8",
  ".tsv": "text/tab-separated-values; charset=utf-8",
  ".gbx": "application/octet-stream",
  ".svg": "image/svg+xml",
  ".webmanifest": "application/manifest+json",
};

/**
 * Sent with every response, so the worker script, whose own response sets its policy, is covered
 * as well as the pages (whose meta policies narrow this one further).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  // The engine is WebAssembly, compiled in the page and in the worker.
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  // The widgets style their shadow roots with a <style> element.
  "style-src 'self' 'unsafe-inline'",
  // The image panel shows the chosen image from a blob: URL; the pages' icon is a data: URL.
  "img-src 'self' blob: data:",
  // The shell loads a model from any URL the user pastes, when its server allows it (CORS).
  "connect-src 'self' https:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Maps a URL path under one of `mounts` ({ prefix: directory }) to a file, refusing escapes. */
function locate(mounts, urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath.split("?")[0]);
  } catch {
    return null;
  }
  if (path.endsWith("/")) path += "index.html";
  for (const [prefix, dir] of Object.entries(mounts)) {
    if (!path.startsWith(prefix)) continue;
    const file = resolve(dir, "." + path.slice(prefix.length - 1));
    if (file === dir || file.startsWith(dir + sep)) return file;
  }
  return null;
}

export function startServer({ port = 0, root, models, fixtures }) {
  const mounts = { "/models/": resolve(models), "/fixtures/": resolve(fixtures), "/": resolve(root) };
  const server = createServer(async (request, response) => {
    const file = locate(mounts, request.url ?? "/");
    const info = file && (await stat(file).catch(() => null));
    response.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
    if (!info || !info.isFile() || !(extname(file) in TYPES)) {
      response.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
      return;
    }
    response.writeHead(200, {
      "Content-Type": TYPES[extname(file)],
      "Content-Length": info.size,
      "Cache-Control": "no-cache",
      "X-Content-Type-Options": "nosniff",
      // Cross-origin isolation: wasm may share memory with the page (a generation's stop flag).
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Embedder-Policy": "require-corp",
    });
    if (request.method === "HEAD") return response.end();
    createReadStream(file).pipe(response);
  });
  return new Promise((ready, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => ready(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
  const server = await startServer({ port, root: resolve(here, "dist"), models: resolve(here, "../models"), fixtures: resolve(here, "../tests/fixtures") });
  const { port: bound } = server.address();
  console.log(`glassbox demo: open http://127.0.0.1:${bound}/  (Ctrl-C to stop)`);
}
