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


def encoded(fitted_on, other, columns):
    """`fitted_on` and `other` as numbers: the numeric columns through a StandardScaler and the
    categorical ones through OneHotEncoder(handle_unknown="ignore"), both fitted on `fitted_on`."""
    numeric = fitted_on[columns].select_dtypes(include=["number"]).columns.tolist()
    categorical = fitted_on[columns].select_dtypes(exclude=["number"]).columns.tolist()
    parts_fitted, parts_other = [], []
    if numeric:
        scaler = StandardScaler().fit(fitted_on[numeric])
        parts_fitted.append(scaler.transform(fitted_on[numeric]))
        parts_other.append(scaler.transform(other[numeric]))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(fitted_on[categorical])
        parts_fitted.append(encoder.transform(fitted_on[categorical]))
        parts_other.append(encoder.transform(other[categorical]))
    return np.hstack(parts_fitted), np.hstack(parts_other)


def privacy(real, synthetic):
    real_x, synthetic_x = encoded(real, synthetic, list(real.columns))
    dcr = pairwise_distances(synthetic_x, real_x).min(axis=1)
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
    train_x, test_x = encoded(train, test, [c for c in train.columns if c != label])
    model = LogisticRegression(C=1.0, max_iter=100_000, tol=1e-10).fit(train_x, train[label].astype(str))
    return {"predictions": model.predict(test_x).tolist(), "probabilities": model.predict_proba(test_x).tolist()}


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
