"""Benchmark: finding flipped labels on digits, AUROC of each score.

Labels of 5% and 20% of the digits are moved to another class at random
(5 seeds each). Each score ranks samples; AUROC measures how well it puts
the flipped ones first. Scores compared side by side on the same features:
``mislabel_score`` (LSI times loss), ``lsi``, ``loss`` (cross-entropy of the
given label at the probe's MAP) and cleanlab's label-quality score
(self-confidence) from 5-fold out-of-fold probabilities of scikit-learn's
LogisticRegression.

Features: standardised pixels, and the in-app CNN's features (the CNN
trained on the noisy labels, as the dashboard would).

Run: .venv/bin/python -m benchmarks.mislabel   (needs the bench extra: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import logging
import warnings

import numpy as np
from cleanlab.rank import get_label_quality_scores
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from benchmarks._common import digits_pixels, flip_labels, machine
from lsi_app.data import load_digits_samples
from lsi_app.engine import compute_lsi
from lsi_app.models import CNNConfig, extract_features, train_cnn
from lsi_app.pipeline import standardize

RATES = (0.05, 0.20)
SCORES = ("mislabel_score", "lsi", "loss", "cleanlab")


def _cnn_features(noisy: np.ndarray) -> np.ndarray:
    samples = load_digits_samples()
    model = train_cnn(samples.images, noisy, samples.n_classes, CNNConfig())
    return standardize(extract_features(model, samples.images))


def _aurocs(features: np.ndarray, noisy: np.ndarray, flipped: np.ndarray, prior_precision) -> dict:
    table = compute_lsi(features, noisy, prior_precision=prior_precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out_of_fold = cross_val_predict(LogisticRegression(max_iter=2000), features, noisy, cv=5, method="predict_proba")
    scores = {name: table[name].to_numpy() for name in SCORES[:3]}
    scores["cleanlab"] = 1.0 - get_label_quality_scores(noisy, out_of_fold)
    return {name: roc_auc_score(flipped, value) for name, value in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="label-flip seeds per rate (default 5)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    pixels, labels = digits_pixels()
    print(f"machine: {machine()}\n")
    print("| features | prior precision | flipped | " + " | ".join(f"AUROC {name}" for name in SCORES) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in SCORES) + " |")
    for feature_name in ["pixels", "CNN features"]:
        for prior_precision in [1.0, "auto"]:
            for rate in RATES:
                runs = []
                for seed in range(args.seeds):
                    noisy, flipped = flip_labels(labels, rate, 10, seed)
                    features = pixels if feature_name == "pixels" else _cnn_features(noisy)
                    runs.append(_aurocs(features, noisy, flipped, prior_precision))
                cells = []
                for name in SCORES:
                    values = np.array([run[name] for run in runs])
                    cells.append(f"{values.mean():.4f} ± {values.std():.4f}")
                print(f"| {feature_name} | {prior_precision} | {rate:.0%} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
