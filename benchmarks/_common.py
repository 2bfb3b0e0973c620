"""Datasets and machine description shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import subprocess

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from lsi_app.data import load_digits_samples
from lsi_app.models import CNNConfig, extract_features, train_cnn
from lsi_app.pipeline import standardize


def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """Digits as 64 standardised pixels per image, and their labels."""
    features, labels = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(features), labels


def digits_cnn_features() -> tuple[np.ndarray, np.ndarray]:
    """Digits as the dashboard scores them: standardised 64-d features of the in-app CNN."""
    samples = load_digits_samples()
    model = train_cnn(samples.images, samples.labels, samples.n_classes, CNNConfig())
    return standardize(extract_features(model, samples.images)), samples.labels


def synthetic(n_samples: int, n_features: int, n_classes: int, seed: int = 0, dtype=np.float64):
    """Overlapping Gaussian classes: centres of norm about 0.3 sqrt(D), unit noise."""
    rng = np.random.default_rng(seed)
    centers = 0.3 * rng.normal(size=(n_classes, n_features))
    labels = rng.integers(0, n_classes, n_samples)
    features = centers[labels] + rng.normal(size=(n_samples, n_features))
    return features.astype(dtype), labels


def flip_labels(labels: np.ndarray, rate: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Move a ``rate`` share of labels to another class chosen uniformly; return labels and the flip mask."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(labels.shape[0]) < rate
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return noisy, flipped


def machine() -> str:
    """Describe the CPU, core count, memory, GPU, library versions and commit in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {gpu}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; commit {commit}"
    )
