"""glassbox.ray on a local Ray cluster of two workers, started and stopped here: the rows equal a
single-process run, bad rows are reported with their lines, and a worker killed mid-run loses
and repeats no row."""

import json
import os
import signal

import pytest

import glassbox
from conftest import FMD, TINY

ray = pytest.importorskip("ray")
import glassbox.ray  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def fmd_rows(copies=1):
    rows = [json.loads(line) for line in FMD.read_text().splitlines()]
    return [dict(row, id=f"{row['id']}-{copy}") for copy in range(copies) for row in rows]


def test_rows_equal_a_single_process_run_and_bad_rows_are_reported(cluster, tmp_path):
    source = tmp_path / "rows.jsonl"
    good = fmd_rows()
    lines = [json.dumps(r) for r in good[:30]] + ['{"id": "broken", ', '{"id": "no-claim", "text": "x"}']
    lines += [json.dumps(r) for r in good[30:]]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    written, errors = glassbox.ray.classify(source, TINY, "fmd", output=str(out), concurrency=2, threads=1, batch_size=8)
    assert written == 60
    assert [(e["line"], e["id"]) for e in errors] == [(31, None), (32, "no-claim")]
    assert "not JSON" in errors[0]["error"] and "needs the field" in errors[1]["error"]
    by_ray = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    single = glassbox.Model.open(TINY, backend="cpu", threads=1).classify("fmd", good)
    assert len(by_ray) == 60
    for row in single.rows:
        assert by_ray[row["id"]] == row


def test_parquet_output(cluster, tmp_path):
    out = tmp_path / "parquet"
    written, errors = glassbox.ray.classify(fmd_rows()[:10], TINY, "fmd", output=str(out), concurrency=2, threads=1)
    assert (written, errors) == (10, [])
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pandas()
    assert sorted(table["id"]) == sorted(r["id"] for r in fmd_rows()[:10])


def worker_pids():
    """The processes of the classifying actors, by the title Ray gives them."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"MapBatches(_Classifier)" in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return sorted(pids)


def test_a_worker_killed_mid_run_loses_and_repeats_no_row(cluster):
    rows = fmd_rows(copies=3)
    result = glassbox.ray.classify(
        rows, TINY, "fmd", concurrency=2, threads=1, batch_size=4, explain=True, max_new_tokens=48
    )
    seen, killed = [], None
    for row in result.iter_rows():
        seen.append(row)
        if len(seen) == 8 and killed is None:
            before = worker_pids()
            assert len(before) == 2
            killed = before[0]
            os.kill(killed, signal.SIGKILL)
    assert killed is not None and killed not in worker_pids()
    ids = [r["id"] for r in seen]
    assert all(r["error"] == "" for r in seen)
    assert sorted(ids) == sorted(r["id"] for r in rows)  # none lost, none twice


def test_attribution_over_prompts_equals_a_single_process(cluster):
    prompts = ["The capital of France is", "One, two, three,", "Hello"]
    result = glassbox.ray.attribute(prompts, TINY, concurrency=2, threads=1, top=5, exact_neurons=10)
    rows = sorted(result.iter_rows(), key=lambda r: r["line"])
    assert [r["line"] for r in rows] == [1, 2, 3] and all(r["error"] == "" for r in rows)
    single = glassbox.Model.open(TINY, backend="cpu", threads=1)
    for row, prompt in zip(rows, prompts):
        alone = single.attribute(prompt, top=5, exact_neurons=10)
        by_ray = json.loads(row["row"])
        assert by_ray["target"] == alone.target and by_ray["heads"] == alone.heads and by_ray["neurons"] == alone.neurons


def test_a_ray_dataset_of_the_users_own(cluster):
    rows = fmd_rows()[:12]
    dataset = ray.data.from_items(rows)
    by_ray = {r["id"]: json.loads(r["row"]) for r in glassbox.ray.classify(dataset, TINY, "fmd", concurrency=2, threads=1).iter_rows()}
    single = glassbox.Model.open(TINY, backend="cpu", threads=1).classify("fmd", rows)
    assert by_ray == {row["id"]: row for row in single.rows}
