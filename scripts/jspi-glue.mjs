// Adds JS Promise Integration to wasm-bindgen's glue (see src/web/jspi.rs): imports named
// glassboxSuspending* become WebAssembly.Suspending, and `runTask` enters the wasm through
// WebAssembly.promising, so the model's synchronous code can wait for GPU reads and file slices.
// Usage: node scripts/jspi-glue.mjs pkg/NAME.js pkg/NAME.d.ts
import { readFileSync, writeFileSync } from "node:fs";

const [js, dts] = process.argv.slice(2);
let glue = readFileSync(js, "utf8");

// wasm-bindgen names the glue's own import module after the output: pkg/NAME.js imports ./NAME_bg.js.
const outName = js.split("/").pop().replace(/\.js$/, "");
const importsStart = `    return {\n        __proto__: null,\n        "./${outName}_bg.js": import0,`;
const start = glue.indexOf(importsStart);
const end = start < 0 ? -1 : glue.indexOf("\n    };\n}\n", start);
if (end < 0) {
  console.error(`jspi-glue: ${js} has no imports object where wasm-bindgen 0.2.130 puts it`);
  process.exit(1);
}
if (!glue.slice(start, end).includes("/inline0.js")) {
  console.error(`jspi-glue: ${js} imports no inline snippet (src/web/jspi.rs)`);
  process.exit(1);
}
// wasm-bindgen lists the snippet module once per function it imports; one entry suffices.
function dedupeKeys(objectSource) {
  const seen = new Set();
  return objectSource
    .split("\n")
    .filter((line) => {
      const key = line.match(/^\s+("[^"]+"):/)?.[1];
      if (key === undefined) return true;
      const repeated = seen.has(key);
      seen.add(key);
      return !repeated;
    })
    .join("\n");
}

// wasm-bindgen imports the snippet's functions directly, so the promise they return reaches the
// Suspending wrapper unconverted. Module namespaces are frozen: wrap into copies.
glue =
  glue.slice(0, start) +
  dedupeKeys(glue.slice(start, end)).replace("    return {", "    const imports = {") +
  `
    };
    if (typeof WebAssembly.Suspending === "function") {
        for (const [module, functions] of Object.entries(imports)) {
            const names = Object.keys(functions).filter((name) => name.startsWith("glassboxSuspending"));
            if (names.length === 0) continue;
            const wrapped = { ...functions };
            for (const name of names) wrapped[name] = new WebAssembly.Suspending(functions[name]);
            imports[module] = wrapped;
        }
    }
    return imports;
}
` +
  glue.slice(end + "\n    };\n}\n".length);

glue += `
let promisingRunTask;
let taskQueue = Promise.resolve();

/**
 * Runs a task that an Engine method returned and resolves to its value. Tasks run one after
 * another. Without JS Promise Integration a task runs synchronously and cannot wait for the GPU.
 */
export function runTask(task) {
    const outcome = taskQueue.then(async () => {
        task.stage();
        if (typeof WebAssembly.promising === "function" && typeof WebAssembly.Suspending === "function") {
            promisingRunTask ??= WebAssembly.promising(wasm.glassbox_run_task);
            await promisingRunTask(1);
        } else {
            wasm.glassbox_run_task(0);
        }
        return takeTaskOutcome();
    });
    taskQueue = outcome.catch(() => undefined);
    return outcome;
}
`;
writeFileSync(js, glue);

const declaration = `
/** Runs a task that an Engine method returned and resolves to its value; tasks run one after another. */
export function runTask<T = any>(task: Task): Promise<T>;
`;
const types = readFileSync(dts, "utf8");
if (!types.includes("export function runTask")) writeFileSync(dts, types + declaration);
console.log(`jspi-glue: ${js} runs tasks through JS Promise Integration`);
