// A user's program: the package's typed API, bundled from the installed tarball.
import { Glassbox, type LoadProgress, type NextToken, type Recording } from "glassbox";

const result = document.getElementById("result") as HTMLParagraphElement;

async function main(): Promise<void> {
  const phases = new Set<LoadProgress["phase"]>();
  const gb = await Glassbox.load("/models/SmolLM2-135M-Instruct.Q4_1.gguf", { backend: "cpu", onProgress: (p) => phases.add(p.phase) });
  const top: NextToken[] = await gb.logits("The capital of France is", { topK: 3 });
  const layers: number | null = gb.info().layers;
  const recorded: Recording = await gb.record("The capital of France is", { hooks: "blocks.29.hook_resid_post", positions: "last" });
  const residShape = recorded["blocks.29.hook_resid_post"]?.shape;
  let typedError = "";
  try {
    await gb.ablate({ heads: ["99.0"] });
  } catch (e) {
    typedError = e instanceof Error ? e.name : "not an Error";
  }
  gb.dispose();
  result.textContent = JSON.stringify({ top, layers, residShape, backend: gb.backend, phases: [...phases], typedError });
  result.dataset["state"] = "ready";
}

main().catch((e: unknown) => {
  result.textContent = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  result.dataset["state"] = "error";
});
