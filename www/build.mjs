// Builds the npm package's JavaScript and types into ../pkg (from pkg/src and the wasm-bindgen
// output) and the shell into dist/; `--package-only` or `--shell-only` builds one of them.
import * as esbuild from "esbuild";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = new URL(".", import.meta.url);
const pkg = new URL("../pkg/", here);
const dist = new URL("dist/", here);
const path = (url) => fileURLToPath(url);

for (const file of ["glassbox.js", "glassbox_bg.wasm", "glassbox-threads.js", "glassbox-threads_bg.wasm"]) {
  if (!existsSync(new URL(file, pkg))) {
    console.error(`build: ../pkg/${file} is missing; run \`make pkg\` first`);
    process.exit(1);
  }
}

const common = { bundle: true, format: "esm", target: "es2022", logLevel: "warning" };
const only = process.argv.find((a) => a.endsWith("-only"));
if (only !== "--shell-only") await buildPackage();
if (only === "--package-only") process.exit(0);

async function buildPackage() {
  // A chunk's name changes with its content: drop the previous build's.
  for (const old of (await readdir(pkg)).filter((f) => f.startsWith("chunk-"))) await rm(new URL(old, pkg));
  // The API and the elements share one chunk, so both see the same worker.
  const api = ["index", "elements"].map((name) => path(new URL(`src/${name}.ts`, pkg)));
  await esbuild.build({ ...common, entryPoints: api, splitting: true, outdir: path(pkg) });
  // The worker carries the wasm-bindgen glue; glassbox_bg.wasm sits beside it. worker-threads.js
  // is the same worker on the build with shared memory (glassbox-threads.js), whose kernel
  // threads run kernel-worker.js.
  const worker = path(new URL("src/worker.ts", pkg));
  await esbuild.build({ ...common, entryPoints: [worker], outdir: path(pkg) });
  const threaded = {
    name: "threaded",
    setup(build) {
      build.onResolve({ filter: /^\.\.\/glassbox\.js$/ }, () => ({ path: path(new URL("glassbox-threads.js", pkg)) }));
      build.onResolve({ filter: /^\.\/threads\.js$/ }, () => ({ path: path(new URL("src/threads-shared.ts", pkg)) }));
    },
  };
  await esbuild.build({ ...common, entryPoints: { "worker-threads": worker }, outdir: path(pkg), plugins: [threaded] });
  await esbuild.build({ ...common, entryPoints: [path(new URL("src/kernel-worker.ts", pkg))], outdir: path(pkg) });
  const tsc = path(new URL("node_modules/.bin/tsc", here));
  for (const config of ["tsconfig.json", "tsconfig.worker.json"]) execFileSync(tsc, ["-p", path(new URL(config, pkg))], { stdio: "inherit" });
  console.log("build: pkg/ has index.js, elements.js, worker.js, worker-threads.js, kernel-worker.js and their types");
}

await mkdir(dist, { recursive: true });
// The package's chunks are copied below under names that change with their content: drop the
// previous build's, which the service worker would otherwise keep.
for (const old of (await readdir(dist)).filter((f) => f.startsWith("chunk-"))) await rm(new URL(old, dist));
await esbuild.build({
  ...common,
  entryPoints: ["main", "bench"].map((name) => path(new URL(`src/${name}.ts`, here))),
  sourcemap: true,
  outdir: path(dist),
});
await Promise.all([
  ...["index.html", "elements.html", "bench.html", "style.css", "manifest.webmanifest", "icon.svg"].map((file) => copyFile(new URL(file, here), new URL(file, dist))),
  // The package itself, so pages and tests can import it (and its elements) beside the shell.
  ...(await readdir(pkg)).filter((f) => f.endsWith(".js") || f.endsWith(".wasm")).map((file) => copyFile(new URL(file, pkg), new URL(file, dist))),
  // The JS that src/web/jspi.rs inlines, imported by glassbox.js (which the bench page uses).
  cp(new URL("snippets/", pkg), new URL("snippets/", dist), { recursive: true }),
]);
await writeServiceWorker();
console.log(`build: www/dist ready`);

/**
 * dist/sw.js: www/sw.js with the shell's files (the page, its script, style, manifest and icon,
 * and the engine the worker loads) and a version from their contents, so each build's cache
 * replaces the last.
 */
async function writeServiceWorker() {
  const files = (await readdir(dist)).filter(
    (f) => (f.endsWith(".js") || f.endsWith(".wasm") || f.endsWith(".css") || f.endsWith(".webmanifest") || f.endsWith(".svg"))
      && !f.startsWith("bench") && f !== "sw.js",
  );
  files.push("index.html");
  const snippets = await readdir(new URL("snippets/", dist), { recursive: true, withFileTypes: true });
  for (const entry of snippets.filter((e) => e.isFile())) files.push(relative(path(dist), join(entry.parentPath, entry.name)));
  files.sort();
  const hash = createHash("sha256");
  for (const file of files) hash.update(file).update(await readFile(new URL(file, dist)));
  const assets = ["./", ...files.map((f) => `./${f}`)];
  const header = `const VERSION = ${JSON.stringify(hash.digest("hex").slice(0, 16))};\nconst ASSETS = ${JSON.stringify(assets)};\n\n`;
  await writeFile(new URL("sw.js", dist), header + (await readFile(new URL("sw.js", here), "utf8")));
}
