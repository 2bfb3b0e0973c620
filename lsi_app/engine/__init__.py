"""Linear-probe Laplace engine: probe MAP, posterior, LSI and Gaussian KL.

Pure torch and numpy; nothing here imports the user interface.
"""

from lsi_app.engine.api import Device, Hessian, Method, compute_lsi, resolve_device, validate_inputs
from lsi_app.engine.lsi import exact_lsi, fast_lsi, gaussian_kl
from lsi_app.engine.mislabel import mislabel_score
from lsi_app.engine.posterior import (
    DiagPosterior,
    FullPosterior,
    HessianStructure,
    KronPosterior,
    Posterior,
    fit_posterior,
    ggn_precision,
    log_evidence,
)
from lsi_app.engine.prior import PRIOR_GRID, PriorSelection, select_prior_precision
from lsi_app.engine.probe import ProbeFit, fit_probe

__all__ = [
    "PRIOR_GRID",
    "Device",
    "DiagPosterior",
    "FullPosterior",
    "Hessian",
    "HessianStructure",
    "KronPosterior",
    "Method",
    "Posterior",
    "PriorSelection",
    "ProbeFit",
    "compute_lsi",
    "exact_lsi",
    "fast_lsi",
    "fit_posterior",
    "fit_probe",
    "gaussian_kl",
    "ggn_precision",
    "log_evidence",
    "mislabel_score",
    "resolve_device",
    "select_prior_precision",
    "validate_inputs",
]
