"""Benchmark: closed-form (fast) LSI against exact leave-one-out, per posterior structure.

For each dataset and structure it reports the Spearman correlation, the
overlap of the 50 highest-LSI samples and the median relative error of fast
against exact LSI. Exact LSI refits the probe once per sample, so on the
synthetic set it is computed on a subset: the 200 highest fast-LSI samples
plus 200 random others. There the top-50 overlap is measured inside that
subset, which contains the exact top 50 whenever fast and exact agree on the
top 200.

Run: .venv/bin/python -m benchmarks.accuracy [--synthetic-subset 400] [--structures full kron diag]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks._common import digits_cnn_features, digits_pixels, machine, synthetic
from lsi_app.engine import exact_lsi, fast_lsi, fit_posterior, fit_probe
from lsi_app.engine._linalg import append_bias

STRUCTURES = ("full", "kron", "diag")
TOP_K = 50
PRIOR_PRECISION = 1.0


def _subset(fast: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    if size >= fast.size:
        return np.arange(fast.size)
    top = np.argsort(fast)[::-1][: size // 2]
    rest = np.setdiff1d(np.arange(fast.size), top)
    extra = np.random.default_rng(seed).choice(rest, size=size - top.size, replace=False)
    return np.sort(np.concatenate([top, extra]))


def compare(features: np.ndarray, labels: np.ndarray, structure: str, subset_size: int) -> dict:
    x = append_bias(torch.as_tensor(features, dtype=torch.float64))
    y = torch.as_tensor(labels)
    n_classes = int(labels.max()) + 1
    fit = fit_probe(x, y, n_classes, PRIOR_PRECISION)
    posterior = fit_posterior(structure, x, fit.weights, PRIOR_PRECISION)

    started = time.perf_counter()
    fast = fast_lsi(x, y, posterior).numpy()
    fast_seconds = time.perf_counter() - started

    subset = _subset(fast, subset_size)
    started = time.perf_counter()
    exact = exact_lsi(x, y, posterior, subset).numpy()
    exact_seconds = time.perf_counter() - started

    fast_subset = fast[subset]
    top_fast = set(np.argsort(fast_subset)[::-1][:TOP_K])
    top_exact = set(np.argsort(exact)[::-1][:TOP_K])
    return {
        "n_exact": int(subset.size),
        "spearman": float(spearmanr(fast_subset, exact).statistic),
        "top50_overlap": len(top_fast & top_exact) / TOP_K,
        "median_relative_error": float(np.median(np.abs(fast_subset - exact) / np.maximum(np.abs(exact), 1e-300))),
        "fast_seconds": fast_seconds,
        "exact_seconds_per_sample": exact_seconds / subset.size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-subset", type=int, default=400, help="samples scored exactly on the synthetic set (default 400)")
    parser.add_argument("--digits-subset", type=int, default=1797, help="samples scored exactly on digits (default all 1797)")
    parser.add_argument(
        "--structures", nargs="+", default=list(STRUCTURES), choices=STRUCTURES, help="posterior structures (default all)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    datasets = {
        "digits pixels (1797 x 64 x 10)": (digits_pixels(), args.digits_subset),
        "digits CNN features (1797 x 64 x 10)": (digits_cnn_features(), args.digits_subset),
        "synthetic (5000 x 128 x 10)": (synthetic(5000, 128, 10), args.synthetic_subset),
    }
    print(f"machine: {machine()}")
    print(f"prior precision {PRIOR_PRECISION}, float64, bias appended\n")
    print("| dataset | structure | exact on | Spearman | top-50 overlap | median rel. error | fast total (s) | exact per sample (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, ((features, labels), subset_size) in datasets.items():
        for structure in args.structures:
            result = compare(features, labels, structure, subset_size)
            print(
                f"| {name} | {structure} | {result['n_exact']} | {result['spearman']:.4f} | "
                f"{result['top50_overlap']:.2f} | {result['median_relative_error']:.3f} | "
                f"{result['fast_seconds']:.3f} | {result['exact_seconds_per_sample']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
