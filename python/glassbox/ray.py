"""glassbox on Ray Data: a run goes from a laptop to a cluster without new code.

Each worker is an actor that opens the model once and classifies (or attributes) batches of
rows; Ray restarts an actor that dies and runs its batch again, so no row is lost or written
twice. Every worker reads the model file from `model_path` itself: on a cluster that is a path
every node can reach (a shared filesystem), or a local copy at the same path on each node.

    import glassbox.ray
    glassbox.ray.classify("claims.jsonl", "model.gguf", "fmd", output="out.jsonl", concurrency=4)

From the command line: `glassbox classify ... --ray [ADDRESS]`, or
`python -m glassbox.ray classify --model M --task fmd --input I --output O [--address A]`.
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, Iterable, Optional

from . import Model, _classify_request, _native, _task_rows


def _init(address: Optional[str]):
    import ray

    if not ray.is_initialized():
        # Without an address Ray starts a local cluster on this machine.
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


class _Classifier:
    """One worker: the model, opened once, classifying batches of `{line, text}` rows."""

    def __init__(self, model_path, backend, threads, task, options, resources):
        self.model = Model.open(model_path, backend=backend, threads=threads, progress=False)
        self.task, self.options, self.resources = task, options, resources

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        if "_glassbox_line" in batch:
            lines = [(int(line), str(text), None) for line, text in zip(batch["_glassbox_line"], batch["_glassbox_row"])]
        else:
            # A dataset of the user's own: its columns are the rows' fields. Its rows have no
            # lines; they are known by their ids, and their line is 0.
            columns = {name: values.tolist() for name, values in batch.items()}
            count = len(next(iter(columns.values()), []))
            rows = [{name: values[i] for name, values in columns.items()} for i in range(count)]
            lines = [(i + 1, json.dumps(row, default=str), None) for i, row in enumerate(rows)]
        results = self.model.classify_lines(self.task, lines, self.options, self.resources, progress=False)
        if "_glassbox_line" not in batch:
            results = [dict(r, line=0) for r in results]
        return _columns(results, lambda r: json.dumps(r["row"]))


class _Attributor:
    """One worker: the model, opened once, attributing batches of `{line, prompt}` rows."""

    def __init__(self, model_path, backend, threads, options):
        self.model = Model.open(model_path, backend=backend, threads=threads, progress=False)
        self.options = options

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        results = []
        for line, prompt in zip(batch["_glassbox_line"], batch["_glassbox_row"]):
            try:
                attribution = self.model.attribute(str(prompt), **self.options)
                results.append({"line": int(line), "id": None, "row": attribution.__dict__})
            except _native.GlassboxError as e:
                results.append({"line": int(line), "id": None, "error": f"{type(e).__name__}: {e}"})
        return _columns(results, lambda r: json.dumps(r["row"]))


def _columns(results, encode):
    """Per-row results as the columns a Ray batch returns: line, id, row (JSON) and error."""
    return {
        "line": [r["line"] for r in results],
        "id": ["" if r["id"] is None else str(r["id"]) for r in results],
        "row": [encode(r) if "row" in r else "" for r in results],
        "error": [r.get("error", "") for r in results],
    }


def _run(ray, items, worker, constructor_kwargs, concurrency, num_cpus, num_gpus, batch_size):
    """`worker` over the readable `items` (`{line, text, unreadable}`), with the unreadable ones
    as error rows, or over a Ray dataset of the user's as it is. The split is made here, not in
    Ray tasks: the actors may hold every CPU."""
    unreadable = []
    if isinstance(items, list):
        unreadable = [{"line": i["line"], "id": "", "row": "", "error": i["unreadable"]} for i in items if i["unreadable"]]
        items = ray.data.from_items(
            [{"_glassbox_line": i["line"], "_glassbox_row": i["text"]} for i in items if not i["unreadable"]]
        )
    result = items.map_batches(
        worker,
        fn_constructor_kwargs=constructor_kwargs,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        batch_size=batch_size,
        batch_format="numpy",
    )
    return result.union(ray.data.from_items(unreadable)) if unreadable else result


def _worker_kwargs(model_path, backend, threads, **work):
    """A worker's constructor arguments: the model as every node opens it, and its work."""
    return {"model_path": os.path.abspath(os.fspath(model_path)), "backend": backend, "threads": threads, **work}


def _is_ray_dataset(dataset):
    import ray.data

    return isinstance(dataset, ray.data.Dataset)


def classify(
    dataset,
    model_path,
    task: str,
    output: Optional[str] = None,
    address: Optional[str] = None,
    concurrency: int = 2,
    num_cpus: float = 1,
    num_gpus: float = 0,
    batch_size: int = 16,
    backend: str = "cpu",
    threads: Optional[int] = None,
    **options,
):
    """Classifies `dataset` (a JSONL path, a list of dicts, or a Ray dataset whose columns are the
    rows' fields, e.g. from `ray.data.read_json` on an object store) with `task` on Ray:
    `concurrency` actors, each with `num_cpus` / `num_gpus` and the model opened once; `options`
    are `Model.classify`'s (`explain`, `evidence`, `affect`, `mode`, `retrieve`, ...). Returns a
    Ray dataset of `{line, id, row, error}` (`row` the output row as JSON, `error` empty), or
    with `output` writes the rows (`.jsonl`, or a Parquet folder otherwise) and returns the count
    written and the errors, each with its input line (0 for a Ray dataset's rows, known by id)."""
    ray = _init(address)
    choices, resources = _classify_request(**options)
    absolute = lambda p: None if p is None else os.path.abspath(os.fspath(p))  # noqa: E731
    resources = {
        "retrieve": absolute(resources["retrieve"]),
        "lexicons": absolute(resources["lexicons"] or "models/lexicons"),
        "minilm": absolute(resources["minilm"] or "models/all-MiniLM-L6-v2"),
        "nrc": resources["nrc"],
    }
    kwargs = _worker_kwargs(model_path, backend, threads, task=task, options=choices, resources=resources)
    if _is_ray_dataset(dataset):
        items = dataset
    else:
        items = [{"line": line, "text": text or "", "unreadable": why or ""} for line, text, why in _task_rows(dataset)]
    result = _run(ray, items, _Classifier, kwargs, concurrency, num_cpus, num_gpus, batch_size)
    return result if output is None else write(result, output)


def attribute(
    dataset,
    model_path,
    output: Optional[str] = None,
    address: Optional[str] = None,
    concurrency: int = 2,
    num_cpus: float = 1,
    num_gpus: float = 0,
    batch_size: int = 4,
    backend: str = "cpu",
    threads: Optional[int] = None,
    **options,
):
    """`Model.attribute` over a dataset of prompts (a text file of one prompt per line, or a list
    of strings) on Ray; `options` are `attribute`'s (`target`, `top`, `exact_neurons`, ...)."""
    ray = _init(address)
    if isinstance(dataset, (str, os.PathLike)):
        with open(dataset, encoding="utf-8") as f:
            prompts = [line.rstrip("\n") for line in f]
    else:
        prompts = list(dataset)
    items = [{"line": i + 1, "text": p, "unreadable": ""} for i, p in enumerate(prompts) if p.strip()]
    kwargs = _worker_kwargs(model_path, backend, threads, options=options)
    result = _run(ray, items, _Attributor, kwargs, concurrency, num_cpus, num_gpus, batch_size)
    return result if output is None else write(result, output)


def write(result, output: str):
    """Writes a run's rows: JSONL when `output` ends in `.jsonl` (one output row per line, in the
    order the workers finish them; `id` matches them to the input), else a Parquet folder of
    `line, id, row, error`. Returns `(written, errors)`, the errors `{line, id, error}` in line
    order."""
    written, errors = 0, []
    if str(output).endswith(".jsonl"):
        with open(output, "w", encoding="utf-8") as f:
            for r in result.iter_rows():
                if r["error"]:
                    errors.append({"line": int(r["line"]), "id": r["id"] or None, "error": r["error"]})
                else:
                    f.write(r["row"] + "\n")
                    written += 1
    else:
        rows = result.materialize()
        rows.write_parquet(output)
        for r in rows.iter_rows():
            if r["error"]:
                errors.append({"line": int(r["line"]), "id": r["id"] or None, "error": r["error"]})
            else:
                written += 1
    errors.sort(key=lambda e: e["line"])
    return written, errors


# `--options` comes in the core's (the browser's) names.
_SNAKE = {"maxNewTokens": "max_new_tokens"}


def main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glassbox.ray", description="glassbox runs on Ray Data")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("classify", help="classify JSONL rows with a claim task")
    run.add_argument("--model", required=True)
    run.add_argument("--task", required=True)
    run.add_argument("--input", required=True)
    run.add_argument("--output", required=True, help="a .jsonl file, or a Parquet folder")
    run.add_argument("--address", help="a Ray cluster (ray start --head prints it); a local one when left out")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--num-cpus", type=float, default=1)
    run.add_argument("--num-gpus", type=float, default=0)
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--backend", default="cpu")
    run.add_argument("--threads", type=int)
    run.add_argument("--options", default="{}", help="classify's options as JSON (the browser's names)")
    run.add_argument("--retrieve")
    run.add_argument("--lexicons")
    run.add_argument("--minilm")
    run.add_argument("--nrc", action="store_true")
    args = parser.parse_args(argv)
    options = {_SNAKE.get(name, name): value for name, value in json.loads(args.options).items()}
    written, errors = classify(
        args.input,
        args.model,
        args.task,
        output=args.output,
        address=args.address,
        concurrency=args.workers,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        batch_size=args.batch_size,
        backend=args.backend,
        threads=args.threads,
        retrieve=args.retrieve,
        lexicons=args.lexicons,
        minilm=args.minilm,
        nrc=args.nrc,
        **options,
    )
    for e in errors:
        print(f"{args.input}:{e['line']}: {e['error']}", file=sys.stderr)
    print(f"classify: {written} rows written to {args.output}, {len(errors)} errors", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
