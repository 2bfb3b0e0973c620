"""Laplace posterior over the weights of a linear softmax probe.

The probe maps a feature vector ``phi`` (length D, bias column included) to
logits ``W phi`` with ``W`` of shape (C, D). Parameters are flattened
class-major, ``theta[c * D + d] = W[c, d]``, which is also the row-major
flattening of ``torch.nn.Linear(D, C, bias=False).weight``.

For this model the generalised Gauss-Newton (GGN) matrix equals the exact
Hessian of the summed cross-entropy, so the posterior precision is

    Lambda = sum_i (H_i kron phi_i phi_i^T) + lambda * I,
    H_i = diag(p_i) - p_i p_i^T,

with ``p_i`` the softmax probabilities at the MAP and ``lambda`` the prior
precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from lsi_app.engine._linalg import chunk_rows, logdet_from_cholesky, softmax_curvature


def ggn_precision(
    features: torch.Tensor, probs: torch.Tensor, prior_precision: float
) -> torch.Tensor:
    """Compute the dense GGN posterior precision of a linear softmax probe.

    Parameters
    ----------
    features : Tensor of shape (n_samples, n_features)
        Probe inputs, bias column included.
    probs : Tensor of shape (n_samples, n_classes)
        Softmax probabilities at the parameters where the curvature is taken.
    prior_precision : float
        Precision ``lambda`` of the isotropic Gaussian prior.

    Returns
    -------
    Tensor of shape (n_classes * n_features, n_classes * n_features)
        ``Lambda`` in class-major order.
    """
    n_samples, n_features = features.shape
    n_classes = probs.shape[1]
    n_params = n_classes * n_features

    # Accumulate sum_i vec(H_i) vec(phi_i phi_i^T)^T as one matrix product per
    # chunk: (C*C, B) @ (B, D*D). Each row of a chunk holds C*C + D*D values.
    row_bytes = (n_classes**2 + n_features**2) * features.element_size()
    batch = chunk_rows(row_bytes, n_samples)
    blocks = features.new_zeros(n_classes * n_classes, n_features * n_features)
    for start in range(0, n_samples, batch):
        phi = features[start : start + batch]
        curvature = softmax_curvature(probs[start : start + batch])
        outer = (phi[:, :, None] * phi[:, None, :]).reshape(phi.shape[0], -1)
        blocks += curvature.reshape(phi.shape[0], -1).T @ outer

    # blocks[(c, k), (d, e)] -> precision[(c, d), (k, e)]
    precision = (
        blocks.reshape(n_classes, n_classes, n_features, n_features)
        .permute(0, 2, 1, 3)
        .reshape(n_params, n_params)
    )
    precision.diagonal().add_(prior_precision)
    return precision


@dataclass
class FullPosterior:
    """Gaussian posterior ``N(mean, precision^-1)`` with a dense precision matrix.

    Parameters
    ----------
    mean : Tensor of shape (n_classes, n_features)
        MAP weights of the probe.
    precision : Tensor of shape (n_params, n_params)
        Posterior precision ``Lambda`` in class-major order.
    """

    mean: torch.Tensor
    precision: torch.Tensor

    @property
    def n_classes(self) -> int:
        return self.mean.shape[0]

    @property
    def n_features(self) -> int:
        return self.mean.shape[1]

    @cached_property
    def cholesky(self) -> torch.Tensor:
        """Lower Cholesky factor of the precision, of shape (n_params, n_params)."""
        factor, info = torch.linalg.cholesky_ex(self.precision)
        if int(info) != 0:
            raise ValueError(
                "posterior precision is not positive definite; "
                "increase prior_precision (it must be > 0) or check the features for "
                "extreme values"
            )
        return factor

    @cached_property
    def covariance(self) -> torch.Tensor:
        """Posterior covariance ``Sigma = Lambda^-1``, of shape (n_params, n_params)."""
        return torch.cholesky_inverse(self.cholesky)

    @property
    def logdet_precision(self) -> torch.Tensor:
        return logdet_from_cholesky(self.cholesky)

    def class_blocks(self) -> torch.Tensor:
        """Return ``Sigma`` as blocks ``[c, d, k, e] = Sigma[c * D + d, k * D + e]``."""
        c, d = self.n_classes, self.n_features
        return self.covariance.reshape(c, d, c, d)
