"""Small problems and dense float64 references for the engine tests."""

from __future__ import annotations

import numpy as np
import torch


def blobs(n_samples: int, n_features: int, n_classes: int, seed: int = 0, spread: float = 1.0):
    """Gaussian class blobs with overlap, as float64 tensors (bias column appended)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, n_features))
    labels = np.arange(n_samples) % n_classes
    features = centers[labels] + spread * rng.normal(size=(n_samples, n_features))
    x = torch.tensor(np.hstack([features, np.ones((n_samples, 1))]), dtype=torch.float64)
    return x, torch.tensor(labels, dtype=torch.int64)


def dense_precision(x: torch.Tensor, weights: torch.Tensor, prior_precision: float) -> torch.Tensor:
    """``sum_i J_i^T H_i J_i + lambda I`` built sample by sample with explicit Jacobians."""
    n_classes, n_features = weights.shape
    total = prior_precision * torch.eye(n_classes * n_features, dtype=x.dtype)
    for phi in x:
        p = torch.softmax(weights @ phi, dim=0)
        curvature = torch.diag(p) - torch.outer(p, p)
        jacobian = torch.kron(torch.eye(n_classes, dtype=x.dtype), phi[None, :])  # (C, C*D)
        total += jacobian.T @ curvature @ jacobian
    return total


def reference_kl(mean_p, precision_p, mean_q, precision_q) -> float:
    """KL between Gaussians given by precision matrices, via torch.distributions."""
    p = torch.distributions.MultivariateNormal(mean_p, precision_matrix=precision_p)
    q = torch.distributions.MultivariateNormal(mean_q, precision_matrix=precision_q)
    return float(torch.distributions.kl_divergence(p, q))
