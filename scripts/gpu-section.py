"""The "On a GPU" section of BENCHMARKS.md, from the reports `scripts/gpu-check.sh run` wrote.
Usage: gpu-section.py OUT_DIR WORK_DIR BANDWIDTH_BYTES_PER_S (splice it with bench.py --gpu-section)."""
import datetime
import json
import os
import pathlib
import subprocess
import sys

out, work, bandwidth = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), float(sys.argv[3])


def load(name):
    path = out / name if (out / name).exists() else work / name
    return json.loads(path.read_text()) if path.exists() and path.stat().st_size else None


def gpu_name():
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
        name, driver = subprocess.run(query, capture_output=True, text=True, check=True).stdout.strip().split(", ")
        return f"one {name} (driver {driver})"
    except (OSError, subprocess.CalledProcessError, ValueError):
        return "an unnamed GPU"


rows, shape = [], None
for model in ("smollm2", "synthetic-1b"):
    tensors = load(f"tensors-{model}.json")
    cpu, cuda, webgpu_report = (load(f"bench-{model}-{b}.json") for b in ("cpu", "cuda", "webgpu"))
    if not (tensors and (cuda or webgpu_report)):
        continue
    bytes_per_token = sum(t["byte_len"] for t in tensors["tensors"])
    shape = shape or cuda or webgpu_report
    label = {"smollm2": "SmolLM2-135M Q4_1", "synthetic-1b": "synthetic 1.1B Q4_0 (random weights)"}[model]
    for report in (cuda, webgpu_report, cpu):
        if not report:
            continue
        prefill, decode = max(report["prefill_tok_s"]), max(report["decode_tok_s"])
        versus_cpu = lambda value, key: f"{value / max(cpu[key]):.1f}" if cpu else "—"
        roofline = bandwidth / bytes_per_token if bandwidth > 0 else 0
        on_gpu = report["backend"].startswith(("cuda", "webgpu"))
        threads = "" if on_gpu else f" ({report['threads']} threads)"
        rows.append(
            f"| {label} | {report['backend']}{threads} "
            f"| {prefill:.1f} | {versus_cpu(prefill, 'prefill_tok_s')} | {decode:.1f} | {versus_cpu(decode, 'decode_tok_s')} "
            f"| {bytes_per_token / 1e6:.1f} | {f'{roofline:.0f}' if on_gpu and roofline else '—'} "
            f"| {f'{100 * decode / roofline:.1f}%' if on_gpu and roofline else '—'} |"
        )

parity, webgpu_parity = load("parity.json"), load("parity-webgpu.json")
webgpu = (work / "webgpu.log").read_text() if (work / "webgpu.log").exists() else ""
adapter = next((line.split("adapter: ", 1)[1] for line in webgpu.splitlines() if "adapter: " in line), None)
result = next((line for line in webgpu.splitlines() if line.startswith("test result")), None)
revision = pathlib.Path(".gpu/inputs/revision").read_text().strip() if pathlib.Path(".gpu/inputs/revision").exists() else "?"

lines = [
    "## On a GPU",
    "",
    f"Measured {datetime.date.today().isoformat()} by `scripts/gpu-check.sh run` on {gpu_name()}, "
    f"{os.cpu_count()} CPU cores; glassbox {revision} built with `--features cuda,webgpu` (CUDA 13.0, sm_90). "
    "Not re-measured by `make bench`, which has no GPU.",
    "",
]
if shape:
    lines += [
        f"Prompts from shared/peers/prompts ({shape['n_long']}-token prefill, {shape['n_short']}-token prompt then 128 greedy "
        "decode steps), best of 3 after a warm-up. × CPU is against glassbox's CPU backend on the same machine in the same run. "
        f"The roofline is the memory bandwidth, {bandwidth / 1e12:.2f} TB/s from a device-to-device copy (PyTorch), "
        "divided by the bytes a decode step reads (every weight once, the tied table as the unembedding).",
        "",
        "| model | backend | prefill tok/s | × CPU | decode tok/s | × CPU | MB read per token | roofline tok/s | decode share of roofline |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
def text(name):
    path = out / name if (out / name).exists() else work / name
    return path.read_text().strip() if path.exists() else ""


f32_parity, quantised, cpu_rounding = text("parity-f32.txt"), text("parity-quantised.txt"), text("cpu-rounding.txt")
kernels = text("cuda-kernels.log")
kernel_result = next((line for line in kernels.splitlines() if line.startswith("test result")), "not run")
worst = {}
for line in kernels.splitlines():
    if "worst error" in line:
        path = line.split()[0]
        worst[path] = max(worst.get(path, 0.0), float(line.rsplit("worst error ", 1)[1].split()[0]))
def parity_line(what, report):
    """One line from a compare-backends report."""
    n = len(report["prompts"])
    layers = report["resid_post_relative_difference"]
    return (
        f"- {what}, the {n} prompts of scripts/parity-prompts.txt: top-1 equal {report['top1_equal']}/{n}, "
        f"top-10 head rankings equal {report['head_rankings_equal']}/{n}, max |Δlogit| {report['max_logit_difference']:.4f}, "
        f"max |ΔLPI| {report['max_head_lpi_difference']:.4f} (tie tolerance {report['tie']}): "
        f"{'passed' if report['passed'] else 'FAILED'}. Relative resid_post difference after layers 1, 10, 20 and "
        f"{len(layers)}: {', '.join(f'{layers[i]:.1e}' for i in (0, 9, 19, len(layers) - 1) if i < len(layers))}."
    )


if parity:
    lines.append(parity_line(
        "Parity (`compare-backends --reference-float-weights`: CUDA's dequantising kernels against the CPU doing the same arithmetic)",
        parity,
    ))
    if f32_parity:
        lines.append(f"- With f32 weights on both: `{f32_parity}`")
    if quantised:
        lines.append(f"- Against the CPU's quantised kernels, which round their input to 8 bits: `{quantised.splitlines()[-1]}`")
    if cpu_rounding:
        lines.append(f"- For scale, that rounding on the CPU alone (quantised against f32 weights): `{cpu_rounding.splitlines()[-1]}`")
else:
    lines.append("- CUDA parity: not run, or no report.")
if webgpu_parity:
    lines.append(parity_line(
        f"WebGPU backend parity (`--backend webgpu compare-backends --reference-float-weights`, on {webgpu_parity['tested']})",
        webgpu_parity,
    ))
if kernels:
    lines.append(
        f"- candle's CUDA quantised matmuls against an f64 product (tests/cuda_kernels.rs, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K; "
        f"rows of 512, 576/768 and 1536; 1, 5 and 16 tokens): worst error as a share of the term magnitude "
        + ", ".join(f"{path} {value:.1e}" for path, value in worst.items())
        + f"; `{kernel_result}`."
    )
if result:
    lines.append(f"- WebGPU kernel tests natively on {adapter or 'an unnamed adapter'}: `{result}`.")
else:
    lines.append(f"- WebGPU kernel tests: {webgpu.strip().splitlines()[-1] if webgpu.strip() else 'not run'}.")
lines.append("")
print("\n".join(lines))
