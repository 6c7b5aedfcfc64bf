"""The Python package against the CLI on the same prompts (the same core, so equal results), and
its typed errors."""

import json
import struct
import threading

import numpy as np
import pytest

import glassbox
from conftest import FMD, SMOLLM2, TINY, cli, cli_json

PROMPT = "The capital of France is"


def read_safetensors(path):
    """Hugging Face's safetensors layout read by hand: an 8-byte little-endian header length,
    the JSON header, then the tensors' bytes."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    data = raw[8 + length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(info["shape"])
    return tensors


def test_top_tokens_equal_the_cli(smollm2):
    ours = smollm2.top_tokens(PROMPT, k=10)
    theirs = cli_json("logits", SMOLLM2, "--prompt", PROMPT, "--top-k", 10)["top"]
    assert [t["id"] for t in ours] == [t["id"] for t in theirs]
    assert [t["token"] for t in ours] == [t["token"] for t in theirs]
    np.testing.assert_allclose([t["logprob"] for t in ours], [t["logprob"] for t in theirs], atol=1e-5)


def test_run_with_cache_equals_the_cli_recording_and_its_logits(smollm2, tmp_path):
    hooks = ["blocks.3.hook_resid_post", "blocks.7.attn.hook_pattern", "blocks.12.mlp.hook_post"]
    logits, cache = smollm2.run_with_cache(PROMPT, names=hooks)
    ids = smollm2.tokenize(PROMPT)
    assert logits.shape == (len(ids), smollm2.cfg["vocab_size"])
    recorded = tmp_path / "recorded.safetensors"
    cli("record", SMOLLM2, "--prompt", PROMPT, "--hooks", ",".join(hooks), "--output", recorded)
    theirs = read_safetensors(recorded)
    assert sorted(cache) == sorted(theirs)
    for name in hooks:
        assert cache[name].shape == theirs[name].shape, name
        np.testing.assert_allclose(cache[name], theirs[name], rtol=1e-5, atol=1e-5)
        assert cache.positions[name] == list(range(len(ids)))
    # The last row of the logits is the CLI's next-token distribution. The CLI sums the 49,152
    # exponentials one by one in f32 (1.4e-4 nats off an f64 sum here), so its log-probabilities
    # are compared through their differences, which that sum does not enter.
    top = cli_json("logits", SMOLLM2, "--prompt", PROMPT, "--top-k", 5)["top"]
    last = logits[-1].astype(np.float64)
    logprobs = last - (last.max() + np.log(np.exp(last - last.max()).sum()))
    assert list(np.argsort(-last)[:5]) == [t["id"] for t in top]
    ours = logprobs[[t["id"] for t in top]]
    theirs = np.array([t["logprob"] for t in top])
    np.testing.assert_allclose(ours - ours[0], theirs - theirs[0], atol=1e-5)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_cache_at_chosen_positions(smollm2):
    _, cache = smollm2.run_with_cache(PROMPT, names="blocks.2.hook_resid_*", positions=[0, 3], logits="last")
    assert sorted(cache) == ["blocks.2.hook_resid_mid", "blocks.2.hook_resid_post", "blocks.2.hook_resid_pre"]
    _, full = smollm2.run_with_cache(PROMPT, names="blocks.2.hook_resid_mid")
    np.testing.assert_array_equal(cache["blocks.2.hook_resid_mid"], full["blocks.2.hook_resid_mid"][[0, 3]])


def test_run_with_hooks_ablates_as_the_cli_does(smollm2):
    heads = ["23.4", "29.1"]
    logits = smollm2.run_with_hooks(PROMPT, ablate={"heads": heads, "neurons": ["27.846"]}, logits="last")
    theirs = cli_json(
        "logits", SMOLLM2, "--prompt", PROMPT, "--top-k", 5, "--ablate-heads", ",".join(heads), "--ablate-neurons", "27.846"
    )["top"]
    assert list(np.argsort(-logits[-1])[:5]) == [t["id"] for t in theirs]
    plain = smollm2.run_with_hooks(PROMPT, logits="last")
    assert not np.allclose(plain, logits)


def test_attribution_equals_the_cli(smollm2):
    ours = smollm2.attribute(PROMPT, top=20, exact_neurons=100, graph=True, graph_edges=200)
    theirs = cli_json("attribute", SMOLLM2, "--prompt", PROMPT, "--top", 20, "--exact-neurons", 100, "--graph", "--graph-edges", 200)
    assert ours.target["id"] == theirs["target"]["id"]
    assert [(h["layer"], h["head"]) for h in ours.heads[:10]] == [(h["layer"], h["head"]) for h in theirs["heads"][:10]]
    np.testing.assert_allclose([h["score"] for h in ours.heads], [h["score"] for h in theirs["heads"]], atol=1e-5)
    assert [(n["layer"], n["neuron"]) for n in ours.neurons] == [(n["layer"], n["neuron"]) for n in theirs["neurons"]]
    grid = ours.head_grid()
    assert grid.shape == (smollm2.cfg["layers"], smollm2.cfg["heads"])
    assert grid[theirs["heads"][0]["layer"], theirs["heads"][0]["head"]] == pytest.approx(theirs["heads"][0]["score"], abs=1e-5)
    table = ours.to_pandas("heads")
    assert list(table.columns) == ["layer", "head", "score"] and len(table) == grid.size
    html = ours._repr_html_()
    assert html.startswith("<svg") and "LPI (nats)" in html
    edges = ours.to_pandas("edges")
    assert list(edges.columns) == ["layer", "head", "position", "score"] and len(edges) == 200
    assert ours.graph["edges_scored"] == theirs["graph"]["edges_scored"]
    assert [tuple(e.values())[:3] for e in ours.graph["edges"]] == [tuple(e.values())[:3] for e in theirs["graph"]["edges"]]
    np.testing.assert_allclose(edges["score"], [e["score"] for e in theirs["graph"]["edges"]], atol=1e-5)


def test_lens_equals_the_cli(smollm2):
    ours = smollm2.lens(PROMPT, layers=[0, 15, 29], top_k=3)
    theirs = cli_json("lens", SMOLLM2, "--prompt", PROMPT, "--layers", "0,15,29", "--top-k", 3)
    assert [(c["layer"], c["position"], [t["id"] for t in c["tokens"]]) for c in ours.cells] == [
        (c["layer"], c["position"], [t["id"] for t in c["tokens"]]) for c in theirs["cells"]
    ]
    assert len(ours.to_pandas()) == 3 * 5 * 3


def test_markup_in_tokens_is_escaped_in_html(smollm2):
    html = smollm2.lens("<script>alert(1)</script>", layers=[29], top_k=1)._repr_html_()
    # The prompt's tokens are `<`, `script`, `>`, ..., `</`: each a column label, escaped.
    assert "<script" not in html and "</script" not in html
    assert ">&lt;</text>" in html and ">&lt;/</text>" in html


def test_patching_equals_the_cli(smollm2):
    clean, corrupt = PROMPT, "The capital of Italy is"
    ours = smollm2.patch(clean, corrupt, " Paris", " Rome", site="resid_pre", method="both")
    theirs = cli_json(
        "patch", SMOLLM2, "--clean", clean, "--corrupt", corrupt, "--answer", " Paris", "--wrong", " Rome", "--method", "both"
    )
    assert ours.clean_metric == pytest.approx(theirs["clean_metric"], abs=1e-5)
    np.testing.assert_allclose(ours.grid, theirs["grid"], atol=1e-5)
    np.testing.assert_allclose(ours.attribution_grid, theirs["attribution_grid"], atol=1e-5)
    assert ours.to_pandas().shape == (smollm2.cfg["layers"], len(ours.tokens))
    assert ours._repr_html_().startswith("<svg")


def test_classification_rows_equal_the_cli(smollm2, tmp_path):
    rows = [json.loads(line) for line in FMD.read_text().splitlines()[:4]]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    cli("classify", SMOLLM2, "--task", "fmd", "--input", source, "--output", out, "--explain", "--max-sentences", 2)
    theirs = [json.loads(line) for line in out.read_text().splitlines()]
    ours = smollm2.classify("fmd", source, explain=True, writing={"maxSentences": 2})
    assert [r["id"] for r in ours.rows] == [r["id"] for r in theirs]
    for a, b in zip(ours.rows, theirs):
        assert a["label"] == b["label"] and a["explanation"] == b["explanation"]
        assert a["probs"] == pytest.approx(b["probs"], abs=1e-9)
    # The same rows as dicts and as a DataFrame give the same answers.
    assert smollm2.classify("fmd", rows, explain=True, writing={"maxSentences": 2}).rows == ours.rows
    frame = ours.to_pandas()
    assert {"id", "label", "explanation", "p_True", "p_False", "p_NEI"} <= set(frame.columns)


def test_generation_matches_the_cli_and_streams(smollm2):
    pieces = []
    text = smollm2.generate(PROMPT, max_tokens=12, on_text=pieces.append)
    theirs = cli_json("generate", SMOLLM2, "--prompt", PROMPT, "--max-tokens", 12)
    assert text == theirs["text"] == "".join(pieces)
    # A stop rule ends the text inside the last token: the stream ends where the text does.
    pieces = []
    text = smollm2.generate(PROMPT, max_tokens=32, max_sentences=1, on_text=pieces.append)
    assert text == "".join(pieces) == cli_json("generate", SMOLLM2, "--prompt", PROMPT, "--max-tokens", 32, "--max-sentences", 1)["text"]
    # False from on_text stops at that very token, and on_text is not called again.
    calls = []
    first = smollm2.generate(PROMPT, max_tokens=12, on_text=lambda piece: calls.append(piece) or False)
    assert calls == [" Paris"] and first == " Paris"


def test_bad_inputs_are_typed_exceptions(smollm2, tmp_path):
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    with pytest.raises(glassbox.GgufError):
        glassbox.Model.open(not_gguf)
    with pytest.raises(glassbox.GgufError):
        glassbox.Model.open(tmp_path / "missing.gguf")
    with pytest.raises(glassbox.InputError):
        glassbox.Model.open(SMOLLM2, backend="tpu")
    with pytest.raises(glassbox.TaskError, match="no task named"):
        smollm2.classify("no-such-task", [{"id": "a", "claim": "x", "context": "y"}])
    with pytest.raises(glassbox.InputError, match="needs the field"):
        smollm2.classify("fmd", [{"id": "a", "text": "no claim here"}])
    report = smollm2.classify("fmd", [{"id": "a", "text": "no claim"}, {"id": "b", "claim": "x", "context": "y"}], errors="report")
    assert [r["id"] for r in report.rows] == ["b"]
    assert report.errors[0]["line"] == 1 and report.errors[0]["id"] == "a"
    with pytest.raises(glassbox.InputError, match="no hook"):
        smollm2.run_with_cache(PROMPT, names="blocks.99.hook_resid_post")
    with pytest.raises(glassbox.InputError, match="past the limit"):
        smollm2.run_with_cache(PROMPT, names="*", max_bytes=1000)
    with pytest.raises(glassbox.InputError):
        smollm2.top_tokens(PROMPT, ablate=["99.0"])
    with pytest.raises(glassbox.TokenizerError):
        smollm2.attribute(PROMPT, target=" not one token at all")
    with pytest.raises(glassbox.ModelError, match="empty"):
        smollm2.top_tokens("")
    assert issubclass(glassbox.TaskError, glassbox.GlassboxError)


def test_an_interrupt_stops_a_long_call_and_the_model_goes_on(smollm2):
    calls = []

    def interrupt(done, total):
        calls.append((done, total))
        raise KeyboardInterrupt

    clean, corrupt = "When Mary and John went to the store, John gave a drink to", "When Mary and John went to the store, Mary gave a drink to"
    with pytest.raises(KeyboardInterrupt):
        smollm2.patch(clean, corrupt, " Mary", " John", progress=interrupt)
    # Raised once, the interrupt stopped the run: no progress was reported after it.
    assert len(calls) == 1 and calls[0][0] < calls[0][1]
    assert smollm2.top_tokens(PROMPT, k=1)[0]["token"] == " Paris"
    # An attribution stops after its step, as the browser's Cancel stops it.
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        smollm2.attribute(PROMPT, graph=True, progress=interrupt)
    assert calls == [(1, 6)]
    assert smollm2.attribute(PROMPT, exact_neurons=10).target["token"] == " Paris"


def test_calls_from_threads_share_one_model(smollm2):
    results = [None] * 4

    def look(i):
        results[i] = smollm2.top_tokens(PROMPT, k=1)[0]["id"]

    threads = [threading.Thread(target=look, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [7042] * 4


def test_a_small_model_opens_on_its_own():
    tiny = glassbox.Model.open(TINY, backend="cpu", threads=1)
    assert tiny.cfg["vocab_size"] == 49152 and tiny.backend == "cpu"
    assert tiny.to_str_tokens("Hello world") == ["Hello", " world"]


def test_evaluate_equals_the_cli(smollm2, tmp_path):
    rows = [json.loads(line) for line in FMD.read_text().splitlines()[:6]]
    predicted = smollm2.classify("fmd", rows).rows
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in predicted) + "not json\n")
    ours = glassbox.evaluate("fmd", FMD, predicted + [{"id": "x"}])
    theirs = cli_json("evaluate", "--task", "fmd", "--gold", FMD, "--pred", pred)
    assert ours.report["accuracy"] == theirs["accuracy"] and ours.report["confusion"] == theirs["confusion"]
    assert ours.report["macro_f1"] == pytest.approx(theirs["macro_f1"], abs=1e-12)
    assert ours.problems == [{"side": "pred", "line": 7, "error": "not a JSON object with an \"id\" and a string \"label\""}]
    assert len(ours.report["missing"]) == 54
    assert set(ours.to_pandas()["label"]) <= {"True", "False", "NEI"}
    with pytest.raises(glassbox.InputError, match="no prediction matches"):
        glassbox.evaluate("fmd", FMD, [{"id": "nobody", "label": "True"}])
