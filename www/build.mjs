// Bundles the shell into dist/ with the wasm-bindgen output from ../pkg.
import * as esbuild from "esbuild";
import { copyFile, cp, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";

const here = new URL(".", import.meta.url);
const pkg = new URL("../pkg/", here);
const dist = new URL("dist/", here);

for (const file of ["glassbox.js", "glassbox_bg.wasm"]) {
  if (!existsSync(new URL(file, pkg))) {
    console.error(`build: ../pkg/${file} is missing; run \`make pkg\` first`);
    process.exit(1);
  }
}
await mkdir(dist, { recursive: true });
await esbuild.build({
  entryPoints: ["main", "bench"].map((name) => new URL(`src/${name}.ts`, here).pathname),
  bundle: true,
  format: "esm",
  target: "es2022",
  sourcemap: true,
  outdir: dist.pathname,
  logLevel: "warning",
});
await Promise.all([
  copyFile(new URL("index.html", here), new URL("index.html", dist)),
  copyFile(new URL("bench.html", here), new URL("bench.html", dist)),
  copyFile(new URL("style.css", here), new URL("style.css", dist)),
  copyFile(new URL("glassbox_bg.wasm", pkg), new URL("glassbox_bg.wasm", dist)),
  // The package's own entry, so tests and embedders can import it next to the page.
  copyFile(new URL("glassbox.js", pkg), new URL("glassbox.js", dist)),
  // The JS that src/web/jspi.rs inlines, imported by glassbox.js.
  cp(new URL("snippets/", pkg), new URL("snippets/", dist), { recursive: true }),
]);
console.log(`build: www/dist ready`);
