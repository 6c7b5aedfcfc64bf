#!/usr/bin/env python3
"""`make bench`: glassbox against llama.cpp and candle's quantized_llama natively (1 and 2 threads),
and its wasm build against wllama in headless Chromium, in one run, on the same GGUF and prompts
(shared/peers/prompts). Writes BENCHMARKS.md.

glassbox and candle are the plain `cargo build --release` a user makes (no target-cpu flags:
glassbox picks its SIMD kernels at run time); llama.cpp is built for this CPU (GGML_NATIVE).
All are timed the same way: prefill of the 256-token prompt in one batch, and 128 greedy decode
steps after the short prompt, best of 3 after a warm-up. Peak RSS is the child process's
ru_maxrss, measured the same way for all three.
"""
import datetime
import json
import math
import os
import pathlib
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "peers"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = ROOT / "models" / "gemma3" / "gemma-3-270m-q4_k_m.gguf"
PEERS_VENV = ROOT / ".venv-peers"
# Its own target directory, so a bench never waits on the tests' build; CARGO_TARGET_DIR points
# it at another one (the plain `cargo build --release` of target/, the same profile and flags).
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target" / "bench"))
THREADS = [1, 2]


def run(cmd, env=None):
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def measured(cmd, env):
    """Runs cmd in a fresh wrapper so its ru_maxrss is its own; returns (json output, peak MB)."""
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True).stdout\n"
        "print(json.dumps({'out': out, 'rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
    )
    result = subprocess.run([sys.executable, "-c", wrapper, *map(str, cmd)], check=True, capture_output=True,
                            text=True, cwd=ROOT, env=env)
    wrapped = json.loads(result.stdout)
    last_line = wrapped["out"].strip().splitlines()[-1]
    return json.loads(last_line), wrapped["rss_kb"] / 1024


LLAMA_CPP_CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
                        "-DGGML_AVX512=OFF")


def ensure_peers():
    python = PEERS_VENV / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import llama_cpp, numpy"], capture_output=True) if python.exists() else None
    if probe is not None and probe.returncode == 0:
        return python
    print("bench: building llama-cpp-python 0.3.36 from source (about 10 minutes on 2 cores)", flush=True)
    run([sys.executable, "-m", "venv", str(PEERS_VENV)])
    # AVX2 named explicitly, not GGML_NATIVE: native builds die in their first eval on the
    # AVX-512/AMX Xeons these machines run on (shared/peers/README.md), and AVX2 is what
    # glassbox's own kernels use.
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2",
               CMAKE_ARGS=LLAMA_CPP_CMAKE_ARGS)
    run([str(python), "-m", "pip", "install", "--quiet", "llama-cpp-python==0.3.36", "numpy"], env=env)
    return python


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_seconds(glassbox, *args):
    """Wall seconds of one `glassbox --backend cpu ARGS` run, its model load included."""
    start = time.perf_counter()
    subprocess.run([str(glassbox), "--backend", "cpu", *map(str, args)], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def served(server_cmd, cwd, client):
    """Serves `cwd` on a free loopback port and runs the node script `client(origin)` against
    it: the JSON of its last line, or `{"error": ...}` when it fails."""
    port = free_port()
    server = subprocess.Popen([*server_cmd, str(port)], cwd=cwd, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        out = subprocess.run(["node", *client(f"http://127.0.0.1:{port}")], capture_output=True, text=True, cwd=ROOT / "www")
        lines = out.stdout.strip().splitlines()
        try:
            reported = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            reported = {}
        if out.returncode != 0:
            # The client's own account of what failed, where it gave one before it died.
            return {"error": reported.get("error") or out.stderr.strip()[-300:]}
        return reported
    finally:
        server.terminate()
        server.wait()


def browser_result(server_cmd, cwd, url_path, timeout_ms=1200000):
    """The #result JSON a page writes, or `{"error": ...}` when it writes none within `timeout_ms`."""
    result = served(server_cmd, cwd, lambda origin: [str(ROOT / "www" / "bench-run.mjs"), f"{origin}/{url_path}", str(timeout_ms)])
    if "error" in result:
        result["error"] = f"no result within {timeout_ms / 1000:.0f} s: {result['error']}"
    return result


SHELL_TITLE = "## In the browser, as a user meets it (the shell, headless Chromium)"
SHELL_STEPS = [
    ("load_network_s", "page load to model ready, from the network (loopback: add the download at your line's speed)"),
    ("load_cache_s", "page load to model ready, from the cache (the shell from the service worker)"),
    ("first_token_s", "first token: Look inside's next-token table"),
    ("look_inside_s", "Look inside: next tokens, logit lens, head attribution with the graph"),
    ("claim_check_s", "a claim check (FMD) with its explanation and evidence"),
    ("vision_load_s", "loading the LLaVA fixture (mmproj and language model)"),
    ("heatmap_s", "an LPI patch heatmap on it"),
]


def shell_native(glassbox):
    """The same work from the release CLI, each command's wall time with its own model load."""
    prompt = "The capital of France is"
    row = (ROOT / "tests" / "data" / "fmd_claims.jsonl").read_text().splitlines()[0]
    mmproj, lm = (ROOT / "tests" / "fixtures" / f"shapes-llava-{part}.gguf" for part in ("mmproj", "lm"))

    def timed(*args):
        return cli_seconds(glassbox, *args)

    with tempfile.TemporaryDirectory() as work:
        rows, png = pathlib.Path(work) / "row.jsonl", pathlib.Path(work) / "scene.png"
        rows.write_text(row + "\n")
        scene = json.loads(subprocess.run([glassbox, "scene", "--seed", "2", "--index", "5", "--size", "96", "--png", png],
                                          check=True, capture_output=True, text=True).stdout)
        first = timed("logits", MODEL, "--prompt", prompt, "--top-k", "10")
        return {
            "first_token_s": first,
            "look_inside_s": first + timed("lens", MODEL, "--prompt", prompt, "--top-k", "3")
            + timed("attribute", MODEL, "--prompt", prompt, "--graph"),
            "claim_check_s": timed("classify", MODEL, "--task", "fmd", "--input", rows, "--output", pathlib.Path(work) / "out.jsonl",
                                   "--explain", "--evidence"),
            "heatmap_s": timed("heatmap", mmproj, lm, "--image", png, "--prompt", scene["prompt"], "--method", "lpi"),
        }


def shell_section(note=""):
    """The shell's steps timed by www/bench-shell.mjs on the release build, on the wasm CPU and on
    Chromium's WebGPU, beside the release CLI doing the same work."""
    run(["scripts/build-wasm.sh", "release"])
    run(["node", "www/build.mjs"])
    build()
    model = MODEL.relative_to(ROOT)
    runs = {backend: served(["node", "serve.mjs"], ROOT / "www", lambda origin, b=backend: ["bench-shell.mjs", origin, b, str(model)])
            for backend in ("cpu", "webgpu")}
    cpu, gpu = runs["cpu"], runs["webgpu"]
    if "error" in cpu:
        raise SystemExit(f"bench: the shell on the CPU failed: {cpu['error']}")
    native = shell_native(TARGET / "release" / "glassbox")
    cell = lambda value: "—" if value is None else f"{value:.2f}"
    # Chromium offers a software adapter where the machine has no GPU: the column says so. A failed
    # WebGPU run is reported in place of its timings rather than ending the benchmark.
    emulated = ", CPU-emulated" if "Cpu" in (gpu.get("device_detail") or "") else ""
    gpu_failed = f" The WebGPU run failed: {gpu['error']}" if "error" in gpu else ""
    return [
        SHELL_TITLE,
        "",
        f"{note}The release build `make demo` serves, driven by www/bench-shell.mjs (Playwright) in a fresh profile at "
        f"1440×900: {MODEL.name} ({MODEL.stat().st_size / 1e6:.0f} MB), the prompt \"The capital of France is\", the first "
        f"FMD claim (its explanation {cpu['explanation_words']} words on the CPU, {gpu.get('explanation_words', '—')} on WebGPU), "
        "scene 5 of the LLaVA fixture. Seconds, one run each, from the click to the result drawn. The CLI column is "
        f"the release CLI doing the same work on {os.cpu_count()} threads, each command's time with its own model load.{gpu_failed}",
        "",
        f"| step | wasm CPU ({(cpu.get('device') or '').strip()}) | Chromium WebGPU ({gpu.get('device_detail') or gpu.get('device', '').strip()}{emulated}) | native CLI |",
        "|---|---|---|---|",
        *(f"| {label} | {cell(cpu[key])} | {cell(gpu.get(key))} | {cell(native.get(key))} |" for key, label in SHELL_STEPS),
        "",
    ]


def wasm_rows():
    """glassbox's release wasm build against wllama (single-threaded), both in Chromium."""
    run(["scripts/build-wasm.sh", "release"])
    run(["node", "www/build.mjs"])
    bench_dir = ROOT / "www" / "dist" / "bench"
    bench_dir.mkdir(exist_ok=True)
    for prompt in ("short.txt", "long.txt"):
        shutil.copy(SHARED / "prompts" / prompt, bench_dir / prompt)
    ours = browser_result(["node", "serve.mjs"], ROOT / "www", "bench.html")
    ours_threaded = browser_result(["node", "serve.mjs"], ROOT / "www", "bench.html?threads=2")
    # Chromium's WebGPU adapter here is SwiftShader, on the CPU: one short repetition.
    on_gpu = browser_result(["node", "serve.mjs"], ROOT / "www", "bench.html?backend=webgpu&reps=1&steps=16")
    with tempfile.TemporaryDirectory() as peer_dir:
        shutil.copytree(SHARED / "wllama", peer_dir, dirs_exist_ok=True)
        for prompt in ("short.txt", "long.txt"):
            shutil.copy(SHARED / "prompts" / prompt, peer_dir)
        shutil.copy(MODEL, pathlib.Path(peer_dir) / "model.gguf")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], check=True, cwd=peer_dir)
        wllama = browser_result([sys.executable, "serve.py"], peer_dir, "bench.html?threads=1&reps=3")
        # wllama's threaded build has hung on these machines: its row says so rather than stop the bench.
        wllama_threaded = browser_result([sys.executable, "serve.py"], peer_dir, "bench.html?threads=2&reps=3", 300000)
    if "error" in ours or "error" in ours_threaded or "error" in wllama or "error" in on_gpu:
        raise SystemExit(f"bench: browser run failed: glassbox {ours.get('error')} / {ours_threaded.get('error')} / "
                         f"{on_gpu.get('error')}, wllama {wllama.get('error')}")
    if ours_threaded["threads"] != 2:
        raise SystemExit(f"bench: the threaded run had {ours_threaded['threads']} thread(s): {ours_threaded['fallback_reason']}")
    if on_gpu["backend"] != "webgpu":
        raise SystemExit(f"bench: Chromium offered no WebGPU adapter ({on_gpu['device']})")
    emulated = " CPU-emulated," if "Cpu" in on_gpu["device"] else ""
    peer_prefill = max(r["prompt_per_second"] for r in wllama["prefill"])
    peer_decode = max(r["predicted_per_second"] for r in wllama["decode"])
    if "error" in wllama_threaded:
        threaded_peer = [(f"wllama 3.13 in Chromium (CPU): {wllama_threaded['error']}", 2, math.nan, math.nan, math.nan, math.nan, None)]
    else:
        # What wllama says it ran: its multi-thread build needs the page to be cross-origin isolated.
        ran = f"multi-thread build: {wllama_threaded.get('isMultithread')}, threads: {wllama_threaded.get('numThreads')}"
        threaded_peer = [(f"wllama 3.13 in Chromium (CPU; {ran})", 2, max(r["prompt_per_second"] for r in wllama_threaded["prefill"]),
                          math.nan, max(r["predicted_per_second"] for r in wllama_threaded["decode"]), math.nan, None)]
        threaded_peer = [(n, t, p, p / peer_prefill, d, d / peer_decode, r) for n, t, p, _, d, _, r in threaded_peer]
    return [
        ("wllama 3.13 in Chromium (CPU)", 1, peer_prefill, 1.0, peer_decode, 1.0, None),
        ("glassbox wasm in Chromium (CPU)", 1, max(ours["prefill_tok_s"]), max(ours["prefill_tok_s"]) / peer_prefill,
         max(ours["decode_tok_s"]), max(ours["decode_tok_s"]) / peer_decode, None),
        *threaded_peer,
        ("glassbox wasm with threads in Chromium (CPU)", 2, max(ours_threaded["prefill_tok_s"]),
         max(ours_threaded["prefill_tok_s"]) / peer_prefill, max(ours_threaded["decode_tok_s"]),
         max(ours_threaded["decode_tok_s"]) / peer_decode, None),
        (f"glassbox in Chromium on WebGPU ({on_gpu['device']},{emulated} {on_gpu['decode_steps']} decode steps)", 1,
         max(on_gpu["prefill_tok_s"]), max(on_gpu["prefill_tok_s"]) / peer_prefill,
         max(on_gpu["decode_tok_s"]), max(on_gpu["decode_tok_s"]) / peer_decode, None),
    ]


def table(rows, peer):
    lines = [
        f"| engine | threads | prefill tok/s | × {peer} | decode tok/s | × {peer} | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    def shown(value, digits):
        return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    for name, threads, prefill, prefill_ratio, decode, decode_ratio, rss in rows:
        lines.append(f"| {name} | {threads} | {shown(prefill, 1)} | {shown(prefill_ratio, 2)} | {shown(decode, 1)} | "
                     f"{shown(decode_ratio, 2)} | {shown(rss, 0)} |")
    return lines


def cpu_name():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


ATTRIBUTION_PROMPT = "1+1=2\n2+3=5\n4+2=6\n3+5="


def attribution_section(note=""):
    """The cost of LPI attribution in plain forward passes of the same prompt, all threads."""
    r, _ = measured([TARGET / "release" / "glassbox", "--backend", "cpu", "bench-attribution", MODEL, "--prompt", ATTRIBUTION_PROMPT],
                    dict(os.environ))
    f, heads = r["forward_s"], r["heads_s"]
    return [
        "## Attribution, against plain forward passes",
        "",
        f"{note}Prompt: the arithmetic experiment's few-shot `3+5=` ({r['n_tokens']} tokens), "
        f"{os.cpu_count()} threads; best of 3 (the scan and exact-all: one run).",
        "",
        "| measure | seconds | ratio |",
        "|---|---|---|",
        f"| one plain forward pass | {f:.3f} | 1.0× forward |",
        f"| full attribution: layers, all heads exact, top-1000 neurons exact, positions, value and query neurons "
        f"| {r['attribution_s']:.3f} | {r['attribution_s'] / f:.1f}× forward (target ≤ 20×) |",
        f"| the same with the attribution graph ({r['n_tokens'] * 30 * 9:,} head-position edges to first order, "
        f"the strongest {r['graph_edges']:,} exact) | {r['graph_s']:.3f} | {r['graph_s'] / r['attribution_s']:.2f}× full attribution (target ≤ 2×) |",
        f"| head attribution alone (all {30 * 9} heads exact) | {heads:.3f} | {heads / f:.1f}× forward |",
        f"| head-ablation scan (one forward pass per head) | {r['scan_s']:.3f} | {r['scan_s'] / heads:.0f}× head attribution (target ≥ 50×) |",
        f"| `--exact-all` attribution (all 46,080 neurons exact) | {r['exact_all_s']:.3f} | {r['exact_all_s'] / f:.0f}× forward |",
        "",
    ]


CLAIM_SETS = [
    ("fmd", "tests/data/fmd_claims.jsonl", "FMD (60 financial claims, True/False/NEI)"),
    ("conspiracy", "tests/data/conspiracy_posts.jsonl", "ConspEmo class task (60 posts, 0/1/2)"),
]


def claims_section(note=""):
    """The claim tasks on the project's CC0 sets: SmolLM2 by label scoring, by the seeds' free
    generation and with retrieved examples, against the majority-class and MiniLM k-NN baselines,
    with the time per item. Small models are weak here; the figures are what they are."""
    glassbox = str(TARGET / "release" / "glassbox")
    work = pathlib.Path(tempfile.mkdtemp(prefix="glassbox-claims-"))

    def metrics(task, gold, pred):
        out = subprocess.run([glassbox, "evaluate", "--task", task, "--gold", gold, "--pred", str(pred)],
                             check=True, capture_output=True, text=True, cwd=ROOT).stdout
        return json.loads(out)

    def timed(cmd):
        return cli_seconds(glassbox, *cmd)

    lines = [
        "## Claim tasks, against baselines",
        "",
        f"{note}SmolLM2-135M-Instruct on the project's CC0 sets (tests/data), {os.cpu_count()} threads, "
        "release build; the seeds' `Human:` wrapper. Retrieval is MiniLM, k = 4, similarity ≥ 0.2, "
        "leave-one-domain-out. Time is wall time per item including the model load (one load per run).",
        "",
        "| task | method | accuracy | macro-F1 | s / item |",
        "|---|---|---|---|---|",
    ]
    for task, gold, title in CLAIM_SETS:
        rows = sum(1 for line in open(ROOT / gold) if line.strip())
        labels = [json.loads(line)["label"] for line in open(ROOT / gold) if line.strip()]
        majority = max(sorted(set(labels)), key=labels.count)
        majority_pred = work / f"{task}-majority.jsonl"
        majority_pred.write_text("".join(json.dumps({"id": json.loads(l)["id"], "label": majority}) + "\n"
                                         for l in open(ROOT / gold) if l.strip()))
        index = work / f"{task}.gbx"
        subprocess.run([glassbox, "index", "build", "--embedder", "minilm", "models/all-MiniLM-L6-v2", "--input", gold,
                        "--output", str(index)], check=True, cwd=ROOT, capture_output=True)
        knn = work / f"{task}-knn.jsonl"
        knn_s = timed(["index", "vote", "--index", index, "--input", gold, "--output", knn])
        results = [
            (f"majority class (`{majority}`)", metrics(task, gold, majority_pred), None),
            ("MiniLM k-NN vote (`index vote`)", metrics(task, gold, knn), knn_s / rows),
        ]
        runs = [("label scoring (`classify`)", []),
                ("label scoring with retrieved examples (`classify --retrieve`)", ["--retrieve", index]),
                ("the seed's free generation and regex (`--mode generate`, 16 tokens)", ["--mode", "generate", "--max-new-tokens", "16"])]
        for name, extra in runs:
            pred = work / f"{task}-{len(results)}.jsonl"
            seconds = timed(["classify", MODEL, "--task", task, "--input", gold, "--output", pred, *extra])
            results.append((name, metrics(task, gold, pred), seconds / rows))
        for name, m, per_item in results:
            timing = "—" if per_item is None else f"{per_item:.2f}"
            lines.append(f"| {title} | {name} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {timing} |")
        print(f"bench: claims {task} done", flush=True)
    shutil.rmtree(work)
    lines += [
        "",
        "A 135M model is weak at these tasks, and the rows say so. Free generation scores nothing",
        "when the model never writes the seeds' format (`Prediction: X`, or a bare class number);",
        "label scoring always gives a verdict, which for a model this size is mostly one label.",
        "A fine-tuned model (FMDLlama, ConspEmoLLM) runs through the same commands.",
        "",
    ]
    return lines


def explanation_quality(texts):
    """Over whitespace words, lower-cased: the share of texts in which some 4-gram occurs twice,
    distinct-2 (distinct bigrams over all bigrams, pooled) and the mean length in words."""
    words = [t.lower().split() for t in texts]
    def repeats(w):
        grams = [tuple(w[i:i + 4]) for i in range(len(w) - 3)]
        return len(grams) != len(set(grams))
    bigrams = [tuple(w[i:i + 2]) for w in words for i in range(len(w) - 1)]
    return {
        "repeated_4gram": sum(map(repeats, words)) / len(words),
        "distinct_2": len(set(bigrams)) / max(1, len(bigrams)),
        "mean_words": sum(map(len, words)) / len(words),
    }


def explanations_section(note=""):
    """FMD explanations written by plain greedy decoding (the seed's) and by the default writing
    rules (no repeated 4-token run, four sentences, one paragraph), on the 60 CC0 claims."""
    glassbox = str(TARGET / "release" / "glassbox")
    work = pathlib.Path(tempfile.mkdtemp(prefix="glassbox-explanations-"))
    gold = "tests/data/fmd_claims.jsonl"
    lines = [
        "## Claim explanations, plain greedy against the writing rules",
        "",
        f"{note}SmolLM2-135M-Instruct explaining its FMD verdict on the 60 CC0 claims (tests/data), "
        f"`classify --task fmd --explain`, 128 new tokens at most, release build, {os.cpu_count()} threads. "
        "Repeated 4-gram: the share of explanations in which some run of four words occurs twice; "
        "distinct-2: distinct word bigrams over all of them, pooled; words: the mean length.",
        "",
        "| writing | repeated 4-gram | distinct-2 | words | s / item |",
        "|---|---|---|---|---|",
    ]
    for name, flags in [("plain greedy (`--greedy-writing`, the seed's)", ["--greedy-writing"]),
                        ("the defaults (no repeated 4-token run, ≤ 4 sentences, one paragraph)", [])]:
        out = work / "explained.jsonl"
        start = time.perf_counter()
        subprocess.run([glassbox, "--backend", "cpu", "classify", MODEL, "--task", "fmd", "--input", gold,
                        "--output", str(out), "--explain", *flags], check=True, cwd=ROOT, capture_output=True)
        seconds = time.perf_counter() - start
        texts = [json.loads(line).get("explanation") or "" for line in open(out) if line.strip()]
        q = explanation_quality(texts)
        lines.append(f"| {name} | {q['repeated_4gram']:.2f} | {q['distinct_2']:.3f} | {q['mean_words']:.1f} | "
                     f"{seconds / len(texts):.2f} |")
        print(f"bench: explanations {name} done", flush=True)
    shutil.rmtree(work)
    lines.append("")
    return lines


def splice_explanations():
    """`bench.py --explanations`: re-measures only the claim-explanation section of BENCHMARKS.md."""
    build()
    splice(explanations_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --explanations`. "))


EXAM_SET = "tests/data/exam_questions.jsonl"


def exam_section(note=""):
    """EMPEC's exam on the project's CC0 question set: SmolLM2 by eval_empec's generation and
    extraction and by option-letter scoring, per profession, against the 25% chance line."""
    glassbox = str(TARGET / "release" / "glassbox")
    work = pathlib.Path(tempfile.mkdtemp(prefix="glassbox-exam-"))
    questions = [json.loads(line) for line in open(ROOT / EXAM_SET) if line.strip()]
    languages = {q["id"]: q["language"] for q in questions}
    runs = []
    for mode in ["generate", "score"]:
        replies = work / f"{mode}.jsonl"
        start = time.perf_counter()
        out = subprocess.run([glassbox, "--backend", "cpu", "exam", MODEL, "--input", EXAM_SET, "--output", str(replies),
                              "--mode", mode], check=True, capture_output=True, text=True, cwd=ROOT).stdout
        seconds = time.perf_counter() - start
        rows = [json.loads(line) for line in open(replies)]
        by_language = {}
        for row in rows:
            tally = by_language.setdefault("English" if languages[row["id"]] == "en" else "Chinese", [0, 0])
            tally[0] += 1
            tally[1] += bool(row["correct"])
        runs.append((mode, json.loads(out)["report"], by_language, seconds / len(rows)))
        print(f"bench: exam {mode} done", flush=True)
    shutil.rmtree(work)
    first = runs[0][1]
    lines = [
        "## Exam (EMPEC), against chance",
        "",
        f"{note}SmolLM2-135M-Instruct on the project's CC0 set of {first['overall']['count']} four-option questions "
        f"({EXAM_SET}: six professions, traditional Chinese and English), {os.cpu_count()} threads, release build, "
        "`glassbox exam`. `generate` is eval_empec's: the question + `\\n答案：` in the chat template, 32 greedy "
        "tokens, the letter read by its expressions (no letter counts as wrong); `score` picks the most probable of "
        "the letters A–D as the reply's start. Chance is 25%. Time is wall time per question including the model load.",
        "",
        "| mode | accuracy | Chinese | English | no answer | normalised reading | s / question |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, report, by_language, per_item in runs:
        share = lambda t: f"{t[1] / t[0]:.3f} ({t[1]}/{t[0]})"
        normalised = "—" if report.get("normalised") is None else f"{report['normalised']['accuracy']:.3f}"
        lines.append(
            f"| `{mode}` | {report['overall']['accuracy']:.3f} ({report['overall']['correct']}/{report['overall']['count']}) "
            f"| {share(by_language['Chinese'])} | {share(by_language['English'])} | {report['no_answer']} "
            f"| {normalised} | {per_item:.2f} |")
    lines += ["", "| profession | " + " | ".join(f"`{mode}`" for mode, *_ in runs) + " |", "|---|" + "---|" * len(runs)]
    for profession in first["by_profession"]:
        cells = [f"{r['by_profession'][profession]['correct']}/{r['by_profession'][profession]['count']}" for _, r, *_ in runs]
        lines.append(f"| {profession} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "A 135M model is at chance here, and the rows say so: it mostly repeats the options, so the",
        "letter read is the first option's. The same commands run any GGUF chat model.",
        "",
    ]
    return lines


def splice_exam():
    """`bench.py --exam`: re-measures only the exam section of BENCHMARKS.md."""
    build()
    splice(exam_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --exam`. "))


HARMONIC_TABLE = ("iris", "iris flowers", "target")
HARMONIC_ROWS = 30


def harmonic_section(note=""):
    """HARMONIC's synthesis from SmolLM2 against SMOTE and resampling on scikit-learn's iris
    (make setup's 80/20 split): privacy, utility and fidelity of each synthetic table."""
    glassbox = str(TARGET / "release" / "glassbox")
    name, description, label = HARMONIC_TABLE
    train, test = f"models/tables/{name}-train.csv", f"models/tables/{name}-test.csv"
    work = pathlib.Path(tempfile.mkdtemp(prefix="glassbox-harmonic-"))

    def run_json(cmd):
        return json.loads(subprocess.run([glassbox, "--backend", "cpu", *map(str, cmd)], check=True, capture_output=True,
                                         text=True, cwd=ROOT).stdout)

    rows = []
    for method in ["harmonic", "smote", "resample"]:
        synthetic = work / f"{method}.csv"
        start = time.perf_counter()
        if method == "harmonic":
            made = run_json(["harmonic", "generate", MODEL, "--input", train, "--label", label, "--n", HARMONIC_ROWS,
                             "--output", synthetic, "--description", description, "--seed", 1])
            produced = f"{made['rows']} of {made['attempts']} replies ({100 * made['rejection_rate']:.0f}% rejected)"
        else:
            run_json(["harmonic", "baseline", "--method", method, "--input", train, "--label", label, "--n",
                      HARMONIC_ROWS, "--output", synthetic, "--seed", 1])
            produced = f"{HARMONIC_ROWS}"
        seconds = time.perf_counter() - start
        scores = run_json(["harmonic", "evaluate", "--real", train, "--synthetic", synthetic, "--label", label, "--test",
                           test, "--lle-model", MODEL, "--description", description])
        rows.append((method, produced, seconds, scores))
        print(f"bench: harmonic {method} done", flush=True)
    shutil.rmtree(work)
    real = rows[0][3]["mle"]["real"]
    lines = [
        "## Tabular synthesis (HARMONIC), against SMOTE and resampling",
        "",
        f"{note}scikit-learn's {name} table ({train}: the training 80%, split by class in `make setup`; "
        f"{test} held out), {HARMONIC_ROWS} synthetic rows per method, seed 1, {os.cpu_count()} threads. `harmonic` is "
        "SmolLM2-135M-Instruct with the paper's prompt (five neighbours as JSON, temperature 0.7, no fine-tuning); "
        "`smote` interpolates within the same neighbour groups; `resample` draws real rows. DCR is each synthetic "
        "row's distance to its closest real row (standardised); MLE trains on the synthetic rows and tests on the "
        "held-out rows; LLE is SmolLM2's accuracy on them with the five nearest synthetic rows as examples. "
        f"Trained on the real rows instead, the classifiers score {real['logistic_regression']['accuracy']:.3f} "
        f"(logistic regression) and {real['random_forest']['accuracy']:.3f} (random forest).",
        "",
        "| method | rows | DCR p5 | copies | MLE logistic | MLE forest | LLE | mean KS | corr. diff | s to make |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, produced, seconds, r in rows:
        mle = r["mle"]["synthetic"]
        acc = lambda m: "—" if m.get("accuracy") is None else f"{m['accuracy']:.3f}"
        lines.append(
            f"| `{method}` | {produced} | {r['dcr_p5']:.3f} | {r['copies']:.2f} | {acc(mle['logistic_regression'])} "
            f"| {acc(mle['random_forest'])} | {r['lle']['accuracy']:.3f} | {r['fidelity']['mean_ks']:.3f} "
            f"| {r['fidelity']['correlation_mean_abs_difference']:.3f} | {seconds:.1f} |")
    copies = rows[0][3]["copies"]
    lines += [
        "",
        "Lower DCR and more copies mean less privacy: resampling is the worst case by construction. The",
        f"untuned 135M model copies an example outright in {100 * copies:.0f}% of its rows and its replies are",
        "often not a row at all; HARMONIC fine-tunes the generator on the neighbour-group instructions first.",
        "",
    ]
    return lines


def splice_harmonic():
    """`bench.py --harmonic`: re-measures only the tabular synthesis section of BENCHMARKS.md."""
    build()
    splice(harmonic_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --harmonic`. "))


def vqa_section(note=""):
    """The seed's LPI patch heatmap against the attention-mean and occlusion baselines, on the
    project's LLaVA fixture and 100 fresh scenes (stream 2; it trained on stream 1)."""
    glassbox = str(TARGET / "release" / "glassbox")
    fixtures = ROOT / "tests" / "fixtures"
    r = json.loads(subprocess.run(
        [glassbox, "--backend", "cpu", "experiment", "vqa-heatmap", str(fixtures / "shapes-llava-mmproj.gguf"),
         str(fixtures / "shapes-llava-lm.gguf"), "--seed", "2", "--n", "100", "--json"],
        check=True, capture_output=True, text=True, cwd=ROOT).stdout)
    p, d, t = r["pointing"], r["deletion_auc"], r["time_vs_forward"]
    return [
        "## LLaVA patch heatmaps, against their baselines",
        "",
        f"{note}The project's LLaVA-architecture fixture (tests/fixtures/shapes-llava-*.gguf: a 3-block "
        "ViT on 96 px images in 6×6 patches, a 2-layer llama LM with SmolLM2's vocabulary; Q8_0 LM, f16 tower) "
        f"on {r['n']} fresh scenes of the shapes task (`glassbox experiment vqa-heatmap --seed 2 --n 100`), "
        f"{os.cpu_count()} threads. Answer accuracy: {r['accuracy']:.2f}.",
        "",
        "| method | pointing game (higher is better) | deletion AUC (lower is better) | time vs one forward pass |",
        "|---|---|---|---|",
        f"| LPI through the top head (the seed's) | {p['lpi']:.2f} | {d['lpi']:.3f} | {t['lpi']:.1f}× |",
        f"| mean last-token attention (the seed's baseline) | {p['attention']:.2f} | {d['attention']:.3f} | — |",
        f"| occlusion (one pass per patch) | {p['occlusion']:.2f} | {d['occlusion']:.3f} | {t['occlusion']:.1f}× |",
        "",
        "Pointing: the share of images whose top cell overlaps the asked-about shape's box. Deletion",
        "AUC: the mean p(answer) as the top 0–50% of patches in the method's order are replaced by",
        "the mean patch embedding. The LPI map costs more than the 1.5× forward goal here because",
        "this model is 64 wide over a 49,152-token vocabulary: each exact LPI is a vocabulary-sized",
        "product, about a third of this model's whole forward pass; at llava-1.5-7b's shape (4096",
        "wide, 32 layers) the same 36 + 32·32 products are a small fraction of one forward pass.",
        "",
    ]


def splice_vqa():
    """`bench.py --vqa`: re-measures only the LLaVA heatmap section of BENCHMARKS.md."""
    build()
    splice(vqa_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --vqa`. "))


PYTHON_VENV = ROOT / ".venv-python"
RAY_RUN = r"""
import json, sys, time
import ray
import glassbox.ray
model, task, gold, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
started = time.perf_counter()
written, errors = glassbox.ray.classify(gold, model, task, output=sys.argv[5], concurrency=workers, threads=1, batch_size=8)
done = time.perf_counter()
ray.shutdown()
print(json.dumps({"start_s": started - start, "run_s": done - started, "written": written, "errors": len(errors)}))
"""


def ray_section(note=""):
    """Rows per second of `glassbox.ray.classify` with one and two workers (one kernel thread
    each) on the CC0 claim sets, against the plain CLI in one process, label scoring with
    SmolLM2. The extension module is built in release, as `pip install ./python` builds it."""
    env = dict(os.environ, VIRTUAL_ENV=str(PYTHON_VENV), PATH=f"{PYTHON_VENV / 'bin'}:{os.environ['PATH']}",
               CARGO_TARGET_DIR=str(TARGET))
    run([str(PYTHON_VENV / "bin" / "maturin"), "develop", "--release", "--quiet", "--manifest-path", "python/Cargo.toml"], env=env)
    glassbox = str(TARGET / "release" / "glassbox")
    work = pathlib.Path(tempfile.mkdtemp(prefix="glassbox-ray-"))
    lines = [
        "## Claim tasks at scale, on Ray",
        "",
        f"{note}`glassbox.ray.classify` (Ray Data, one actor per worker opening the model once, batches of 8) "
        f"on a local Ray cluster of this machine ({os.cpu_count()} cores), against `glassbox classify` in one "
        "process; SmolLM2-135M-Instruct, label scoring, release builds, one kernel thread per worker. "
        "Rows per second count the run from the call to the last row written, the model loads included; "
        "starting the cluster is timed apart.",
        "",
        "| task | engine | threads / workers | rows | rows / s | × CLI, 1 thread | cluster start s |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, gold, title in CLAIM_SETS:
        rows = sum(1 for line in open(ROOT / gold) if line.strip())
        start = time.perf_counter()
        subprocess.run([glassbox, "--backend", "cpu", "--threads", "1", "classify", MODEL, "--task", task, "--input", gold,
                        "--output", str(work / "cli.jsonl")], check=True, cwd=ROOT, capture_output=True)
        cli_rate = rows / (time.perf_counter() - start)
        lines.append(f"| {title} | `glassbox classify` | 1 | {rows} | {cli_rate:.2f} | 1.00 | — |")
        for workers in (1, 2):
            out = subprocess.run([str(PYTHON_VENV / "bin" / "python"), "-c", RAY_RUN, str(MODEL), task, gold, str(workers),
                                  str(work / "ray.jsonl")], check=True, cwd=ROOT, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            assert result["written"] == rows and result["errors"] == 0, result
            rate = rows / result["run_s"]
            lines.append(f"| {title} | `glassbox.ray.classify` | {workers} | {rows} | {rate:.2f} | "
                         f"{rate / cli_rate:.2f} | {result['start_s']:.1f} |")
        print(f"bench: ray {task} done", flush=True)
    shutil.rmtree(work)
    lines.append("")
    return lines


def splice_ray():
    """`bench.py --ray`: re-measures only the Ray section of BENCHMARKS.md."""
    build()
    splice(ray_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --ray`. "))


def splice_claims():
    """`bench.py --claims`: re-measures only the claim-task section of BENCHMARKS.md."""
    build()
    splice(claims_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --claims`. "))


def build():
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    run(["cargo", "build", "--release", "--features", "webgpu,lab,candle-peer", "--bin", "glassbox", "--example", "candle_peer_bench"], env=env)


def webgpu_section(cpu_reference, command="make bench"):
    """Each WGSL kernel's GB/s and GFLOP/s, and the WebGPU backend's tok/s against the CPU
    backend's (2 threads, measured above in this run), on whatever adapter this machine has."""
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", str(ROOT / ".tools" / "xdg-runtime")))
    pathlib.Path(env["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    glassbox = TARGET / "release" / "glassbox"
    kernels = json.loads(subprocess.run([glassbox, "bench-kernels"], check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout)
    short, long_ = SHARED / "prompts" / "short.txt", SHARED / "prompts" / "long.txt"
    model, _ = measured([glassbox, "--backend", "webgpu", "bench", MODEL, "--short", short, "--long", long_], env)
    # Gemma 3's K-quants (Q4_K, Q6_K) take matmul.wgsl's sub-block decoding, against the CPU
    # backend on the same file in the same run.
    k_quants = None
    if GEMMA3.exists():
        k_quants = [measured([glassbox, "--backend", backend, "--threads", "2", "bench", GEMMA3, "--short", short, "--long", long_],
                             dict(env, RAYON_NUM_THREADS="2"))[0] for backend in ("webgpu", "cpu")]
    emulated = kernels["software"]
    label = " (CPU-emulated)" if emulated else ""
    lines = [
        "## WebGPU kernels, natively",
        "",
        f"Adapter: {kernels['adapter']}{label}, f16 values read {'through shader-f16' if kernels['shader_f16'] else 'from u32 words'}; "
        f"measured {datetime.date.today().isoformat()} by `{command}`.",
        "",
    ]
    if emulated:
        lines += [
            "This adapter is a software one running on the CPU: the figures are CPU-emulated, not GPU results. They show",
            "that the kernels run and what they cost here; GPU figures come from scripts/gpu-check.sh (\"On a GPU\").",
            "",
        ]
    lines += [
        "GB/s counts the bytes each kernel must read and write once; average of 20 dispatches after a warm-up.",
        "",
        "| kernel | ms | GB/s | GFLOP/s |",
        "|---|---|---|---|",
        *(f"| {k['kernel']} | {k['seconds'] * 1e3:.3f} | {k['gb_s']:.2f} | {k['gflop_s']:.2f} |" for k in kernels["kernels"]),
        "",
        "| backend | prefill tok/s | × CPU backend | decode tok/s | × CPU backend |",
        "|---|---|---|---|---|",
        f"| {model['backend']}{label} | {max(model['prefill_tok_s']):.1f} | {max(model['prefill_tok_s']) / cpu_reference['prefill']:.2f} "
        f"| {max(model['decode_tok_s']):.1f} | {max(model['decode_tok_s']) / cpu_reference['decode']:.2f} |",
        f"| glassbox CPU backend, 2 threads | {cpu_reference['prefill']:.1f} | 1.00 | {cpu_reference['decode']:.1f} | 1.00 |",
        "",
    ]
    if k_quants:
        gpu, cpu = ({key: max(run[f"{key}_tok_s"]) for key in ("prefill", "decode")} for run in k_quants)
        lines += [
            f"Gemma 3 270M ({GEMMA3.name}: Q4_K, Q6_K, Q5_0 and Q8_0 tensors), the same prompts:",
            "",
            "| backend | prefill tok/s | × CPU backend | decode tok/s | × CPU backend |",
            "|---|---|---|---|---|",
            f"| {k_quants[0]['backend']}{label} | {gpu['prefill']:.1f} | {gpu['prefill'] / cpu['prefill']:.2f} "
            f"| {gpu['decode']:.1f} | {gpu['decode'] / cpu['decode']:.2f} |",
            f"| glassbox CPU backend, 2 threads | {cpu['prefill']:.1f} | 1.00 | {cpu['decode']:.1f} | 1.00 |",
            "",
        ]
    counts = model.get("per_token")
    if counts:
        lines += [
            "Device work per decoded token, counted by the backend (`per_token` in `glassbox bench`): "
            f"submits {counts['submits']:g}, dispatches {counts['dispatches']:g}, read-backs {counts['readbacks']:g} "
            f"({counts['readback_bytes']:g} bytes: greedy decoding picks the token on the device and reads back its id, its "
            f"logit and log Σ exp), buffers created {counts['buffers_created']:g}.",
            "",
        ]
    return lines


GPU_TITLE = "## On a GPU"


def splice(section):
    """Replaces the section of BENCHMARKS.md titled section[0], or adds it before the notes."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    title = section[0]
    if title in text:
        start = text.index(title)
        end = text.index("\n## ", start) + 1
        text = text[:start] + "\n".join(section).rstrip("\n") + "\n\n" + text[end:]
    else:
        text = text.replace("## Notes", "\n".join(section).rstrip("\n") + "\n\n## Notes")
    (ROOT / "BENCHMARKS.md").write_text(text)
    print("\n".join(section))


def splice_attribution():
    """`bench.py --attribution`: re-measures only the attribution section of BENCHMARKS.md."""
    build()
    splice(attribution_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --attribution`. "))


def gpu_section():
    """The section scripts/gpu-check.sh wrote on a GPU machine: `make bench` has no GPU to
    re-measure it, so it keeps the last one."""
    text = (ROOT / "BENCHMARKS.md").read_text() if (ROOT / "BENCHMARKS.md").exists() else ""
    if GPU_TITLE not in text:
        return []
    start = text.index(GPU_TITLE)
    end = text.index("\n## ", start) + 1
    return text[start:end].rstrip("\n").split("\n") + [""]


def rows_against_llama_cpp(model, with_candle):
    """glassbox and llama.cpp (and candle's quantized_llama when `with_candle`) on `model`, 1 and 2
    threads; returns the table's rows and glassbox's last report (its 2-thread figures)."""
    peers_python = ensure_peers()
    short, long_ = SHARED / "prompts" / "short.txt", SHARED / "prompts" / "long.txt"
    rows = []
    for threads in THREADS:
        thread_env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        llama, llama_rss = measured([peers_python, SHARED / "llamacpp_bench.py", model, threads], thread_env)
        ours, ours_rss = measured([TARGET / "release" / "glassbox", "--backend", "cpu", "--threads", threads, "bench", model,
                                   "--short", short, "--long", long_], thread_env)
        assert ours["n_long"] == llama["n_long"], "engines tokenised the long prompt differently"
        assert ours["threads"] == threads, f"glassbox ran {ours['threads']} threads, not {threads}"
        reference = {
            "decode": max(r["wall_tok_s"] for r in llama["decode"]),
            "prefill": max(r["wall_tok_s"] for r in llama["prefill"]),
        }
        engines = [
            (f"llama.cpp {llama['llama_cpp_python']} (llama-cpp-python, AVX2 build)", reference["decode"], reference["prefill"], llama_rss),
            (f"glassbox ({ours['kernel']} kernels)", max(ours["decode_tok_s"]), max(ours["prefill_tok_s"]), ours_rss),
        ]
        if with_candle:
            candle, candle_rss = measured([TARGET / "release" / "examples" / "candle_peer_bench", model, short, long_], thread_env)
            assert candle["n_long"] == llama["n_long"], "candle tokenised the long prompt differently"
            engines.append(("candle 0.11 quantized_llama", max(candle["decode_tok_s"]), max(candle["prefill_tok_s"]), candle_rss))
        for name, decode, prefill, rss in engines:
            rows.append((name, threads, prefill, prefill / reference["prefill"], decode, decode / reference["decode"], rss))
        print(f"bench: {model.name}, {threads} thread(s) done", flush=True)
    return rows, ours


def native_rows():
    """SmolLM2 against llama.cpp and candle; also returns glassbox's 2-thread figures, the WebGPU
    section's reference."""
    rows, ours = rows_against_llama_cpp(MODEL, with_candle=True)
    cpu_reference = {"prefill": max(ours["prefill_tok_s"]), "decode": max(ours["decode_tok_s"])}
    return rows, ours, cpu_reference


NATIVE_TITLE = "## Native, against llama.cpp"
GEMMA3_TITLE = "## Gemma 3 270M (Q4_K_M), against llama.cpp"


def gemma3_section(note=""):
    """Gemma 3 270M's prefill and decode, glassbox and llama.cpp on the same file, 1 and 2 threads:
    the K-quant (Q4_K, Q6_K), Q5_0 and Q8_0 kernels on real weights, and a 262k-token output layer."""
    rows, ours = rows_against_llama_cpp(GEMMA3, with_candle=False)
    return [
        GEMMA3_TITLE,
        "",
        f"{note}The same builds, prompts and repetitions as the native table, on "
        f"`models/gemma3/{GEMMA3.name}` ({GEMMA3.stat().st_size / 1e6:.0f} MB; 18 layers, width 640, "
        f"{ours['n_long']}-token prefill).",
        "",
        *table(rows, "llama.cpp"),
        "",
    ]


BROWSER_TITLE = "## In the browser (headless Chromium, wasm), against wllama"


def browser_section(rows, note=""):
    return [
        BROWSER_TITLE,
        "",
        f"{note}Both on the CPU, with 1 and 2 threads (glassbox's threads: the build with shared memory, its kernels "
        "on Web Workers); wllama's figures are its own internal timings, glassbox's are performance.now() "
        "around the npm package's calls to its worker (decode excludes the prompt's prefill).",
        "",
        *table(rows, "wllama"),
        "",
    ]


def splice_gemma3():
    """`bench.py --gemma3`: re-measures only the Gemma 3 section of BENCHMARKS.md."""
    build()
    splice(gemma3_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --gemma3`. "))


def native_section(rows, ours, note=""):
    return [
        NATIVE_TITLE,
        "",
        f"{note}Builds: glassbox and candle as `cargo build --release` makes them, with no target-cpu flags "
        f"(glassbox chose its {ours['kernel']} kernels at run time); llama.cpp built by llama-cpp-python with `{LLAMA_CPP_CMAKE_ARGS}`. "
        "`--threads` (glassbox) and `RAYON_NUM_THREADS` (candle) set the threads. GGUF size "
        f"{MODEL.stat().st_size / 1e6:.0f} MB.",
        "",
        *table(rows, "llama.cpp"),
        "",
    ]


def main():
    if sys.argv[1:] == ["--native"]:
        # Re-measures only the native table.
        build()
        rows, ours, _ = native_rows()
        return splice(native_section(rows, ours, f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --native`. "))
    if sys.argv[1:] == ["--attribution"]:
        return splice_attribution()
    if sys.argv[1:] == ["--claims"]:
        return splice_claims()
    if sys.argv[1:] == ["--vqa"]:
        return splice_vqa()
    if sys.argv[1:] == ["--explanations"]:
        return splice_explanations()
    if sys.argv[1:] == ["--ray"]:
        return splice_ray()
    if sys.argv[1:] == ["--exam"]:
        return splice_exam()
    if sys.argv[1:] == ["--harmonic"]:
        return splice_harmonic()
    if sys.argv[1:] == ["--gemma3"]:
        return splice_gemma3()
    if sys.argv[1:] == ["--shell"]:
        return splice(shell_section(f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --shell`. "))
    if sys.argv[1:] == ["--browser"]:
        return splice(browser_section(wasm_rows(), f"Measured {datetime.date.today().isoformat()} by `python3 scripts/bench.py --browser`. "))
    if sys.argv[1:] == ["--webgpu"]:
        # Re-measures only the WebGPU section, against the CPU backend's figures from this run.
        build()
        env = dict(os.environ, RAYON_NUM_THREADS="2")
        short, long_ = SHARED / "prompts" / "short.txt", SHARED / "prompts" / "long.txt"
        ours, _ = measured([TARGET / "release" / "glassbox", "--backend", "cpu", "--threads", "2", "bench", MODEL, "--short", short,
                            "--long", long_], env)
        reference = {"prefill": max(ours["prefill_tok_s"]), "decode": max(ours["decode_tok_s"])}
        return splice(webgpu_section(reference, "python3 scripts/bench.py --webgpu"))
    if sys.argv[1:2] == ["--gpu-section"]:
        # Written by `scripts/gpu-check.sh run` on the GPU machine.
        return splice(pathlib.Path(sys.argv[2]).read_text().rstrip("\n").split("\n") + [""])
    kept_gpu_section = gpu_section()
    build()
    rows, ours, cpu_reference = native_rows()
    gemma3_lines = gemma3_section()
    webgpu_lines = webgpu_section(cpu_reference)
    browser_rows = wasm_rows()

    today = datetime.date.today().isoformat()
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (scripts/bench.py); ratios are against the peer measured in the same run.",
        "",
        f"- Date: {today}",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- Model: {MODEL.name}; prompts from shared/peers/prompts ({ours['n_long']}-token prefill, "
        f"{ours['n_short']}-token prompt then 128 greedy decode steps); best of 3 after a warm-up",
        "- Command: `make bench`",
        "",
        *native_section(rows, ours),
        *gemma3_lines,
        *browser_section(browser_rows),
        *shell_section(),
        *attribution_section(),
        *claims_section(),
        *explanations_section(),
        *ray_section(),
        *exam_section(),
        *harmonic_section(),
        *vqa_section(),
        *webgpu_lines,
        *kept_gpu_section,
        "## Notes",
        "",
        "glassbox's weight products and attention run on its own kernels (src/backend/kernels: 8-bit",
        "activations, AVX2 chosen at run time, prefill tokens in tiles of four, a persistent thread pool);",
        "candle computes the rest of the layer (norms, rope, element-wise operations).",
        "candle's `quantized_llama` picks its SIMD paths at compile time, so the plain release build runs",
        "its portable loops.",
        "",
    ]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
