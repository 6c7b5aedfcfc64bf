#!/usr/bin/env python3
"""HARMONIC's neighbour groups and the synthetic-table measures, computed by scikit-learn, NumPy
and SciPy: the independent reference for glassbox's `tabular` module.

Usage: sklearn_harmonic.py OUT.json   (run from the repository root, after `make setup`)
Needs: pip install scikit-learn==1.5.2 pandas==2.2.3 (scikit-learn brings numpy and scipy)

Tables: tests/data/loan_applicants.csv (numeric and categorical columns, one duplicated row) and
models/tables/iris-train.csv / iris-test.csv (scikit-learn's iris, split by `make setup`).

- neighbours: HARMONIC's scripts/preprocess_data.py `knn_fit`: each categorical feature column
  through its own LabelEncoder, the numeric feature columns through one MinMaxScaler, the label
  column as it is, then NearestNeighbors(n_neighbors=6) fitted on the whole row and queried
  with every row: the six indices and distances as scikit-learn returns them (the row itself is
  normally first).
- privacy of a "synthetic" table (here real held-out rows, so nothing of glassbox's is an
  input): numeric columns through a StandardScaler fitted on the real rows, categorical columns
  through OneHotEncoder(handle_unknown="ignore") fitted on them, Euclidean pairwise_distances,
  each synthetic row's minimum over the real rows, np.percentile 5 and 50, and the share of
  synthetic rows equal to a real row.
- fidelity: scipy.stats.ks_2samp(...).statistic per numeric column, total variation of the
  category shares per categorical column, and np.corrcoef over the numeric columns.
- efficiency: LogisticRegression(C=1) (lbfgs, multinomial, max_iter raised until it converges)
  trained on a table and tested on held-out rows, its predictions; numeric features through a
  StandardScaler and categorical ones through OneHotEncoder(handle_unknown="ignore"), both
  fitted on the training rows. Tables: iris and breast cancer (models/tables, train → test),
  and the loan applicants (first half → second half).
"""
import json
import sys
from importlib.metadata import version

import numpy as np
import pandas as pd
import scipy.stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import LabelEncoder, MinMaxScaler, OneHotEncoder, StandardScaler

LOANS = "tests/data/loan_applicants.csv"
IRIS_TRAIN = "models/tables/iris-train.csv"
IRIS_TEST = "models/tables/iris-test.csv"


def neighbours(path, label):
    df = pd.read_csv(path)
    features = [c for c in df.columns if c != label]
    numeric = df[features].select_dtypes(include=["number"]).columns.tolist()
    categorical = df[features].select_dtypes(exclude=["number"]).columns.tolist()
    encoded = df.copy()
    for column in categorical:
        encoded[column] = LabelEncoder().fit_transform(encoded[column])
    if numeric:
        encoded[numeric] = MinMaxScaler().fit_transform(encoded[numeric])
    distances, indices = NearestNeighbors(n_neighbors=6).fit(encoded).kneighbors(encoded)
    return {"indices": indices.tolist(), "distances": distances.tolist()}


def split_halves(path):
    df = pd.read_csv(path)
    return df.iloc[: len(df) // 2].reset_index(drop=True), df.iloc[len(df) // 2 :].reset_index(drop=True)


def privacy(real, synthetic):
    numeric = real.select_dtypes(include=["number"]).columns.tolist()
    categorical = real.select_dtypes(exclude=["number"]).columns.tolist()
    parts_real, parts_syn = [], []
    if numeric:
        scaler = StandardScaler().fit(real[numeric])
        parts_real.append(scaler.transform(real[numeric]))
        parts_syn.append(scaler.transform(synthetic[numeric]))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(real[categorical])
        parts_real.append(encoder.transform(real[categorical]))
        parts_syn.append(encoder.transform(synthetic[categorical]))
    dcr = pairwise_distances(np.hstack(parts_syn), np.hstack(parts_real)).min(axis=1)
    real_rows = {tuple(r) for r in real.itertuples(index=False)}
    copies = sum(tuple(r) in real_rows for r in synthetic.itertuples(index=False))
    return {"dcr": dcr.tolist(), "dcr_p5": float(np.percentile(dcr, 5)), "dcr_median": float(np.percentile(dcr, 50)),
            "copied_rows": copies}


def fidelity(real, synthetic):
    numeric = real.select_dtypes(include=["number"]).columns.tolist()
    columns = {}
    for column in real.columns:
        if column in numeric:
            columns[column] = float(scipy.stats.ks_2samp(real[column], synthetic[column]).statistic)
        else:
            p = real[column].value_counts(normalize=True)
            q = synthetic[column].value_counts(normalize=True)
            columns[column] = float(p.sub(q, fill_value=0).abs().sum() / 2)
    r, s = np.corrcoef(real[numeric].T.to_numpy()), np.corrcoef(synthetic[numeric].T.to_numpy())
    upper = np.triu_indices(len(numeric), 1)
    differences = np.abs(r - s)[upper]
    return {"columns": columns, "correlation_mean_abs_difference": float(np.nanmean(differences)),
            "correlation_max_abs_difference": float(np.nanmax(differences))}


def logistic_predictions(train, test, label):
    features = [c for c in train.columns if c != label]
    numeric = train[features].select_dtypes(include=["number"]).columns.tolist()
    categorical = train[features].select_dtypes(exclude=["number"]).columns.tolist()
    parts_train, parts_test = [], []
    if numeric:
        scaler = StandardScaler().fit(train[numeric])
        parts_train.append(scaler.transform(train[numeric]))
        parts_test.append(scaler.transform(test[numeric]))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train[categorical])
        parts_train.append(encoder.transform(train[categorical]))
        parts_test.append(encoder.transform(test[categorical]))
    model = LogisticRegression(C=1.0, max_iter=100_000, tol=1e-10).fit(np.hstack(parts_train), train[label].astype(str))
    return {"predictions": model.predict(np.hstack(parts_test)).tolist(),
            "probabilities": model.predict_proba(np.hstack(parts_test)).tolist()}


def main(out_path):
    loans_real, loans_synthetic = split_halves(LOANS)
    iris_real, iris_synthetic = pd.read_csv(IRIS_TRAIN), pd.read_csv(IRIS_TEST)
    out = {
        "generator": f"tests/reference/sklearn_harmonic.py, scikit-learn {version('scikit-learn')}, "
                     f"numpy {version('numpy')}, scipy {version('scipy')}, pandas {version('pandas')}",
        "neighbours": {"loans": neighbours(LOANS, "approved"), "iris": neighbours(IRIS_TRAIN, "target")},
        "privacy": {"loans": privacy(loans_real, loans_synthetic), "iris": privacy(iris_real, iris_synthetic)},
        "fidelity": {"loans": fidelity(loans_real, loans_synthetic), "iris": fidelity(iris_real, iris_synthetic)},
        "efficiency": {
            "loans": logistic_predictions(loans_real, loans_synthetic, "approved"),
            "iris": logistic_predictions(iris_real, iris_synthetic, "target"),
            "breast_cancer": logistic_predictions(pd.read_csv("models/tables/breast_cancer-train.csv"),
                                                  pd.read_csv("models/tables/breast_cancer-test.csv"), "target"),
        },
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
