import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY = ROOT / "tests" / "fixtures" / "smollm2-vocab-tiny-q8_0.gguf"
FMD = ROOT / "tests" / "data" / "fmd_claims.jsonl"
# The CLI the package is compared with: the native test build's, unless one is named.
CLI = Path(os.environ.get("GLASSBOX_CLI", ROOT / "target" / "debug" / "glassbox"))


def cli(*args):
    """The CLI's stdout for `args` on the CPU backend, or its failure with stderr."""
    done = subprocess.run(
        [str(CLI), "--backend", "cpu", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise AssertionError(f"glassbox {' '.join(map(str, args))} failed: {done.stderr}")
    return done.stdout


def cli_json(*args):
    return json.loads(cli(*args, "--json"))


@pytest.fixture(scope="session")
def smollm2():
    import glassbox

    return glassbox.Model.open(SMOLLM2, backend="cpu")
