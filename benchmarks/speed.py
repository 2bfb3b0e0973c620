"""Benchmark: fast LSI on all of digits against per-sample refits, in one run.

Three ways to score digits (1797 standardised 64-pixel images, 10 classes,
prior precision 1):

- fast: ``compute_lsi`` end to end (probe MAP, full posterior, closed form)
  for all samples;
- exact: this engine's warm-started leave-one-out refit per sample, timed on
  a random subset and scaled to all samples;
- published protocol: 1000 epochs of full-batch SGD plus a laplace-torch
  diagonal posterior per left-out sample (``benchmarks/published_protocol.py``),
  timed on a random subset and scaled to all samples.

Run: .venv/bin/python -m benchmarks.speed [--exact-samples 50] [--protocol-samples 5]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from benchmarks._common import digits_pixels, machine
from benchmarks.published_protocol import protocol_lsi
from lsi_app.engine import compute_lsi, exact_lsi, fit_posterior, fit_probe
from lsi_app.engine._linalg import append_bias

REPEATS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exact-samples", type=int, default=50, help="samples timed with exact refits (default 50)")
    parser.add_argument("--protocol-samples", type=int, default=5, help="samples timed with the published protocol (default 5)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    features, labels = digits_pixels()
    n_samples = len(labels)
    rng = np.random.default_rng(0)

    compute_lsi(features, labels)  # warm-up: first calls pay for library loading
    fast_times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        compute_lsi(features, labels)
        fast_times.append(time.perf_counter() - started)
    fast_total = min(fast_times)

    x = append_bias(torch.as_tensor(features, dtype=torch.float64))
    y = torch.as_tensor(labels)
    posterior = fit_posterior("full", x, fit_probe(x, y, 10, 1.0).weights, 1.0)
    subset = rng.choice(n_samples, size=args.exact_samples, replace=False)
    started = time.perf_counter()
    exact_lsi(x, y, posterior, subset)
    exact_per_sample = (time.perf_counter() - started) / args.exact_samples

    subset = rng.choice(n_samples, size=args.protocol_samples, replace=False)
    started = time.perf_counter()
    protocol_lsi(features, labels, subset)
    # One extra training fits the full-data posterior; spread it over the subset.
    protocol_per_sample = (time.perf_counter() - started) / (args.protocol_samples + 1)

    exact_total = exact_per_sample * n_samples
    protocol_total = protocol_per_sample * (n_samples + 1)
    print(f"machine: {machine()}")
    print(f"digits: {n_samples} samples, full posterior, float64 (fast, exact); float32 (protocol)\n")
    print("| method | per sample (s) | all 1797 samples (s) | slower than fast |")
    print("| --- | --- | --- | --- |")
    print(f"| fast (closed form, best of {REPEATS}) | {fast_total / n_samples:.2e} | {fast_total:.3f} | 1x |")
    print(
        f"| exact leave-one-out ({args.exact_samples} timed) | {exact_per_sample:.3f} | {exact_total:.0f} (scaled) | "
        f"{exact_total / fast_total:,.0f}x |"
    )
    print(
        f"| published protocol ({args.protocol_samples} timed) | {protocol_per_sample:.3f} | {protocol_total:.0f} (scaled) | "
        f"{protocol_total / fast_total:,.0f}x |"
    )


if __name__ == "__main__":
    main()
