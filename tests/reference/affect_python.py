"""Reference scores for src/tasks/affect.rs from the real Python packages.

Run with a Python that has `pip install vaderSentiment==3.3.2 empath==0.89`
(empath imports `requests`, which pip installs with it):

    python tests/reference/affect_python.py

It writes tests/reference/affect-python.json next to this file; the Rust test
`tasks::affect::tests::matches_the_python_packages` compares against it.
The sentences poke at every VADER rule (negation, boosters, ALL CAPS, "but",
"least", "kind of", idioms, punctuation emphasis, emoji) and at the edges
(empty text, only punctuation, non-ASCII, Python-only whitespace).
It needs Python 3.11 or older, whose sum() the port reproduces (see main).
"""

import json
import os
import platform
import sys
from importlib.metadata import version

from empath import Empath
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

MONEY = "Money money MONEY money, dollars."
SENTENCES = [
    # financial claims
    "The company's revenue grew 25% this quarter, beating analyst expectations.",
    "Shares plunged 40% after the CEO was charged with fraud.",
    "This stock is guaranteed to double by Friday!!! Don't miss out!",
    "Our fund delivered solid returns, but fees ate most of the gains.",
    "I lost $5,000,000 in 2 days \u2014 a 100% loss.",
    "Profit: 3.14159 million; loss: -2.5 million.",
    "The fund looks good and fine, yet it is a scam!",
    # conspiracy-style posts
    "They don't want you to know the truth about the vaccines.",
    "WAKE UP people, the government is lying to you!!!",
    "The mainstream media is hiding the REAL story. Do your own research??",
    "Is this really happening???? Open your eyes!!!!!",
    # negation, boosters, dampeners
    "The food was not good.",
    "The movie isn't very bad.",
    "It was not bad at all.",
    "The service was extremely good.",
    "The results were kind of disappointing.",
    "The plan is sort of okay, kinda fine, I guess.",
    "No problem, no worries.",
    "There is no good answer, no or nor bad one.",
    "Sentiment analysis has never been this good!",
    "Without a doubt, an excellent idea.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "At least it isn't a horrible book.",
    # ALL CAPS, "but", punctuation
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "THIS IS VERY GOOD",
    "Today SUX!",
    # 1.9 + 0.8 - 2.7 is exactly 0 summed left to right, so "!" adds nothing
    "Good food, fine service, hate the prices!",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    # Python's list.index() inside VADER's "but" rule finds the first equal score
    "Abilities and acceptance, but abilities.",
    "Acceptance, but abilities.",
    "What?!?!?!",
    # idioms and special cases
    "With VADER, sentiment analysis is the shit!",
    "Our new product doesn't cut the mustard.",
    "Oh well, this party is the bomb.",
    "On the other hand, VADER is quite bad ass",
    "Yeah right, that is so great.",
    # emoji and emoticons
    "I love this \U0001F600",
    "My heart is broken \U0001F494\U0001F494",
    "\U0001F600\U0001F600\U0001F600",
    "Great job\U0001F600 well done",
    "Make sure you :) or :D today!",
    # edges
    "",
    "!!! ??? ...",
    "   \t\n  ",
    "42",
    "Ceci est tr\u00e8s bon, merci beaucoup.",
    "Das ist nicht gut, aber auch nicht schlecht.",
    "\u03a3\u039f\u03a6\u039f\u03a3 good \u0391\u03a5\u03a4\u039f",
    "\u01c5A GOOD good",
    "good\x1fbad money\x1cmoney",
    MONEY,
    "The market is good but the risk is terrible! " * 50,
]

# normalize=False for a few texts, and category subsets: empath counts a
# category once per time it is named, so a repeated name doubles its count.
RAW = {SENTENCES[0], SENTENCES[7], MONEY, "good\x1fbad money\x1cmoney", ""}
CALLS = [
    (MONEY, ["money", "wealthy", "money"], False),
    ("They don't want you to know the truth about the vaccines.", ["deception", "government"], True),
    ("Our fund delivered solid returns, but fees ate most of the gains.", [], False),
]


def main():
    if sys.version_info >= (3, 12):
        sys.exit(
            "Python 3.12 made sum() of floats compensated (Neumaier), which changes VADER's compound "
            "when scores cancel exactly; src/tasks/affect.rs follows Python <= 3.11, the project's "
            "interpreter. Run this with python3.11."
        )
    vader = SentimentIntensityAnalyzer()
    empath = Empath()
    out = {
        "generator": "tests/reference/affect_python.py: vaderSentiment {}, empath {}, Python {}".format(
            version("vaderSentiment"), version("empath"), platform.python_version()
        ),
        "sentences": [],
        "empath_calls": [],
    }
    for text in SENTENCES:
        row = {
            "text": text,
            "vader": vader.polarity_scores(text),
            "empath": empath.analyze(text, normalize=True),
        }
        if text in RAW:
            row["empath_counts"] = empath.analyze(text, normalize=False)
        out["sentences"].append(row)
    for text, cats, normalize in CALLS:
        out["empath_calls"].append({
            "text": text,
            "categories": cats,
            "normalize": normalize,
            "result": empath.analyze(text, categories=cats, normalize=normalize),
        })
    # One sentence per line keeps the file small and its diffs readable.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "affect-python.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"generator": %s,\n' % json.dumps(out["generator"]))
        for key in ("sentences", "empath_calls"):
            rows = ",\n".join(json.dumps(r, ensure_ascii=False, sort_keys=True) for r in out[key])
            f.write('"%s": [\n%s\n]%s\n' % (key, rows, "," if key == "sentences" else "}"))
    print("wrote", path, len(SENTENCES), "sentences,", len(CALLS), "extra empath calls")


if __name__ == "__main__":
    main()
