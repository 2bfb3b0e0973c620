"""Choice of the prior precision by the Laplace marginal likelihood."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from lsi_app.engine.posterior import HessianStructure, Posterior, fit_posterior, log_evidence
from lsi_app.engine.probe import ProbeFit, fit_probe
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Candidate prior precisions: 1e-4 to 1e4, four per decade. Features are
#: expected on a unit scale (standardised), where the evidence peaks well
#: inside this range; a peak on an edge is logged.
PRIOR_GRID = tuple(float(value) for value in np.logspace(-4, 4, 33))


@dataclass
class PriorSelection:
    """Outcome of :func:`select_prior_precision`."""

    prior_precision: float
    log_evidence: float
    posterior: Posterior
    fit: ProbeFit
    grid: list[float] = field(default_factory=list)
    grid_log_evidence: list[float] = field(default_factory=list)


def select_prior_precision(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    structure: HessianStructure,
    *,
    grid: tuple[float, ...] = PRIOR_GRID,
    initial_weights: torch.Tensor | None = None,
    progress: ProgressCallback = ignore_progress,
) -> PriorSelection:
    """Pick the prior precision with the largest Laplace log evidence on ``grid``.

    The MAP is refitted for every candidate (warm-started from the previous
    one, largest precision first, where the problem is best conditioned) and
    the posterior of ``structure`` is rebuilt there.

    Raises
    ------
    ValueError
        When no candidate gives a finite log evidence.
    """
    values = sorted(grid, reverse=True)
    weights = initial_weights
    best: tuple[float, float, Posterior, ProbeFit] | None = None
    evidences = []
    for position, prior_precision in enumerate(values):
        fit = fit_probe(features, labels, n_classes, prior_precision, initial_weights=weights)
        weights = fit.weights
        try:
            posterior = fit_posterior(structure, features, fit.weights, prior_precision)
            evidence = log_evidence(posterior, features, labels)
        except (ValueError, torch.linalg.LinAlgError) as error:
            logger.debug("prior precision %g: evidence failed: %s", prior_precision, error)
            evidence = math.nan
        evidences.append(evidence)
        if math.isfinite(evidence) and (best is None or evidence > best[1]):
            best = (prior_precision, evidence, posterior, fit)
        progress((position + 1) / len(values), f"Choosing the prior precision: {position + 1}/{len(values)}")

    if best is None:
        raise ValueError(
            f"no prior precision in {min(values):g}..{max(values):g} gives a finite marginal "
            "likelihood; check the features for extreme values, standardise them, or pass "
            "prior_precision explicitly"
        )
    if best[0] in (values[0], values[-1]):
        logger.warning(
            "the marginal likelihood is largest at the edge of the grid (prior precision %g); "
            "rescale the features or pass prior_precision explicitly",
            best[0],
        )
    order = np.argsort(values)
    return PriorSelection(
        prior_precision=best[0],
        log_evidence=best[1],
        posterior=best[2],
        fit=best[3],
        grid=[values[i] for i in order],
        grid_log_evidence=[evidences[i] for i in order],
    )
