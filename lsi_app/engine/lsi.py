"""Laplace Sample Information of every training sample of a linear probe.

``LSI(i) = KL(N(theta, Lambda^-1) || N(theta_-i, Lambda_-i^-1))`` in nats: how
far the posterior fit on all samples lies from the one fit without sample
``i``. Higher = more informative (the posterior depends more on that sample).
"""

from __future__ import annotations

import logging

import torch

from lsi_app.engine._linalg import CHUNK_BYTES, chunk_rows, logdet_from_cholesky
from lsi_app.engine.posterior import Posterior, fit_posterior
from lsi_app.engine.probe import fit_probe
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

def gaussian_kl(
    mean_p: torch.Tensor,
    precision_p: torch.Tensor,
    mean_q: torch.Tensor,
    precision_q: torch.Tensor,
) -> torch.Tensor:
    """Compute ``KL(N(mean_p, precision_p^-1) || N(mean_q, precision_q^-1))`` in nats.

    ``KL = 1/2 [tr(Lq Lp^-1) - P + d^T Lq d + ln det Lp - ln det Lq]`` with
    ``d = mean_q - mean_p`` and ``L`` the precision matrices.

    Parameters
    ----------
    mean_p, mean_q : Tensor of shape (n_params,)
    precision_p, precision_q : Tensor of shape (n_params, n_params)
        Symmetric positive definite.
    """
    chol_p = torch.linalg.cholesky(precision_p)
    chol_q = torch.linalg.cholesky(precision_q)
    n_params = mean_p.shape[0]

    # tr(Lq Lp^-1) = ||chol_p^-1 chol_q||_F^2
    whitened = torch.linalg.solve_triangular(chol_p, chol_q, upper=False)
    trace_term = (whitened * whitened).sum()
    diff = (mean_q - mean_p).reshape(-1, 1)
    mahalanobis = (diff.T @ precision_q @ diff).squeeze()
    logdet_ratio = logdet_from_cholesky(chol_p) - logdet_from_cholesky(chol_q)
    return 0.5 * (trace_term - n_params + mahalanobis + logdet_ratio)


def fast_lsi(
    features: torch.Tensor,
    labels: torch.Tensor,
    posterior: Posterior,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    progress: ProgressCallback = ignore_progress,
) -> torch.Tensor:
    """Approximate LSI of every sample in closed form.

    Removing sample ``i`` is approximated by one Newton step from the MAP with
    the curvature held there. With ``r_i = p_i - onehot(y_i)``,
    ``K_i = J_i Sigma J_i^T`` (entry ``c, k`` is ``phi_i^T Sigma_ck phi_i``),
    ``M_i = H_i^1/2 K_i H_i^1/2`` and ``v_i = H_i^1/2 K_i r_i``, the Woodbury
    identity and the matrix determinant lemma give

        LSI(i) = 1/2 [-tr M_i - ln det(I - M_i) + r_i^T K_i r_i
                      + v_i^T (I - M_i)^-1 v_i].

    The eigenvalues ``mu`` of ``M_i`` lie in [0, 1), so the first two terms sum
    to ``sum(-mu - ln(1 - mu)) >= 0`` and every term is non-negative. Kron and
    diag posteriors keep their structure for ``Lambda_-i`` (see their classes),
    which makes the per-sample work ``O(C D)``.

    Parameters
    ----------
    features : Tensor of shape (n_samples, n_features)
        Probe inputs, bias column included.
    labels : Tensor of shape (n_samples,)
    posterior : Posterior
        Fit on these samples.
    chunk_bytes : int, default=CHUNK_BYTES
        Budget for one chunk's intermediate tensors.
    progress : callable, optional
        Receives the completed fraction after each chunk.

    Returns
    -------
    Tensor of shape (n_samples,)
        LSI in nats; higher = more informative.
    """
    n_samples = features.shape[0]
    element_size = features.element_size()
    batch = chunk_rows(posterior.row_bytes(element_size), n_samples, chunk_bytes)
    scores = []
    for start in range(0, n_samples, batch):
        phi = features[start : start + batch]  # (B, D)
        y = labels[start : start + batch]
        probs = torch.softmax(phi @ posterior.mean.T, dim=1)  # (B, C)
        residual = probs.clone()
        residual[torch.arange(y.shape[0], device=y.device), y] -= 1.0
        scores.append(posterior.one_step_lsi(phi, probs, residual))
        progress(min(start + batch, n_samples) / n_samples, "Computing LSI")
    return torch.cat(scores)


def exact_lsi(
    features: torch.Tensor,
    labels: torch.Tensor,
    posterior: Posterior,
    indices,
    *,
    tolerance: float | None = None,
    progress: ProgressCallback = ignore_progress,
) -> torch.Tensor:
    """Compute LSI by refitting the probe without each requested sample.

    For each index the leave-one-out MAP is solved from a warm start at the
    full-data MAP, a posterior of the same structure is rebuilt at that MAP
    over the remaining samples, and the Gaussian KL is evaluated with dense
    precisions. Costs one convex solve and one P x P factorisation per index.

    Parameters
    ----------
    features, labels
        As for :func:`fast_lsi`.
    posterior : Posterior
        Fit on all samples; its structure and prior precision are reused.
    indices : iterable of int
        Samples to score.
    tolerance : float, optional
        Gradient tolerance of each refit, as in :func:`fit_probe`.
    progress : callable, optional
        Receives the completed fraction after each refit.

    Returns
    -------
    Tensor of shape (len(indices),)
    """
    indices = [int(i) for i in indices]
    n_samples = features.shape[0]
    full_mean = posterior.mean.reshape(-1)
    full_precision = posterior.dense_precision()
    scores = []
    for position, index in enumerate(indices):
        keep = torch.ones(n_samples, dtype=torch.bool, device=features.device)
        keep[index] = False
        refit = fit_probe(
            features[keep],
            labels[keep],
            posterior.n_classes,
            posterior.prior_precision,
            initial_weights=posterior.mean,
            tolerance=tolerance,
        )
        loo = fit_posterior(posterior.structure, features[keep], refit.weights, posterior.prior_precision)
        scores.append(gaussian_kl(full_mean, full_precision, refit.weights.reshape(-1), loo.dense_precision()))
        progress((position + 1) / len(indices), f"Exact LSI: refit {position + 1}/{len(indices)}")
    if not scores:
        return features.new_zeros(0)
    return torch.stack(scores)


__all__ = ["exact_lsi", "fast_lsi", "gaussian_kl"]
