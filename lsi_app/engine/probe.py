"""MAP fit of a linear softmax probe with an isotropic Gaussian prior.

Objective, summed over samples (not averaged):

    L(W) = sum_i CE(W phi_i, y_i) + (lambda / 2) * ||W||_F^2

It is strictly convex for ``lambda > 0``, so the MAP is unique. The solver is
Newton's method with a backtracking line search; the Hessian it factorises at
the last iterate is the posterior precision, so the fit hands it on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lsi_app.engine.posterior import ggn_precision

logger = logging.getLogger(__name__)

#: Default stopping rule by dtype: the gradient norm of L divided by the
#: number of samples. A per-sample scale keeps one setting meaningful from 100
#: to 1e6 samples. Newton steps reach 1e-10 in float64 at little extra cost,
#: which keeps leave-one-out differences of typical samples (LSI near 1e-6
#: nats) above the solver's error; float32 rounding stops near 1e-5.
GRADIENT_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}

#: Newton converges in well under 50 steps on this problem; more means the
#: tolerance cannot be met in the working precision.
MAX_NEWTON_STEPS = 100

#: Armijo sufficient-decrease constant and step shrink factor of the line search.
_ARMIJO_C = 1e-4
_BACKTRACK = 0.5
_MAX_BACKTRACKS = 30


@dataclass
class ProbeFit:
    """Result of :func:`fit_probe`.

    Attributes
    ----------
    weights : Tensor of shape (n_classes, n_features)
        MAP weights.
    precision : Tensor of shape (n_classes * n_features, n_classes * n_features)
        Hessian of ``L`` at ``weights`` (the GGN posterior precision).
    gradient_norm : float
        Final ``||grad L|| / n_samples``.
    iterations : int
        Newton steps taken.
    """

    weights: torch.Tensor
    precision: torch.Tensor
    gradient_norm: float
    iterations: int


def objective(
    features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, prior_precision: float
) -> torch.Tensor:
    """Return ``L(W)``: summed cross-entropy plus ``lambda/2 ||W||^2``."""
    logits = features @ weights.T
    data_term = F.cross_entropy(logits, labels, reduction="sum")
    return data_term + 0.5 * prior_precision * (weights * weights).sum()


def gradient(
    features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, prior_precision: float
) -> torch.Tensor:
    """Return ``grad L`` as a (n_classes, n_features) tensor."""
    probs = torch.softmax(features @ weights.T, dim=1)
    residuals = probs
    residuals[torch.arange(labels.shape[0]), labels] -= 1.0
    return residuals.T @ features + prior_precision * weights


def fit_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    prior_precision: float,
    *,
    initial_weights: torch.Tensor | None = None,
    tolerance: float | None = None,
    max_steps: int = MAX_NEWTON_STEPS,
) -> ProbeFit:
    """Fit the probe's MAP weights by damped Newton steps.

    Parameters
    ----------
    features : Tensor of shape (n_samples, n_features)
        Probe inputs, bias column included.
    labels : Tensor of shape (n_samples,)
        Integer classes in ``0..n_classes-1``.
    n_classes : int
    prior_precision : float
        ``lambda > 0``.
    initial_weights : Tensor of shape (n_classes, n_features), optional
        Warm start, for example the full-data MAP when refitting without one
        sample. Zeros by default.
    tolerance : float, optional
        Stop when ``||grad L|| / n_samples`` falls below it. Defaults to
        ``GRADIENT_TOLERANCE`` for the dtype of ``features``.
    max_steps : int, default=MAX_NEWTON_STEPS

    Returns
    -------
    ProbeFit
    """
    n_samples, n_features = features.shape
    if tolerance is None:
        tolerance = GRADIENT_TOLERANCE.get(features.dtype, GRADIENT_TOLERANCE[torch.float32])
    if initial_weights is None:
        weights = features.new_zeros(n_classes, n_features)
    else:
        weights = initial_weights.detach().clone().to(features)

    loss = objective(features, labels, weights, prior_precision)
    for step in range(max_steps + 1):
        grad = gradient(features, labels, weights, prior_precision)
        probs = torch.softmax(features @ weights.T, dim=1)
        precision = ggn_precision(features, probs, prior_precision)
        grad_norm = float(torch.linalg.vector_norm(grad)) / n_samples
        if grad_norm <= tolerance or step == max_steps:
            break

        direction = torch.cholesky_solve(
            grad.reshape(-1, 1), torch.linalg.cholesky(precision)
        ).reshape(n_classes, n_features)
        decrease = float((grad * direction).sum())
        step_size = 1.0
        for _ in range(_MAX_BACKTRACKS):
            candidate = weights - step_size * direction
            candidate_loss = objective(features, labels, candidate, prior_precision)
            if candidate_loss <= loss - _ARMIJO_C * step_size * decrease:
                break
            step_size *= _BACKTRACK
        else:
            # No decrease at any step size: the iterate is optimal to rounding.
            logger.debug("line search stalled at gradient norm %.3g", grad_norm)
            break
        weights, loss = candidate, candidate_loss

    if grad_norm > tolerance:
        logger.warning(
            "probe fit stopped at gradient norm %.3g per sample (tolerance %.3g) "
            "after %d Newton steps; float32 input or a tiny prior precision can cause "
            "this",
            grad_norm,
            tolerance,
            step,
        )
    return ProbeFit(weights=weights, precision=precision, gradient_norm=grad_norm, iterations=step)
