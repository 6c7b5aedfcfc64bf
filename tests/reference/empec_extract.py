"""Reference answers for the EMPEC answer-letter extraction, from the upstream Python itself.

EMPEC's evaluation code (github.com/zhehengluoK/eval_empec, src/Evaluator.py) pulls the
multiple-choice letter out of a model's reply with `QwenEvaluator.extract_ans_zh` (35 regular
expressions tried in order, after a "first character is A-D" rule) or `extract_ans_en` (two
expressions after the same rule).  This script runs those upstream functions unchanged on
every reply in tests/data/exam_replies.jsonl, scoring each the way `eval_subject_zh` /
`eval_subject_en` do: the reply is `.strip()`ped, an empty reply has no answer, otherwise the
answer is the LAST element of the list the extractor returns (an empty list: no answer).

The upstream source is read from a git mirror with `git show HEAD:src/Evaluator.py` and
exec'd as it is; nothing of it is copied here.  It imports `tqdm`, which it never uses: when
`tqdm` is not installed a stub module stands in for it.  `extract_ans_zh` prints the replies
it finds no letter in; that output is swallowed.

Needs only python3 and git.  Run from the repository root:

    python3 tests/reference/empec_extract.py [MIRROR_REPO [REPLIES_JSONL]]

MIRROR_REPO defaults to /work/.mirror/zhehengluoK+eval_empec/repo and REPLIES_JSONL to
tests/data/exam_replies.jsonl.  It writes tests/reference/exam-extraction-python.json:
  "source":  "zhehengluoK/eval_empec <commit sha> src/Evaluator.py";
  "python":  sys.version of the interpreter that ran it (the answers depend on Python's `re`
             `\\s` and `str.strip()`, which count U+001C..U+001F as whitespace);
  "answers": {"<reply id>": "A".."D" or null}.
The script also reports the rows whose hand-worked "expected" differs from upstream.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MIRROR = "/work/.mirror/zhehengluoK+eval_empec/repo"
DEFAULT_REPLIES = os.path.join(ROOT, "tests", "data", "exam_replies.jsonl")
OUT = os.path.join(ROOT, "tests", "reference", "exam-extraction-python.json")
SOURCE_PATH = "src/Evaluator.py"


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True).stdout.decode("utf-8")


def load_upstream(repo):
    """Exec the upstream Evaluator.py at HEAD; return (commit, QwenEvaluator class)."""
    commit = git(repo, "rev-parse", "HEAD").strip()
    source = git(repo, "show", "HEAD:" + SOURCE_PATH)
    try:
        import tqdm  # noqa: F401
    except ImportError:
        stub = types.ModuleType("tqdm")
        stub.tqdm = lambda iterable=None, *args, **kwargs: iterable
        sys.modules["tqdm"] = stub
    namespace = {"__name__": "empec_evaluator"}
    exec(compile(source, "eval_empec/" + SOURCE_PATH, "exec"), namespace)
    return commit, namespace["QwenEvaluator"]


def scored_answer(extract, reply):
    """eval_subject_zh / eval_subject_en: strip, empty -> None, else the last extracted letter."""
    reply = reply.strip()
    if len(reply) == 0:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        ans_list = extract(reply)
    return ans_list[-1] if len(ans_list) > 0 else None


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MIRROR
    replies_path = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_REPLIES
    commit, QwenEvaluator = load_upstream(repo)
    # QwenEvaluator(choices, k, data); the extractors use none of them.
    evaluator = QwenEvaluator(["A", "B", "C", "D"], 0, [])
    extractors = {"zh": evaluator.extract_ans_zh, "en": evaluator.extract_ans_en}

    with open(replies_path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    answers = {}
    disagreements = []
    for row in rows:
        answer = scored_answer(extractors[row["language"]], row["output"])
        answers[row["id"]] = answer
        if "expected" in row and row["expected"] != answer:
            disagreements.append((row["id"], row["expected"], answer))

    out = {
        "source": "zhehengluoK/eval_empec %s %s" % (commit, SOURCE_PATH),
        "python": sys.version,
        "answers": answers,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", OUT, len(answers), "answers")
    for rid, expected, answer in disagreements:
        print("  %s: expected %r, upstream %r" % (rid, expected, answer))
    if disagreements:
        sys.exit("%d rows disagree with their hand-worked expected answer" % len(disagreements))


if __name__ == "__main__":
    main()
