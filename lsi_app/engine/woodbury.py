"""Closed-form LSI for a rank-(C-1) downdate of a dense posterior precision."""

from __future__ import annotations

import torch

from lsi_app.engine._linalg import logdet_from_cholesky

#: Eigenvalues of M_i are < 1 in exact arithmetic. The cap keeps ln(1 - mu)
#: finite when float32 rounding pushes one to 1.
_MAX_EIGENVALUE = 1.0 - 1e-6


def low_rank_downdate_lsi(k_blocks: torch.Tensor, probs: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Evaluate the one-step LSI for ``Lambda_-i = Lambda - U_i U_i^T`` from C x C blocks.

    ``k_blocks`` (B, C, C) contains ``K_i = J_i Sigma J_i^T``. ``probs`` and
    ``residual`` (B, C) contain ``p_i`` and ``p_i - onehot(y_i)``.

    Uses the factor ``B = diag(q) (I - q q^T)``, ``q = sqrt(p)``, of
    ``H = diag(p) - p p^T = B B^T``. ``M = B^T K B`` has the eigenvalues of
    ``H^1/2 K H^1/2`` and ``v^T (I - M)^-1 v`` with ``v = B^T K r`` does not
    depend on the choice of factor, so no matrix square root is needed, and
    ``M`` costs ``O(C^2)`` per sample because ``I - q q^T`` is a projection.
    """
    q = probs.sqrt()
    scaled = k_blocks * q[:, :, None] * q[:, None, :]  # diag(q) K diag(q)
    scaled_q = (scaled @ q[:, :, None]).squeeze(-1)
    q_scaled_q = (q * scaled_q).sum(-1)
    m_blocks = (
        scaled
        - q[:, :, None] * scaled_q[:, None, :]
        - scaled_q[:, :, None] * q[:, None, :]
        + q_scaled_q[:, None, None] * q[:, :, None] * q[:, None, :]
    )
    m_blocks = 0.5 * (m_blocks + m_blocks.transpose(1, 2))

    k_residual = (k_blocks @ residual[:, :, None]).squeeze(-1)
    u = q * k_residual
    v = u - q * (q * u).sum(-1, keepdim=True)
    gradient_term = (residual * k_residual).sum(-1)

    n_classes = probs.shape[1]
    identity = torch.eye(n_classes, dtype=probs.dtype, device=probs.device)
    cholesky, info = torch.linalg.cholesky_ex(identity - m_blocks)
    trace_m = torch.diagonal(m_blocks, dim1=1, dim2=2).sum(-1)
    logdet_term = -trace_m - logdet_from_cholesky(cholesky)
    newton_term = (v * torch.cholesky_solve(v[:, :, None], cholesky).squeeze(-1)).sum(-1)
    scores = 0.5 * (logdet_term + gradient_term + newton_term)

    failed = info != 0
    if failed.any():
        # I - M is not numerically positive definite for these rows (float32
        # rounding, or a structured covariance); clamp its eigenvalues instead.
        mu, vectors = torch.linalg.eigh(m_blocks[failed])
        mu = mu.clamp(0.0, _MAX_EIGENVALUE)
        rotated = (vectors.transpose(1, 2) @ v[failed][:, :, None]).squeeze(-1)
        scores[failed] = 0.5 * (
            (-mu - torch.log1p(-mu)).sum(-1) + gradient_term[failed] + (rotated**2 / (1.0 - mu)).sum(-1)
        )
    return scores
