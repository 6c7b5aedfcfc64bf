"""`glassbox classify --ray`: the CLI hands the run to glassbox.ray, which starts a local Ray
cluster for it (none is running: test_ray.py's has stopped)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import CLI, FMD, ROOT, TINY

pytest.importorskip("ray")


def test_the_cli_runs_classify_on_ray(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in [json.loads(line) for line in FMD.read_text().splitlines()[:12]]) + '{"id": "x", "text": "y"}\n')
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, GLASSBOX_PYTHON=sys.executable)
    done = subprocess.run(
        [str(CLI), "classify", str(TINY), "--task", "fmd", "--input", str(source), "--output", str(out), "--ray", "--ray-workers", "2"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert f"{source}:13: " in done.stderr and "needs the field" in done.stderr
    assert len(out.read_text().splitlines()) == 12
