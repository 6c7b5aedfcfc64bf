"""scikit-learn's LogisticRegression on the features `glassbox probe train --features` wrote,
the reference for glassbox's probes (tests/interp.rs). Reads each safetensors file with NumPy
alone (8-byte header length, JSON header, little-endian F32 data), fits LogisticRegression with
its default objective (L2, C = 1, lbfgs) converged tightly, and writes every row's class
probabilities.

Usage: sklearn_probe.py OUT.json FEATURES.safetensors [...]
"""
import json
import struct
import sys

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    metadata = header.pop("__metadata__", {})
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"])
    return tensors, metadata


cases = []
for path in sys.argv[2:]:
    tensors, metadata = read_safetensors(path)
    labels = tensors.pop("labels").astype(int)
    classes = json.loads(metadata["classes"])
    # Every class, and the binary model of the first class against the rest ("rest" sorts
    # after the class names used here, so it is the positive class).
    binary = np.where(labels == 0, classes[0], "rest")
    for hook, x in tensors.items():
        for kind, y in [("all classes", np.array(classes)[labels]), ("first against the rest", binary)]:
            model = LogisticRegression(C=1.0, max_iter=100000, tol=1e-12)
            model.fit(x.astype(np.float64), y)
            cases.append({
                "features": path.split("/")[-1],
                "hook": hook,
                "labels": kind,
                "classes": [str(c) for c in model.classes_],
                "iterations": int(model.n_iter_[0]),
                "probabilities": model.predict_proba(x.astype(np.float64)).tolist(),
            })
json.dump({"generated_by": f"tests/reference/sklearn_probe.py with scikit-learn {sklearn.__version__}, numpy {np.__version__}",
           "cases": cases}, open(sys.argv[1], "w"), indent=1)
