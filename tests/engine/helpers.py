"""Small problems and dense float64 references for the engine tests."""

from __future__ import annotations

import numpy as np
import torch

STRUCTURES = ["full", "kron", "diag"]


def blobs(n_samples: int, n_features: int, n_classes: int, seed: int = 0, spread: float = 1.0):
    """Gaussian class blobs with overlap, as float64 tensors (bias column appended)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, n_features))
    labels = np.arange(n_samples) % n_classes
    features = centers[labels] + spread * rng.normal(size=(n_samples, n_features))
    x = torch.tensor(np.hstack([features, np.ones((n_samples, 1))]), dtype=torch.float64)
    return x, torch.tensor(labels, dtype=torch.int64)


def _curvatures(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(x @ weights.T, dim=1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def _jacobian(phi: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.kron(torch.eye(n_classes, dtype=phi.dtype), phi[None, :])  # (C, C*D)


def dense_precision(x: torch.Tensor, weights: torch.Tensor, prior_precision: float) -> torch.Tensor:
    """``sum_i J_i^T H_i J_i + lambda I`` built sample by sample with explicit Jacobians."""
    n_classes, n_features = weights.shape
    total = prior_precision * torch.eye(n_classes * n_features, dtype=x.dtype)
    for phi, curvature in zip(x, _curvatures(x, weights)):
        jacobian = _jacobian(phi, n_classes)
        total += jacobian.T @ curvature @ jacobian
    return total


def dense_kron_precision(x: torch.Tensor, weights: torch.Tensor, prior_precision: float) -> torch.Tensor:
    """K-FAC: ``(1/N) sum_i H_i  kron  sum_i phi_i phi_i^T + lambda I``."""
    class_factor = _curvatures(x, weights).mean(0)
    precision = torch.kron(class_factor, x.T @ x)
    return precision + prior_precision * torch.eye(precision.shape[0], dtype=x.dtype)


def dense_diag_precision(x: torch.Tensor, weights: torch.Tensor, prior_precision: float) -> torch.Tensor:
    return torch.diag(torch.diagonal(dense_precision(x, weights, prior_precision)))


DENSE_PRECISION = {"full": dense_precision, "kron": dense_kron_precision, "diag": dense_diag_precision}


def dense_loo_precision(structure: str, x: torch.Tensor, weights: torch.Tensor, prior_precision: float, index: int):
    """The engine's one-step ``Lambda_-i``: curvature held at the MAP, sample ``index`` removed."""
    keep = torch.arange(x.shape[0]) != index
    if structure == "full":
        return dense_precision(x[keep], weights, prior_precision)
    if structure == "diag":
        return dense_diag_precision(x[keep], weights, prior_precision)
    # Kron: A' without the sample; G' keeps the eigenbasis of the full-data G
    # with the diagonal of the leave-one-out class factor in that basis.
    curvatures = _curvatures(x, weights)
    _, class_vectors = torch.linalg.eigh(curvatures.mean(0))
    loo_class = curvatures[keep].sum(0) / (x.shape[0] - 1)
    class_diag = torch.diagonal(class_vectors.T @ loo_class @ class_vectors)
    held_class = class_vectors @ torch.diag(class_diag) @ class_vectors.T
    precision = torch.kron(held_class, x[keep].T @ x[keep])
    return precision + prior_precision * torch.eye(precision.shape[0], dtype=x.dtype)


def dense_one_step_lsi(structure, x, y, weights, prior_precision, index) -> float:
    """KL from the full posterior to one Newton step without ``index``, built densely."""
    n_classes = weights.shape[0]
    precision = DENSE_PRECISION[structure](x, weights, prior_precision)
    loo_precision = dense_loo_precision(structure, x, weights, prior_precision, index)
    p = torch.softmax(weights @ x[index], dim=0)
    residual = p - torch.nn.functional.one_hot(y[index], n_classes).double()
    gradient = _jacobian(x[index], n_classes).T @ residual
    step = torch.linalg.solve(loo_precision, gradient)
    mean = weights.reshape(-1)
    return reference_kl(mean, precision, mean + step, loo_precision)


def reference_kl(mean_p, precision_p, mean_q, precision_q) -> float:
    """KL between Gaussians given by precision matrices, via torch.distributions."""
    p = torch.distributions.MultivariateNormal(mean_p, precision_matrix=precision_p)
    q = torch.distributions.MultivariateNormal(mean_q, precision_matrix=precision_q)
    return float(torch.distributions.kl_divergence(p, q))
