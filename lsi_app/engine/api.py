"""Public entry point of the engine: validate inputs, fit, score, tabulate."""

from __future__ import annotations

import logging
import os
import time
from enum import Enum

import numpy as np
import pandas as pd
import torch

from lsi_app.engine._linalg import append_bias
from lsi_app.engine.lsi import exact_lsi, fast_lsi
from lsi_app.engine.posterior import FullPosterior
from lsi_app.engine.probe import fit_probe

logger = logging.getLogger(__name__)

#: Share of currently available memory that a dense posterior may take. The
#: precision, its Cholesky factor and the covariance are held at once, and the
#: scoring chunks need room beside them.
MEMORY_SHARE = 0.5

#: Number of P x P matrices alive at once for a full posterior.
_FULL_POSTERIOR_MATRICES = 3


class Hessian(str, Enum):
    """Posterior structure."""

    FULL = "full"


class Method(str, Enum):
    """How LSI is computed: closed form (fast) or leave-one-out refits (exact)."""

    FAST = "fast"
    EXACT = "exact"


class Device(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def _parse_option(enum_type: type[Enum], value: object, name: str) -> Enum:
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum_type)
        raise ValueError(f"{name}={value!r} is not supported; use one of {choices}") from None


def resolve_device(device: str | Device) -> torch.device:
    """Map ``auto``/``cpu``/``cuda`` to a torch device; ``auto`` picks CUDA when present."""
    choice = _parse_option(Device, device, "device")
    if choice is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice is Device.CUDA and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device(choice.value)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def validate_inputs(features: object, labels: object, prior_precision: float) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, values and settings; raise ValueError naming the problem and the fix.

    Returns
    -------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,), dtype int64
    """
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2:
        raise ValueError(
            f"features must be a 2-D array (n_samples, n_features), got shape {features.shape}; "
            "flatten per-sample features first"
        )
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array (n_samples,), got shape {labels.shape}")
    if features.shape[0] == 0:
        raise ValueError("features are empty (0 samples); pass at least one sample per class")
    if features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features have {features.shape[0]} rows but labels have {labels.shape[0]}; "
            "pass one label per feature row"
        )
    if not np.issubdtype(features.dtype, np.number):
        raise ValueError(f"features must be numeric, got dtype {features.dtype}")
    bad_rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad_rows.size:
        shown = ", ".join(str(i) for i in bad_rows[:10])
        more = f" and {bad_rows.size - 10} more" if bad_rows.size > 10 else ""
        raise ValueError(f"features contain NaN or inf in rows {shown}{more}; drop or repair those rows")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integers 0..n_classes-1, got dtype {labels.dtype}; map them to integers first"
        )
    if labels.min() < 0:
        raise ValueError(f"labels must be >= 0, got {labels.min()}; map them to 0..n_classes-1")
    if np.unique(labels).size < 2:
        raise ValueError(
            f"labels contain {np.unique(labels).size} class; LSI needs at least 2 classes"
        )
    if not np.isfinite(prior_precision) or prior_precision <= 0:
        raise ValueError(f"prior_precision must be a finite number > 0, got {prior_precision}")
    return features, labels.astype(np.int64)


def compute_lsi(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    hessian: str = "full",
    prior_precision: float = 1.0,
    method: str = "fast",
    device: str = "auto",
    bias: bool = True,
    n_classes: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> pd.DataFrame:
    """Score every sample with Laplace Sample Information under a linear probe.

    Fits the MAP of a softmax probe on ``features`` (summed cross-entropy plus
    ``prior_precision / 2 * ||theta||^2``), builds its Laplace posterior and
    computes ``LSI(i) = KL(posterior on all || posterior without i)``.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        Integer classes in ``0..n_classes-1``.
    hessian : {"full"}, default="full"
        Posterior structure.
    prior_precision : float, default=1.0
        Precision of the isotropic Gaussian prior on the probe weights.
    method : {"fast", "exact"}, default="fast"
        ``fast``: closed form, one Newton step with the curvature held at the
        MAP. ``exact``: one leave-one-out refit per sample (slow; for checks).
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``auto`` uses CUDA when available.
    bias : bool, default=True
        Append a constant feature, so the bias sits under the same prior.
    n_classes : int, optional
        Defaults to ``labels.max() + 1``.
    dtype : torch.dtype, default=torch.float64

    Returns
    -------
    DataFrame with one row per sample, in input order, and columns

    - ``lsi``: LSI in nats; higher = more informative.
    - ``loss``: cross-entropy of the given label at the MAP.
    - ``p_label``: probability of the given label.
    - ``predicted``: most probable class.
    - ``margin``: ``p_label`` minus the largest other probability; negative
      when the probe disagrees with the label.

    ``DataFrame.attrs["lsi_settings"]`` records the settings, the fit's
    convergence and the timings.
    """
    features, labels = validate_inputs(features, labels, prior_precision)
    structure = _parse_option(Hessian, hessian, "hessian")
    how = _parse_option(Method, method, "method")
    torch_device = resolve_device(device)
    n_classes = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.max() >= n_classes:
        raise ValueError(f"labels contain class {labels.max()} but n_classes={n_classes}")

    n_params = n_classes * (features.shape[1] + int(bias))
    element_size = torch.empty(0, dtype=dtype).element_size()
    needed = _FULL_POSTERIOR_MATRICES * n_params**2 * element_size
    available = _available_bytes(torch_device)
    if needed > MEMORY_SHARE * available:
        raise ValueError(
            f"a full posterior over {n_params} parameters needs about {needed / 2**30:.2f} GiB "
            f"but {available / 2**30:.2f} GiB is available on {torch_device}; reduce the feature "
            "dimension or the number of classes, or use float32"
        )

    started = time.perf_counter()
    x = torch.as_tensor(features, dtype=dtype, device=torch_device)
    if bias:
        x = append_bias(x)
    y = torch.as_tensor(labels, device=torch_device)

    fit = fit_probe(x, y, n_classes, prior_precision)
    posterior = FullPosterior(mean=fit.weights, precision=fit.precision)
    fitted = time.perf_counter()
    logger.info(
        "probe MAP: %d Newton steps, gradient norm %.2e per sample, %.2f s",
        fit.iterations,
        fit.gradient_norm,
        fitted - started,
    )

    if how is Method.FAST:
        scores = fast_lsi(x, y, posterior)
    else:
        scores = exact_lsi(x, y, posterior, prior_precision, range(x.shape[0]))
    scored = time.perf_counter()

    table = _score_table(x, y, posterior.mean, scores)
    table.attrs["lsi_settings"] = {
        "hessian": structure.value,
        "method": how.value,
        "prior_precision": float(prior_precision),
        "device": str(torch_device),
        "dtype": str(dtype).removeprefix("torch."),
        "bias": bool(bias),
        "n_classes": n_classes,
        "n_parameters": n_params,
        "newton_steps": fit.iterations,
        "gradient_norm": fit.gradient_norm,
        "fit_seconds": fitted - started,
        "score_seconds": scored - fitted,
        "torch_version": torch.__version__,
    }
    return table


def _score_table(
    x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, scores: torch.Tensor
) -> pd.DataFrame:
    probs = torch.softmax(x @ weights.T, dim=1)
    rows = torch.arange(y.shape[0], device=y.device)
    p_label = probs[rows, y]
    others = probs.clone()
    others[rows, y] = -1.0
    return pd.DataFrame(
        {
            "lsi": scores.cpu().numpy(),
            "loss": (-torch.log(p_label)).cpu().numpy(),
            "p_label": p_label.cpu().numpy(),
            "predicted": probs.argmax(1).cpu().numpy(),
            "margin": (p_label - others.max(1).values).cpu().numpy(),
        }
    )
