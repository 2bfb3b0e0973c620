"""Laplace Sample Information of every training sample of a linear probe.

``LSI(i) = KL(N(theta, Lambda^-1) || N(theta_-i, Lambda_-i^-1))`` in nats: how
far the posterior fit on all samples lies from the one fit without sample
``i``. Higher = more informative (the posterior depends more on that sample).
"""

from __future__ import annotations

import torch

from lsi_app.engine._linalg import chunk_rows, logdet_from_cholesky, softmax_curvature, symmetric_sqrt
from lsi_app.engine.posterior import FullPosterior, ggn_precision
from lsi_app.engine.probe import fit_probe

#: Eigenvalues of M_i are < 1 in exact arithmetic; this cap keeps ln(1 - mu)
#: finite when rounding pushes one to 1 in float32.
_MAX_EIGENVALUE = 1.0 - 1e-7


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
    posterior: FullPosterior,
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
    to ``sum(-mu - ln(1 - mu)) >= 0`` and every term is non-negative.

    Parameters
    ----------
    features : Tensor of shape (n_samples, n_features)
        Probe inputs, bias column included.
    labels : Tensor of shape (n_samples,)
    posterior : FullPosterior
        Fit on these samples.

    Returns
    -------
    Tensor of shape (n_samples,)
        LSI in nats; higher = more informative.
    """
    n_samples, n_features = features.shape
    n_classes = posterior.n_classes
    # sigma_by_feature[d, (c, k, e)] = Sigma[c*D + d, k*D + e]
    sigma_by_feature = posterior.class_blocks().permute(1, 0, 2, 3).reshape(n_features, -1)

    row_bytes = 2 * n_classes * n_classes * n_features * features.element_size()
    batch = chunk_rows(row_bytes, n_samples)
    scores = []
    for start in range(0, n_samples, batch):
        phi = features[start : start + batch]  # (B, D)
        y = labels[start : start + batch]
        probs = torch.softmax(phi @ posterior.mean.T, dim=1)  # (B, C)
        residual = probs.clone()
        residual[torch.arange(y.shape[0]), y] -= 1.0

        projected = (phi @ sigma_by_feature).reshape(-1, n_classes, n_classes, n_features)
        k_blocks = (projected * phi[:, None, None, :]).sum(-1)  # (B, C, C)
        k_blocks = 0.5 * (k_blocks + k_blocks.transpose(1, 2))

        curvature_sqrt = symmetric_sqrt(softmax_curvature(probs))
        m_blocks = curvature_sqrt @ k_blocks @ curvature_sqrt
        mu, eigenvectors = torch.linalg.eigh(m_blocks)
        mu = mu.clamp(0.0, _MAX_EIGENVALUE)

        k_residual = (k_blocks @ residual[:, :, None]).squeeze(-1)  # (B, C)
        v = (curvature_sqrt @ k_residual[:, :, None]).squeeze(-1)
        v_rotated = (eigenvectors.transpose(1, 2) @ v[:, :, None]).squeeze(-1)

        logdet_term = (-mu - torch.log1p(-mu)).sum(-1)
        gradient_term = (residual * k_residual).sum(-1)
        newton_term = (v_rotated * v_rotated / (1.0 - mu)).sum(-1)
        scores.append(0.5 * (logdet_term + gradient_term + newton_term))
    return torch.cat(scores)


def exact_lsi(
    features: torch.Tensor,
    labels: torch.Tensor,
    posterior: FullPosterior,
    prior_precision: float,
    indices: torch.Tensor | list[int],
    *,
    tolerance: float | None = None,
) -> torch.Tensor:
    """Compute LSI by refitting the probe without each requested sample.

    For each index the leave-one-out MAP is solved from a warm start at the
    full-data MAP, the precision is rebuilt at that MAP over the remaining
    samples, and the Gaussian KL is evaluated. Costs one convex solve and one
    P x P factorisation per index.

    Parameters
    ----------
    features, labels
        As for :func:`fast_lsi`.
    posterior : FullPosterior
        Fit on all samples with ``prior_precision``.
    prior_precision : float
    indices : sequence of int
        Samples to score.
    tolerance : float, optional
        Gradient tolerance of each refit, as in :func:`fit_probe`.

    Returns
    -------
    Tensor of shape (len(indices),)
    """
    n_samples = features.shape[0]
    n_classes = posterior.n_classes
    full_mean = posterior.mean.reshape(-1)
    scores = []
    for index in [int(i) for i in indices]:
        keep = torch.ones(n_samples, dtype=torch.bool, device=features.device)
        keep[index] = False
        refit = fit_probe(
            features[keep],
            labels[keep],
            n_classes,
            prior_precision,
            initial_weights=posterior.mean,
            tolerance=tolerance,
        )
        scores.append(
            gaussian_kl(full_mean, posterior.precision, refit.weights.reshape(-1), refit.precision)
        )
    if not scores:
        return features.new_zeros(0)
    return torch.stack(scores)


__all__ = ["exact_lsi", "fast_lsi", "gaussian_kl", "ggn_precision"]
