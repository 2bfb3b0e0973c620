"""Benchmark: the Ray engine with 1 and 2 workers against the local engine, and an ImageNet-size estimate.

Parts:

1. scoring: 50,000 x 512 synthetic features, 10 classes, kron and full
   posteriors. The local engine (``compute_lsi``, all torch threads) against
   ``score_ray`` with 1 and 2 workers of one CPU each, shards of 5,000 rows.
   Every run starts from an empty workspace, so every shard is computed.
2. extraction: 3,000 in-memory 64 x 64 RGB images through a one-layer
   TorchScript CNN, locally and with 1 and 2 workers, shards of 500 images.
3. per-sample kron scoring time at 1,000 classes x 2,049 inputs, measured
   on one thread with a synthetic posterior (no fit), and at 10 x 513 for
   comparison.
4. an estimate for 1M x 2048 x 1000 with the kron posterior: memory per
   worker and on the driver, and time, from the figures of parts 1 and 3.

Every path runs once on small data before the timed runs, so imports and
Ray worker start-up (importing torch) are not timed.

Run: .venv/bin/python -m benchmarks.ray_scaling [--samples 50000] [--images 3000]
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks._common import machine, synthetic
from lsi_app.data.samples import ArrayImages, SampleSet, fingerprint_of
from lsi_app.engine import compute_lsi
from lsi_app.engine._linalg import CHUNK_BYTES
from lsi_app.engine.api import MAX_CHUNK_BYTES, FittedPosterior, score_rows
from lsi_app.engine.posterior import KronPosterior
from lsi_app.models import open_model
from lsi_app.scaleout import DEFAULT_SHARD_SIZE, RayOptions, extract_features_ray, ray_session, score_ray

N_FEATURES = 512
N_CLASSES = 10
SCORE_SHARD_SIZE = 5_000
IMAGE_SHARD_SIZE = 500
IMAGE_SIZE = 64
WORKER_COUNTS = (1, 2)

#: The ImageNet-size problem of the estimate.
TARGET_SAMPLES = 1_000_000
TARGET_FEATURES = 2048
TARGET_CLASSES = 1000

#: Rows timed at the target size; at tens of milliseconds per row this takes a few seconds.
TARGET_ROWS = 48


class TinyBackbone(nn.Module):
    """One 3 x 3 convolution with 32 channels; the pipeline averages its output to 32 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, kernel_size=3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(images))


def _timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def warm_up(workspace: Path) -> None:
    """Run every timed path once on small data, so imports and worker start-up are not timed."""
    features, labels = synthetic(2000, N_FEATURES, N_CLASSES, dtype=np.float32)
    options = RayOptions(num_workers=max(WORKER_COUNTS), shard_size=1000, gpus_per_worker=0)
    for hessian in ("kron", "full"):
        compute_lsi(features, labels, hessian=hessian, device="cpu")
        score_ray(features, labels, cache_root=workspace, result_key="warm-up", hessian=hessian, options=options, device="cpu")
    benchmark_extraction(4 * max(WORKER_COUNTS), workspace, shard_size=4)


def benchmark_scoring(n_samples: int, workspace: Path) -> list[dict]:
    """Time the local engine and score_ray with 1 and 2 workers, for kron and full."""
    features, labels = synthetic(n_samples, N_FEATURES, N_CLASSES, dtype=np.float32)
    rows = []
    for hessian in ("kron", "full"):
        reference, seconds = _timed(lambda: compute_lsi(features, labels, hessian=hessian, device="cpu"))
        settings = reference.attrs["lsi_settings"]
        rows.append(
            {
                "case": f"score {hessian}",
                "engine": f"local ({torch.get_num_threads()} threads)",
                "total": seconds,
                "fit": settings["fit_seconds"],
                "work": settings["score_seconds"],
                "solver_steps": settings["solver_steps"],
                "max_rel_diff": 0.0,
            }
        )
        for workers in WORKER_COUNTS:
            options = RayOptions(num_workers=workers, shard_size=SCORE_SHARD_SIZE, gpus_per_worker=0)
            table, seconds = _timed(
                lambda: score_ray(
                    features,
                    labels,
                    cache_root=workspace / f"{hessian}-{workers}",
                    result_key=f"bench-{hessian}",
                    hessian=hessian,
                    options=options,
                    device="cpu",
                )
            )
            settings = table.attrs["lsi_settings"]
            difference = np.abs(table["lsi"] - reference["lsi"]) / np.maximum(np.abs(reference["lsi"]), 1e-30)
            rows.append(
                {
                    "case": f"score {hessian}",
                    "engine": f"ray, {workers} worker{'s' if workers > 1 else ''}",
                    "total": seconds,
                    "fit": settings["fit_seconds"],
                    "work": settings["score_seconds"],
                    "solver_steps": settings["solver_steps"],
                    "max_rel_diff": float(difference.max()),
                }
            )
    return rows


def benchmark_extraction(n_images: int, workspace: Path, shard_size: int = IMAGE_SHARD_SIZE) -> list[dict]:
    """Time a TorchScript extraction locally and with 1 and 2 workers."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_images, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    samples = SampleSet(
        name="random-images",
        sample_ids=np.array([f"img{i}" for i in range(n_images)]),
        labels=np.arange(n_images) % N_CLASSES,
        class_names=tuple(str(c) for c in range(N_CLASSES)),
        reader=ArrayImages(images),
        fingerprint=fingerprint_of(images),
    )
    model_path = workspace / "tiny.pt"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript
        torch.jit.script(TinyBackbone()).save(str(model_path))
        extractor = open_model(str(model_path), samples.kind, image_size=IMAGE_SIZE)
    reference, seconds = _timed(lambda: extractor.extract(samples, device=torch.device("cpu")))
    rows = [{"case": "extract", "engine": f"local ({torch.get_num_threads()} threads)", "total": seconds, "max_rel_diff": 0.0}]
    for workers in WORKER_COUNTS:
        options = RayOptions(num_workers=workers, shard_size=shard_size, gpus_per_worker=0)
        extraction, seconds = _timed(
            lambda: extract_features_ray(
                samples,
                str(model_path),
                cache_root=workspace / f"images-{workers}",
                features_key="bench-images",
                model_options={"image_size": IMAGE_SIZE},
                options=options,
            )
        )
        difference = np.abs(extraction.features - reference.features) / np.maximum(np.abs(reference.features), 1e-6)
        rows.append(
            {
                "case": "extract",
                "engine": f"ray, {workers} worker{'s' if workers > 1 else ''}",
                "total": seconds,
                "max_rel_diff": float(difference.max()),
            }
        )
    return rows


def synthetic_kron(n_classes: int, n_inputs: int, n_samples: int, seed: int = 0) -> FittedPosterior:
    """Build a float32 kron posterior of the given size from random factors, without a fit.

    ``A`` is the scaled Gram matrix of 4,096 random rows (with a bias
    column) and ``G`` the mean softmax curvature of random logits, so both
    are positive semi-definite like fitted factors. The timing does not
    depend on the values.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randn(4096, n_inputs - 1, generator=generator)
    rows = torch.cat([rows, torch.ones(4096, 1)], dim=1)
    feature_factor = rows.T @ rows * (n_samples / 4096)
    probs = torch.softmax(torch.randn(4096, n_classes, generator=generator), dim=1)
    class_factor = torch.diag(probs.mean(0)) - probs.T @ probs / 4096
    mean = 0.01 * torch.randn(n_classes, n_inputs, generator=generator)
    posterior = KronPosterior(mean, class_factor, feature_factor, 1.0, n_samples)
    return FittedPosterior(posterior, torch.float32, torch.device("cpu"), True, n_classes, math.nan, {})


def seconds_per_row(fitted: FittedPosterior, n_rows: int) -> float:
    """Time score_rows on ``n_rows`` random rows on one thread; return seconds per row."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(n_rows, fitted.n_features)).astype(np.float32)
    labels = rng.integers(0, fitted.n_classes, n_rows)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        score_rows(fitted, features[:2], labels[:2])  # warm-up
        _, seconds = _timed(lambda: score_rows(fitted, features, labels))
    finally:
        torch.set_num_threads(threads)
    return seconds / n_rows


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def print_estimate(score_rows_measured: list[dict], row_small: float, row_target: float, n_samples: int) -> None:
    """Print the memory and time estimate for the ImageNet-size problem."""
    n, d, c = TARGET_SAMPLES, TARGET_FEATURES + 1, TARGET_CLASSES
    element = 4  # float32: above FLOAT64_MAX_PARAMETERS weights the engine works in float32
    shard = DEFAULT_SHARD_SIZE
    chunk = min(MAX_CHUNK_BYTES, CHUNK_BYTES * 4)
    posterior = element * (2 * d * d + 2 * c * c + 2 * c * d)  # A and its eigenvectors, G and its eigenvectors, mean, eigenvalues
    shard_bytes = element * shard * TARGET_FEATURES
    worker = posterior + 2 * shard_bytes + chunk
    features = element * n * TARGET_FEATURES
    probe_inputs = element * n * d
    logits = element * n * c
    driver = features + probe_inputs + 3 * logits + posterior

    print("\n## Estimate for 1M x 2048 x 1000, kron posterior, float32 (paper estimate, not run)\n")
    print("Memory per worker (shard of %d rows):" % shard)
    print(f"- posterior: A and its eigenvectors (2 x D x D), G and its eigenvectors (2 x C x C), mean and eigenvalues (2 x C x D): {_gb(posterior)}")
    print(f"- features shard, as received and as probe inputs with the bias column: 2 x {_gb(shard_bytes)}")
    print(f"- scoring chunk temporaries, capped by the engine: at most {_gb(chunk)} (float64 (rows, C, D) tensors, about {_gb(8 * 4 * c * d)} per row)")
    print(f"- total: about {_gb(worker)} per worker, plus the torch runtime")
    print("Memory on the driver:")
    print(f"- gathered features, 1M x 2048 float32: {_gb(features)}")
    print(f"- probe inputs with the bias column (a copy): {_gb(probe_inputs)}")
    print(f"- fit: logits, softmax probabilities and their gradient, 3 x N x C float32: {_gb(3 * logits)}")
    print(f"- total: about {_gb(driver)} at the peak of the fit (on a GPU driver, the same on the GPU)")

    kron = [row for row in score_rows_measured if row["case"] == "score kron"]
    one_worker = next(row for row in kron if row["engine"].startswith("ray, 1"))
    local = next(row for row in kron if row["engine"].startswith("local"))
    measured_row = one_worker["work"] / n_samples
    scale = (c * d) / (N_CLASSES * (N_FEATURES + 1))
    print("Time:")
    print(
        f"- scoring, measured 10 x 513 on one worker: {1e6 * measured_row:.1f} us/sample in Ray "
        f"({1e6 * row_small:.1f} us/sample in one process); scaled by C*D (x{scale:.0f}), which assumes "
        f"the O(C D) per-sample terms dominate: {1e3 * measured_row * scale:.1f} ms/sample"
    )
    print(
        f"- scoring, measured directly at 1000 x 2049 on one thread: {1e3 * row_target:.1f} ms/sample, "
        f"so 1M samples take {row_target * n / 3600:.1f} worker-hours: "
        + ", ".join(f"{row_target * n / workers / 60:.0f} min on {workers} workers" for workers in (16, 64, 256))
    )
    fit_step = local["fit"] / max(local["solver_steps"], 1)
    fit_scale = (n * d * c) / (n_samples * (N_FEATURES + 1) * N_CLASSES)
    step_minutes = fit_step * fit_scale / 60
    print(
        f"- driver fit: {local['fit']:.1f} s for {local['solver_steps']} L-BFGS steps at {n_samples} x 513 x 10 "
        f"on this CPU. A step costs O(N D C), x{fit_scale:.0f} at the target: about {step_minutes:.0f} min per "
        f"step here, {local['solver_steps'] * step_minutes / 60:.1f} h if the target also took "
        f"{local['solver_steps']} steps (the step count at the target was not measured). "
        "A GPU driver would cut this; no GPU was available to measure it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000, help="samples of the scoring runs (default 50000)")
    parser.add_argument("--images", type=int, default=3_000, help="images of the extraction runs (default 3000)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"Machine: {machine()}")

    with tempfile.TemporaryDirectory(prefix="lsi-ray-bench-") as folder, ray_session(
        RayOptions(num_workers=max(WORKER_COUNTS), gpus_per_worker=0)
    ):
        workspace = Path(folder)
        warm_up(workspace / "warm-up")
        scoring = benchmark_scoring(arguments.samples, workspace)
        extraction = benchmark_extraction(arguments.images, workspace)

    print(f"\n## Wall times ({arguments.samples} x {N_FEATURES} x {N_CLASSES} scoring, {arguments.images} images)\n")
    print("| case | engine | total (s) | fit (s) | scoring or extraction (s) | max rel. diff. to local |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in scoring:
        print(
            f"| {row['case']} | {row['engine']} | {row['total']:.2f} | {row['fit']:.2f} | {row['work']:.2f} | "
            f"{row['max_rel_diff']:.1e} |"
        )
    for row in extraction:
        print(f"| {row['case']} | {row['engine']} | {row['total']:.2f} | - | {row['total']:.2f} | {row['max_rel_diff']:.1e} |")

    row_small = seconds_per_row(synthetic_kron(N_CLASSES, N_FEATURES + 1, arguments.samples), 2000)
    row_target = seconds_per_row(synthetic_kron(TARGET_CLASSES, TARGET_FEATURES + 1, TARGET_SAMPLES), TARGET_ROWS)
    print_estimate(scoring, row_small, row_target, arguments.samples)


if __name__ == "__main__":
    main()
