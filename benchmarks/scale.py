"""Benchmark: LSI at scale, wall time and peak memory, against plain matrix products.

Cases, each in its own process so that peak memory is its own:

- full: 50,000 x 512 features, 10 classes, full posterior (5,130 weights);
- kron: 50,000 x 512 features, 100 classes, Kronecker posterior (51,300 weights);
- reference: float32 matrix products ``(Phi * w)^T Phi`` with Phi of shape
  (50,000, 513), repeated C^2 = 100 times: N D^2 C^2 multiply-adds, the
  method's essential work for the full case (Hessian blocks plus per-sample
  blocks, each using symmetry).

Data are synthetic overlapping Gaussian classes in float32. Times include the
probe fit, the posterior and the scores, not data generation.

Run: .venv/bin/python -m benchmarks.scale [--device cpu|cuda] [--samples 50000]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from benchmarks._common import machine, synthetic
from lsi_app.engine import compute_lsi

CASES = {"full": ("full", 10), "kron": ("kron", 100)}
N_FEATURES = 512


def _peak_memory() -> dict:
    peak = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if torch.cuda.is_available():
        peak["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return peak


def run_case(case: str, n_samples: int, device: str) -> dict:
    if case == "reference":
        target = torch.device("cuda" if device == "cuda" else "cpu")
        phi = torch.randn(n_samples, N_FEATURES + 1, device=target)
        weight = torch.rand(n_samples, device=target)
        _ = (phi * weight[:, None]).T @ phi  # warm-up
        if target.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(10 * 10):
            _ = (phi * weight[:, None]).T @ phi
        if target.type == "cuda":
            torch.cuda.synchronize()
        return {"seconds": time.perf_counter() - started, **_peak_memory()}

    structure, n_classes = CASES[case]
    features, labels = synthetic(n_samples, N_FEATURES, n_classes, dtype=np.float32)
    started = time.perf_counter()
    table = compute_lsi(features, labels, hessian=structure, device=device)
    seconds = time.perf_counter() - started
    settings = table.attrs["lsi_settings"]
    return {
        "seconds": seconds,
        "fit_seconds": settings["fit_seconds"],
        "score_seconds": settings["score_seconds"],
        "dtype": settings["dtype"],
        "solver_steps": settings["solver_steps"],
        "finite": bool(np.isfinite(table["lsi"]).all()),
        "min_lsi": float(table["lsi"].min()),
        **_peak_memory(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to compute (default cpu)")
    parser.add_argument("--samples", type=int, default=50_000, help="number of samples (default 50000)")
    parser.add_argument("--case", choices=["full", "kron", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if args.case:
        print(json.dumps(run_case(args.case, args.samples, args.device)))
        return

    results = {}
    for case in ["reference", "full", "kron"]:
        command = [sys.executable, "-m", "benchmarks.scale", "--case", case, "--samples", str(args.samples), "--device", args.device]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[case] = json.loads(output.strip().splitlines()[-1])
        print(f"{case}: {results[case]}", file=sys.stderr, flush=True)

    reference = results["reference"]["seconds"]
    print(f"machine: {machine()}")
    print(f"device: {args.device}, {args.samples} samples x {N_FEATURES} features (+ bias)\n")
    print("| case | weights | total (s) | fit + posterior (s) | scores (s) | vs reference | peak RSS (GiB) |" + (" peak CUDA (GiB) |" if args.device == "cuda" else ""))
    print("| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if args.device == "cuda" else ""))
    print(
        f"| reference: N D^2 C^2 float32 multiply-adds (C = 10) | - | {reference:.1f} | - | - | 1.00x | "
        f"{results['reference']['peak_rss_gib']:.2f} |" + (f" {results['reference'].get('peak_cuda_gib', 0):.2f} |" if args.device == "cuda" else "")
    )
    for case, (structure, n_classes) in CASES.items():
        result = results[case]
        print(
            f"| {structure}, {n_classes} classes | {n_classes * (N_FEATURES + 1):,} | {result['seconds']:.1f} | "
            f"{result['fit_seconds']:.1f} | {result['score_seconds']:.1f} | {result['seconds'] / reference:.2f}x | "
            f"{result['peak_rss_gib']:.2f} |" + (f" {result.get('peak_cuda_gib', 0):.2f} |" if args.device == "cuda" else "")
        )


if __name__ == "__main__":
    main()
