"""Shared tensor helpers for the linear-probe engine."""

from __future__ import annotations

import torch

#: Upper bound, in bytes, for one chunk's intermediate tensors. Chunking keeps
#: the per-sample work in large matrix products while bounding peak memory on
#: both CPU and GPU; 256 MiB leaves room beside a 10k x 10k float32 covariance.
CHUNK_BYTES = 256 * 2**20


def chunk_rows(bytes_per_row: int, n_rows: int, budget: int = CHUNK_BYTES) -> int:
    """Return how many rows fit in ``budget`` bytes, at least 1 and at most ``n_rows``."""
    return max(1, min(n_rows, budget // max(1, bytes_per_row)))


def append_bias(features: torch.Tensor) -> torch.Tensor:
    """Append a constant 1 column, so the bias is one more weight under the same prior."""
    ones = features.new_ones(features.shape[0], 1)
    return torch.cat([features, ones], dim=1)


def softmax_curvature(probs: torch.Tensor) -> torch.Tensor:
    """Return the softmax cross-entropy Hessian ``diag(p) - p p^T`` for each row.

    Parameters
    ----------
    probs : Tensor of shape (n_samples, n_classes)

    Returns
    -------
    Tensor of shape (n_samples, n_classes, n_classes)
    """
    return torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]


def logdet_from_cholesky(cholesky_factor: torch.Tensor) -> torch.Tensor:
    """Return ``ln det A`` given the lower Cholesky factor of ``A``."""
    return 2.0 * torch.log(torch.diagonal(cholesky_factor, dim1=-2, dim2=-1)).sum(-1)
