"""Linear-probe Laplace engine: probe MAP, posterior, LSI and Gaussian KL.

Pure torch and numpy; nothing here imports the user interface.
"""

from lsi_app.engine.api import Device, Hessian, Method, compute_lsi, resolve_device, validate_inputs
from lsi_app.engine.lsi import exact_lsi, fast_lsi, gaussian_kl
from lsi_app.engine.posterior import FullPosterior, ggn_precision
from lsi_app.engine.probe import ProbeFit, fit_probe

__all__ = [
    "Device",
    "FullPosterior",
    "Hessian",
    "Method",
    "ProbeFit",
    "compute_lsi",
    "exact_lsi",
    "fast_lsi",
    "fit_probe",
    "gaussian_kl",
    "ggn_precision",
    "resolve_device",
    "validate_inputs",
]
