"""MAP fit of a linear softmax probe with an isotropic Gaussian prior.

Objective, summed over samples (not averaged):

    L(W) = sum_i CE(W phi_i, y_i) + (lambda / 2) * ||W||_F^2

It is strictly convex for ``lambda > 0``, so the MAP is unique. Small
problems use Newton's method with a backtracking line search. The Hessian it
factorises at the last iterate is the full posterior precision, so the fit
returns it. Problems with more than ``NEWTON_MAX_PARAMETERS`` weights use
L-BFGS, whose steps cost ``O(N D C)`` instead of a Hessian build.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lsi_app.engine.posterior import ggn_precision

logger = logging.getLogger(__name__)

#: Default stopping rule by dtype: the gradient norm of L divided by the
#: number of samples. A per-sample scale keeps one setting meaningful from 100
#: to 1e6 samples. Newton steps reach 1e-10 in float64 at little extra cost.
#: That keeps leave-one-out differences of typical samples (LSI near 1e-6
#: nats) above the solver's error. Float32 rounding stops near 1e-5.
GRADIENT_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}

#: L-BFGS's line search compares loss values, so it stalls once loss changes
#: fall below rounding, near 1e-8 per sample in float64 (measured on
#: synthetic problems with 100 to 5,000 samples).
LBFGS_GRADIENT_TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-5}

#: Newton converges in well under 50 steps on this problem; more means the
#: tolerance cannot be met in the working precision.
MAX_NEWTON_STEPS = 100

#: Largest parameter count solved by Newton's method. Each Newton step builds
#: the full Hessian (``O(N D^2 C^2)``); beyond a few thousand parameters
#: L-BFGS reaches the same tolerance sooner.
NEWTON_MAX_PARAMETERS = 2048

#: L-BFGS iterations are cheap; the cap only stops a run that cannot converge.
MAX_LBFGS_STEPS = 5000
_LBFGS_HISTORY = 20

#: A Newton step reuses the previous Hessian while the gradient norm falls by
#: at least this factor per step. A slower fall means the curvature has moved,
#: so the Hessian is rebuilt. Fresh Newton steps near the optimum cut it far more.
HESSIAN_REUSE_RATIO = 0.25

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
    precision : Tensor of shape (n_classes * n_features, n_classes * n_features) or None
        Hessian of ``L`` at ``weights`` (the full GGN posterior precision)
        when Newton's method was used, else None.
    gradient_norm : float
        Final ``||grad L|| / n_samples``.
    iterations : int
        Solver steps taken.
    solver : str
        ``"newton"`` or ``"lbfgs"``.
    tolerance : float
        The gradient tolerance the fit aimed for; converged when
        ``gradient_norm <= tolerance``.
    """

    weights: torch.Tensor
    precision: torch.Tensor | None
    gradient_norm: float
    iterations: int
    solver: str
    tolerance: float


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
    max_steps: int | None = None,
    solver: str = "auto",
) -> ProbeFit:
    """Fit the probe's MAP weights to a gradient-norm tolerance.

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
        ``GRADIENT_TOLERANCE`` (Newton) or ``LBFGS_GRADIENT_TOLERANCE`` for
        the dtype of ``features``.
    max_steps : int, optional
        Defaults to ``MAX_NEWTON_STEPS`` or ``MAX_LBFGS_STEPS``.
    solver : {"auto", "newton", "lbfgs"}, default="auto"
        ``auto`` uses Newton up to ``NEWTON_MAX_PARAMETERS`` weights.

    Returns
    -------
    ProbeFit
    """
    n_samples, n_features = features.shape
    if initial_weights is None:
        weights = features.new_zeros(n_classes, n_features)
    else:
        weights = initial_weights.detach().clone().to(features)
    if solver == "auto":
        solver = "newton" if n_classes * n_features <= NEWTON_MAX_PARAMETERS else "lbfgs"
    defaults = LBFGS_GRADIENT_TOLERANCE if solver == "lbfgs" else GRADIENT_TOLERANCE
    if tolerance is None:
        tolerance = defaults.get(features.dtype, defaults[torch.float32])
    if solver == "lbfgs":
        return _fit_lbfgs(features, labels, weights, prior_precision, tolerance, max_steps or MAX_LBFGS_STEPS)
    if solver != "newton":
        raise ValueError(f"solver={solver!r} is not supported; use 'auto', 'newton' or 'lbfgs'")
    max_steps = max_steps or MAX_NEWTON_STEPS

    steps = 0
    factor = None
    if features.dtype == torch.float64 and tolerance < GRADIENT_TOLERANCE[torch.float32]:
        # Most steps are far from the optimum, where float32 Hessians, at half
        # the cost, point as well; float64 steps then polish the result.
        weights32, _, steps, factor32 = _newton(
            features.float(), labels, weights.float(), prior_precision, GRADIENT_TOLERANCE[torch.float32], max_steps
        )
        weights = weights32.double()
        factor = None if factor32 is None else factor32.double()
    weights, grad_norm, more_steps, _ = _newton(
        features, labels, weights, prior_precision, tolerance, max_steps - steps, factor
    )
    steps += more_steps

    _warn_unconverged(grad_norm, tolerance, steps, "Newton")
    probs = torch.softmax(features @ weights.T, dim=1)
    precision = ggn_precision(features, probs, prior_precision)
    return ProbeFit(
        weights=weights, precision=precision, gradient_norm=grad_norm, iterations=steps, solver="newton", tolerance=tolerance
    )


def _newton(features, labels, weights, prior_precision, tolerance, max_steps, factor=None):
    """Run damped Newton steps; return weights, gradient norm per sample, steps and the last Cholesky factor."""
    n_samples = features.shape[0]
    loss = objective(features, labels, weights, prior_precision)
    previous_norm = math.inf
    for step in range(max_steps + 1):
        grad = gradient(features, labels, weights, prior_precision)
        grad_norm = float(torch.linalg.vector_norm(grad)) / n_samples
        if grad_norm <= tolerance or step == max_steps:
            break

        # A Hessian is the costly part of a step. Keep the last one while it
        # still cuts the gradient norm by HESSIAN_REUSE_RATIO per step.
        fresh = factor is None or grad_norm > HESSIAN_REUSE_RATIO * previous_norm
        if fresh:
            probs = torch.softmax(features @ weights.T, dim=1)
            factor = torch.linalg.cholesky(ggn_precision(features, probs, prior_precision))
        previous_norm = grad_norm
        direction = torch.cholesky_solve(grad.reshape(-1, 1), factor).reshape(weights.shape)
        decrease = float((grad * direction).sum())
        step_size = 1.0
        for _ in range(_MAX_BACKTRACKS):
            candidate = weights - step_size * direction
            candidate_loss = objective(features, labels, candidate, prior_precision)
            if candidate_loss <= loss - _ARMIJO_C * step_size * decrease:
                break
            if step_size == 1.0 and _gradient_norm(features, labels, candidate, prior_precision) < 0.5 * grad_norm * n_samples:
                # Near the optimum the loss change falls below rounding while
                # the full Newton step still shrinks the gradient: accept it.
                break
            step_size *= _BACKTRACK
        else:
            if not fresh:
                # The kept Hessian no longer gives a descent step: rebuild it.
                factor, previous_norm = None, math.inf
                continue
            # No decrease at any step size with a fresh Hessian: the iterate
            # is optimal to rounding.
            logger.debug("line search stalled at gradient norm %.3g", grad_norm)
            break
        weights, loss = candidate, candidate_loss
    return weights, grad_norm, step, factor


def _fit_lbfgs(features, labels, weights, prior_precision, tolerance, max_steps) -> ProbeFit:
    n_samples = features.shape[0]
    parameters = weights.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [parameters],
        lr=1.0,
        max_iter=max_steps,
        max_eval=10 * max_steps,
        history_size=_LBFGS_HISTORY,
        line_search_fn="strong_wolfe",
        # torch stops when max |grad| <= tolerance_grad; the 2-norm test below decides.
        tolerance_grad=tolerance * n_samples / (parameters.numel() ** 0.5),
        tolerance_change=0.0,
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(features, labels, parameters, prior_precision)
        loss.backward()
        return loss

    optimizer.step(closure)
    final = parameters.detach()
    grad_norm = float(torch.linalg.vector_norm(gradient(features, labels, final, prior_precision))) / n_samples
    steps = optimizer.state[parameters].get("n_iter", 0)
    _warn_unconverged(grad_norm, tolerance, steps, "L-BFGS")
    return ProbeFit(
        weights=final, precision=None, gradient_norm=grad_norm, iterations=steps, solver="lbfgs", tolerance=tolerance
    )


def _gradient_norm(features, labels, weights, prior_precision) -> float:
    return float(torch.linalg.vector_norm(gradient(features, labels, weights, prior_precision)))


def _warn_unconverged(grad_norm: float, tolerance: float, steps: int, solver: str) -> None:
    if grad_norm > tolerance:
        logger.warning(
            "probe fit stopped at gradient norm %.3g per sample (tolerance %.3g) after %d %s "
            "steps; float32 input or a tiny prior precision can cause this",
            grad_norm,
            tolerance,
            steps,
            solver,
        )
