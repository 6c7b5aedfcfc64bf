"""glassbox: look inside a language model on your own device.

The same Rust core as the `glassbox` CLI and the browser package, called from Python::

    import glassbox
    m = glassbox.Model.open("SmolLM2-135M-Instruct.Q4_1.gguf")
    logits, cache = m.run_with_cache("The capital of France is", names=["blocks.3.hook_resid_post"])
    cache["blocks.3.hook_resid_post"].shape      # (positions, width)
    m.attribute("The capital of France is")      # shows the head grid in a notebook

Calls release the interpreter while they run; opening, patching and classifying show a tqdm bar
where tqdm is installed (on a terminal, or with progress=True). Ctrl-C stops generation, patching
and classification at their next step; other calls finish first. Errors carry the browser
package's names: GgufError, ModelError, TokenizerError, InterpError, InputError, GpuError,
TaskError (all GlassboxError).
"""

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._html import diverging, grid_svg, sequential
from ._native import (
    GgufError,
    GlassboxError,
    GpuError,
    InputError,
    InterpError,
    ModelError,
    TaskError,
    TokenizerError,
)

__all__ = [
    "Model",
    "ActivationCache",
    "Attribution",
    "Lens",
    "Patching",
    "Classification",
    "Evaluation",
    "evaluate",
    "GlassboxError",
    "GgufError",
    "ModelError",
    "TokenizerError",
    "InterpError",
    "InputError",
    "GpuError",
    "TaskError",
]

Prompt = Union[str, Sequence[int]]


def _progress(progress, description):
    """A `progress(done, total)` callable: tqdm's bar when `progress` is True (or None and stderr
    is a terminal) and tqdm is installed, the caller's own callable, or None."""
    if callable(progress):
        return progress, lambda: None
    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, lambda: None
    bar = tqdm(desc=description, leave=False)

    def advance(done, total):
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return advance, bar.close


def _changes(ablate, steer):
    """`ablate`: heads and neurons to zero, `{"heads": ["L.H", ...], "neurons": ["L.N", ...]}` or
    a list of heads; `steer`: `[(vector or safetensors path, layer, coefficient), ...]`."""
    if ablate is None:
        heads, neurons = [], []
    elif isinstance(ablate, dict):
        unknown = set(ablate) - {"heads", "neurons"}
        if unknown:
            raise InputError(f"ablate takes \"heads\" and \"neurons\", not {sorted(unknown)}")
        heads, neurons = list(ablate.get("heads", [])), list(ablate.get("neurons", []))
    else:
        heads, neurons = list(ablate), []
    vectors = []
    for item in steer or []:
        try:
            vector, layer, coefficient = item
        except (TypeError, ValueError):
            raise InputError("steer takes (vector or safetensors path, layer, coefficient) triples") from None
        if isinstance(vector, (str, os.PathLike)):
            with open(vector, "rb") as f:
                vector = _native.steering_vector(f.read())
        vectors.append((np.asarray(vector, dtype=np.float32).ravel().tolist(), int(layer), float(coefficient)))
    return [str(h) for h in heads], [str(n) for n in neurons], vectors


class ActivationCache(dict):
    """Activations by hook name (TransformerLens names, e.g. `blocks.3.hook_resid_post`), each a
    NumPy array shaped `[positions, ...]` as the hook documents; `positions[name]` lists the
    prompt positions its rows are."""

    def __init__(self, entries):
        super().__init__((name, array) for name, array, _ in entries)
        self.positions = {name: list(positions) for name, _, positions in entries}


def _frame(rows, columns=None):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


@dataclass
class Attribution:
    """Log-probability-increase attribution of the predicted (or given) token: the JSON of
    `glassbox attribute --json`, field by field."""

    target: Dict[str, Any]
    scale: float
    input_tokens: List[str]
    layers: List[Dict[str, Any]]
    heads: List[Dict[str, Any]]
    neurons: List[Dict[str, Any]]
    exact_neurons: int
    positions: List[Dict[str, Any]]
    value_neurons: List[Dict[str, Any]]
    query_neurons: List[Dict[str, Any]]
    graph: Optional[Dict[str, Any]] = None

    def head_grid(self) -> np.ndarray:
        """LPI by layer (rows) and head (columns)."""
        layers = 1 + max(h["layer"] for h in self.heads)
        heads = 1 + max(h["head"] for h in self.heads)
        grid = np.zeros((layers, heads), dtype=np.float32)
        for h in self.heads:
            grid[h["layer"], h["head"]] = h["score"]
        return grid

    def to_pandas(self, what: str = "heads"):
        """`heads`, `neurons`, `layers`, `positions`, `value_neurons`, `query_neurons` or, when
        asked for with `graph=True`, the graph's `edges`, as a DataFrame."""
        if what == "edges" and self.graph is not None:
            return _frame(self.graph["edges"])
        if what not in ("heads", "neurons", "layers", "positions", "value_neurons", "query_neurons"):
            raise InputError(f"no table {what!r} in this attribution")
        return _frame(getattr(self, what))

    def _repr_html_(self):
        grid = self.head_grid()
        extent = float(np.abs(grid).max()) or 1.0
        title = f"LPI of each head for {self.target['token']!r} (p = {np.exp(self.target['logprob']):.3f})"
        return grid_svg(
            title,
            rows=[f"layer {l}" for l in range(grid.shape[0])],
            columns=[f"head {h}" for h in range(grid.shape[1])],
            values=grid.tolist(),
            colour=lambda v: diverging(v, extent),
            legend=("LPI (nats)", lambda t: diverging((2 * t - 1) * extent, extent), [f"-{extent:.2f}", "0", f"+{extent:.2f}"]),
            cell=(26, 12),
        )


@dataclass
class Lens:
    """The logit lens: the top tokens of each layer's residual at each position (`glassbox lens
    --json`)."""

    scale: str
    input_tokens: List[str]
    cells: List[Dict[str, Any]]

    def to_pandas(self):
        """One row per (layer, position, rank)."""
        rows = [
            {
                "layer": c["layer"],
                "position": c["position"],
                "rank": rank,
                "id": t["id"],
                "token": t["token"],
                "prob": t["prob"],
            }
            for c in self.cells
            for rank, t in enumerate(c["tokens"])
        ]
        return _frame(rows)

    def _repr_html_(self):
        layers = sorted({c["layer"] for c in self.cells})
        positions = sorted({c["position"] for c in self.cells})
        top = {(c["layer"], c["position"]): c["tokens"][0] for c in self.cells if c["tokens"]}
        values = [[top.get((l, p), {"prob": 0.0})["prob"] for p in positions] for l in layers]
        labels = [[top.get((l, p), {"token": ""})["token"] for p in positions] for l in layers]
        return grid_svg(
            "Logit lens: each layer's top token and its probability",
            rows=[f"layer {l}" for l in layers],
            columns=[self.input_tokens[p] if p < len(self.input_tokens) else p for p in positions],
            values=values,
            colour=sequential,
            legend=("probability", sequential, ["0", "0.5", "1"]),
            labels=labels,
        )


@dataclass
class Patching:
    """Activation patching (`glassbox patch --json`): the restored fraction of the logit
    difference by layer and position (or head)."""

    site: str
    clean_metric: float
    corrupt_metric: float
    columns: str
    tokens: List[str]
    corrupt_tokens: List[str]
    answer: str
    wrong: str
    grid: Optional[List[List[float]]] = None
    attribution_grid: Optional[List[List[float]]] = None
    correlation: Optional[float] = None

    def to_pandas(self, which: str = "grid"):
        values = self.grid if which == "grid" else self.attribution_grid
        if values is None:
            raise InputError(f"this patching run has no {which}")
        names = self.tokens if self.columns == "positions" else [f"head {h}" for h in range(len(values[0]))]
        return _frame(values, columns=[f"{i}:{n}" for i, n in enumerate(names)])

    def _repr_html_(self):
        values = self.grid if self.grid is not None else self.attribution_grid
        extent = max((abs(v) for row in values for v in row), default=1.0) or 1.0
        names = self.tokens if self.columns == "positions" else [f"head {h}" for h in range(len(values[0]))]
        return grid_svg(
            f"Restored fraction of logit({self.answer!r}) - logit({self.wrong!r}), patching {self.site}",
            rows=[f"layer {l}" for l in range(len(values))],
            columns=names,
            values=values,
            colour=lambda v: diverging(v, extent),
            legend=("restored", lambda t: diverging((2 * t - 1) * extent, extent), [f"-{extent:.2f}", "0", f"+{extent:.2f}"]),
        )


@dataclass
class Classification:
    """`classify`'s output rows, and the rows that failed with why (`{"line", "id", "error"}`)."""

    rows: List[Dict[str, Any]]
    errors: List[Dict[str, Any]] = field(default_factory=list)

    def to_pandas(self):
        """One row per classified input: id, label, and each label's probability as `p_<label>`."""
        flat = []
        for row in self.rows:
            entry = {k: v for k, v in row.items() if k != "probs"}
            entry.update({f"p_{label}": p for label, p in row.get("probs", {}).items()})
            flat.append(entry)
        return _frame(flat)


@dataclass
class Evaluation:
    """`glassbox evaluate`'s report (accuracy, F1s, confusion, ROUGE, the FMD score; for `exam`,
    the accuracy per profession and subject) and the rows it skipped, each `{"side", "line",
    "error"}`."""

    report: Dict[str, Any]
    problems: List[Dict[str, Any]]

    def to_pandas(self):
        """Precision, recall, F1 and support per class (claim tasks)."""
        per_class = self.report.get("per_class")
        if per_class is None:
            raise InputError("this report has no per-class table")
        return _frame([dict(label=label, **scores) for label, scores in per_class.items()])


def _jsonl_bytes(rows) -> bytes:
    if isinstance(rows, (str, os.PathLike)):
        with open(rows, "rb") as f:
            return f.read()
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict(orient="records")
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def evaluate(task: str, gold, pred) -> Evaluation:
    """Scores `pred` against `gold` (JSONL paths, lists of dicts or DataFrames), matched by id, as
    `glassbox evaluate` does: `{"id", "label", "explanation"?}` rows for the claim tasks, exam
    questions and replies for `exam`. Classification rows (`Classification.rows`) are valid
    predictions."""
    report, problems = _native.evaluate(task, _jsonl_bytes(gold), _jsonl_bytes(pred))
    return Evaluation(
        report=json.loads(report), problems=[{"side": s, "line": l, "error": e} for s, l, e in problems]
    )


def _task_rows(rows) -> List[Tuple[int, Optional[str], Optional[str]]]:
    """Rows as (line, JSON text, why unreadable): a JSONL path, a list of dicts, or a DataFrame."""
    if isinstance(rows, (str, os.PathLike)):
        with open(rows, "rb") as f:
            return _native.jsonl_rows(f.read())
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict(orient="records")
    return [(i + 1, json.dumps(row), None) for i, row in enumerate(rows)]


class Model:
    """A GGUF language model, loaded once; every method runs the same core as the CLI."""

    def __init__(self, native, path):
        self._native = native
        self.path = os.fspath(path)
        self.card: Dict[str, Any] = json.loads(native.card)
        self.cfg: Dict[str, Any] = json.loads(native.config)
        self.backend: str = native.backend
        self.fallback_reason: Optional[str] = native.fallback_reason

    @classmethod
    def open(cls, path, backend: str = "auto", threads: Optional[int] = None, float_weights: bool = False, progress=None):
        """Loads the GGUF file at `path` on `backend` (`auto`, `cpu`, `cuda` or `webgpu`);
        `float_weights` dequantises every matrix to f32 (the exact reference)."""
        advance, close = _progress(progress, "loading")
        try:
            return cls(_native.Model.open(os.fspath(path), backend, threads, float_weights, advance), path)
        finally:
            close()

    def __repr__(self):
        return f"<glassbox.Model {self.card.get('name') or self.cfg['architecture']} on {self.backend}>"

    def tokenize(self, text: str) -> List[int]:
        return self._native.tokenize(text)

    def to_str_tokens(self, prompt: Prompt) -> List[str]:
        ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        return self._native.token_texts(ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self._native.decode(list(ids))

    def chat_prompt(self, message: str) -> str:
        """`message` as a user turn in the model's chat template, ready to generate after."""
        return self._native.chat_prompt(message)

    def generate(
        self,
        prompt: Prompt,
        max_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
        top_k: int = 0,
        top_p: float = 1.0,
        repeat_penalty: float = 1.0,
        no_repeat_ngram: int = 0,
        stop: Sequence[str] = (),
        max_sentences: int = 0,
        one_paragraph: bool = False,
        ablate=None,
        steer=None,
        on_text=None,
    ) -> str:
        """The continuation of `prompt` (greedy at temperature 0). `on_text(piece)` receives the
        text as it is written; returning False from it stops."""
        heads, neurons, vectors = _changes(ablate, steer)
        result = self._native.generate(
            _prompt(prompt), max_tokens, temperature, top_k, top_p, repeat_penalty, no_repeat_ngram, seed,
            list(stop), max_sentences, one_paragraph, heads, neurons, vectors, on_text,
        )
        return json.loads(result)["text"]

    def run_with_cache(
        self,
        prompt: Prompt,
        names: Union[None, str, Sequence[str]] = None,
        positions: Union[str, Sequence[int]] = "all",
        logits: Union[str, Sequence[int]] = "all",
        max_bytes: Optional[int] = None,
        ablate=None,
        steer=None,
    ) -> Tuple[np.ndarray, ActivationCache]:
        """One forward pass: the logits `[positions, vocab]` at `logits` and the activations of
        the hooks `names` (TransformerLens names, `*` globs; every hook when None) at
        `positions`. Refused with an InputError before it runs when the two pass `max_bytes`
        (512 MB by default)."""
        spec = "*" if names is None else (names if isinstance(names, str) else ",".join(names))
        heads, neurons, vectors = _changes(ablate, steer)
        out, entries = self._native.run_with_cache(
            _prompt(prompt), spec, _positions(positions), _positions(logits), max_bytes, heads, neurons, vectors
        )
        return out, ActivationCache(entries)

    def run_with_hooks(
        self,
        prompt: Prompt,
        ablate=None,
        steer=None,
        logits: Union[str, Sequence[int]] = "all",
        max_bytes: Optional[int] = None,
    ) -> np.ndarray:
        """The logits at `logits` with heads or neurons zeroed (`ablate`) and steering vectors
        added (`steer`); refused with an InputError before it runs when they would pass
        `max_bytes` (512 MB by default)."""
        heads, neurons, vectors = _changes(ablate, steer)
        out, _ = self._native.run_with_cache(
            _prompt(prompt), None, "all", _positions(logits), max_bytes, heads, neurons, vectors
        )
        return out

    def top_tokens(self, prompt: Prompt, k: int = 10, ablate=None, steer=None) -> List[Dict[str, Any]]:
        """The `k` most likely next tokens: `[{"id", "token", "logprob"}]`."""
        heads, neurons, vectors = _changes(ablate, steer)
        return json.loads(self._native.top_tokens(_prompt(prompt), k, heads, neurons, vectors))

    def attribute(
        self,
        prompt: Prompt,
        target: Union[None, int, str] = None,
        top: int = 100,
        exact_neurons: int = 1000,
        exact_all: bool = False,
        graph: bool = False,
        graph_edges: int = 1000,
        progress=False,
    ) -> Attribution:
        """LPI of layers, heads, neurons and positions for `target` (the top token when None);
        with `graph`, also the attribution graph: every head's contribution from every position
        into the last one, the `graph_edges` strongest scored exactly (`to_pandas("edges")`).
        Ctrl-C stops it after its current step; `progress` as for `patch` (off unless asked)."""
        advance, close = _progress(progress, "attribution")
        try:
            native = self._native.attribute(_prompt(prompt), target, top, exact_neurons, exact_all, graph_edges if graph else None, advance)
        finally:
            close()
        return Attribution(**json.loads(native))

    def lens(
        self,
        prompt: Prompt,
        layers: Optional[Sequence[int]] = None,
        positions: Optional[Sequence[int]] = None,
        top_k: int = 5,
        scale: str = "fixed",
    ) -> Lens:
        """The logit lens (`scale`: `fixed`, the final residual's RMS, or `own_rms`)."""
        layers = None if layers is None else list(layers)
        positions = None if positions is None else list(positions)
        return Lens(**json.loads(self._native.lens(_prompt(prompt), layers, positions, top_k, scale)))

    def patch(
        self,
        clean: str,
        corrupt: str,
        answer: str,
        wrong: str,
        site: str = "resid_pre",
        method: str = "both",
        progress=None,
    ) -> Patching:
        """Activation patching of `site` (`resid_pre`, `attn_out`, `mlp_out`, `head`) from the
        corrupted run into the clean one; `method`: `exact`, `attribution` or `both`."""
        advance, close = _progress(progress, "patching")
        try:
            report = self._native.patch(clean, corrupt, answer, wrong, site, method, advance)
        finally:
            close()
        return Patching(**json.loads(report))

    def classify(
        self,
        task: str,
        rows,
        explain: bool = False,
        evidence: bool = False,
        affect: bool = False,
        mode: str = "score",
        chat: bool = False,
        max_new_tokens: int = 128,
        writing: Optional[Dict[str, Any]] = None,
        retrieve=None,
        k: int = 4,
        lexicons=None,
        minilm=None,
        nrc: bool = False,
        errors: str = "raise",
        progress=None,
    ) -> Classification:
        """Classifies `rows` (a JSONL path, a list of dicts or a DataFrame, with the task's
        fields) with a built-in task (`fmd`, `conspiracy`, `pheme`, ...) or a task given as JSON,
        as `glassbox classify` does. A bad row raises an InputError (`errors="raise"`) or is
        listed in `.errors` with its line (`errors="report"`)."""
        if errors not in ("raise", "report"):
            raise InputError(f"errors={errors!r}: expected \"raise\" or \"report\"")
        options, resources = _classify_request(
            explain, evidence, affect, mode, chat, max_new_tokens, writing, retrieve, k, lexicons, minilm, nrc
        )
        out, failed = [], []
        for result in self.classify_lines(task, _task_rows(rows), options, resources, progress=progress):
            if "error" not in result:
                out.append(result["row"])
            elif errors == "raise":
                raise InputError(f"line {result['line']}: {result['error']}")
            else:
                failed.append({k: result[k] for k in ("line", "id", "error")})
        return Classification(rows=out, errors=failed)

    def classify_lines(self, task: str, lines, options: Dict[str, Any], resources: Dict[str, Any], progress=None):
        """The core of `classify` over `(line, JSON text or None, why unreadable or None)`:
        one `{"line", "id", "row"}` or `{"line", "id", "error"}` per line, in order."""
        readable = [(line, text) for line, text, _ in lines if text is not None]
        results = {line: {"line": line, "id": None, "error": why} for line, text, why in lines if text is None}
        path = lambda p: None if p is None else os.fspath(p)  # noqa: E731
        advance, close = _progress(progress, f"classify {task}")
        try:
            answers = self._native.classify(
                task,
                [text for _, text in readable],
                json.dumps(options),
                path(resources.get("retrieve")),
                path(resources.get("lexicons")),
                path(resources.get("minilm")),
                bool(resources.get("nrc", False)),
                os.path.basename(self.path),
                advance,
            )
        finally:
            close()
        for (line, text), (ok, answer) in zip(readable, answers):
            if ok:
                row = json.loads(answer)
                results[line] = {"line": line, "id": row.get("id"), "row": row}
                continue
            try:
                row_id = json.loads(text).get("id")
            except (ValueError, AttributeError):
                row_id = None
            results[line] = {"line": line, "id": row_id, "error": answer}
        return [results[line] for line, _, _ in lines]


def _classify_request(
    explain=False,
    evidence=False,
    affect=False,
    mode="score",
    chat=False,
    max_new_tokens=128,
    writing=None,
    retrieve=None,
    k=4,
    lexicons=None,
    minilm=None,
    nrc=False,
):
    """`classify`'s options split into the core's choices (the browser's names) and the files
    it reads (the index, the lexicons, MiniLM)."""
    options = {
        "explain": explain,
        "evidence": evidence,
        "affect": affect,
        "mode": mode,
        "chat": chat,
        "maxNewTokens": max_new_tokens,
        "k": k,
    }
    if writing is not None:
        options["writing"] = writing
    return options, {"retrieve": retrieve, "lexicons": lexicons, "minilm": minilm, "nrc": nrc}


def _prompt(prompt):
    if isinstance(prompt, str):
        return prompt
    return [int(i) for i in prompt]


def _positions(positions):
    if isinstance(positions, str):
        return positions
    return [int(p) for p in positions]
