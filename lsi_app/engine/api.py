"""Public entry point of the engine: validate inputs, fit, score, tabulate."""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from lsi_app import __version__
from lsi_app.engine._linalg import CHUNK_BYTES, append_bias
from lsi_app.engine.lsi import exact_lsi, fast_lsi
from lsi_app.engine.mislabel import mislabel_score
from lsi_app.engine.posterior import POSTERIORS, FullPosterior, HessianStructure, Posterior, fit_posterior, log_evidence
from lsi_app.engine.prior import select_prior_precision
from lsi_app.engine.probe import ProbeFit, fit_probe
from lsi_app.progress import ProgressCallback, ignore_progress, scaled

logger = logging.getLogger(__name__)

#: Share of currently available memory that the posterior may take; the
#: features, the scoring chunks and the rest of the process need the remainder.
MEMORY_SHARE = 0.5

#: Share of currently available memory that one scoring chunk may take, and
#: the cap that keeps chunks cache-friendly on a large host.
CHUNK_MEMORY_SHARE = 0.1
MAX_CHUNK_BYTES = 1 << 30

#: Up to this many probe weights the default dtype is float64: the dense
#: factorisations are cheap there and exact leave-one-out differences of
#: typical samples (LSI near 1e-6 nats) stay above rounding. Larger problems
#: default to float32, which halves memory and doubles matrix-product speed.
FLOAT64_MAX_PARAMETERS = 4096

#: Seed of the random subset scored exactly by ``self_check``.
SELF_CHECK_SEED = 0

Hessian = HessianStructure


class Method(str, Enum):
    """LSI computation method: closed form (fast) or leave-one-out refits (exact)."""

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


def available_bytes(device: torch.device) -> int:
    """Return the memory currently free on ``device`` in bytes."""
    # NOTE: the CUDA branches of the engine have not yet run on a GPU; the tests
    # that cover them skip without CUDA, and benchmarks/run_gpu.sh exercises them.
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def validate_inputs(features: object, labels: object, prior_precision: float | str) -> tuple[np.ndarray, np.ndarray]:
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
        listed_rows = ", ".join(str(i) for i in bad_rows[:10])
        more = f" and {bad_rows.size - 10} more" if bad_rows.size > 10 else ""
        raise ValueError(f"features contain NaN or inf in rows {listed_rows}{more}; drop or repair those rows")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integers 0..n_classes-1, got dtype {labels.dtype}; map them to integers first"
        )
    if labels.min() < 0:
        raise ValueError(f"labels must be >= 0, got {labels.min()}; map them to 0..n_classes-1")
    if np.unique(labels).size < 2:
        raise ValueError(
            f"labels contain {np.unique(labels).size} class; LSI needs at least 2 classes, so pass "
            "samples from two or more classes"
        )
    if isinstance(prior_precision, str):
        if prior_precision != "auto":
            raise ValueError(f"prior_precision={prior_precision!r} is not supported; pass a number > 0 or 'auto'")
    elif not np.isfinite(prior_precision) or prior_precision <= 0:
        raise ValueError(f"prior_precision must be a finite number > 0 or 'auto', got {prior_precision}")
    return features, labels.astype(np.int64)


def _check_memory(structure: HessianStructure, n_classes: int, n_features: int, dtype: torch.dtype, device: torch.device) -> None:
    element_size = torch.empty(0, dtype=dtype).element_size()
    needed = POSTERIORS[structure].memory_bytes(n_classes, n_features, element_size)
    available = available_bytes(device)
    if needed > MEMORY_SHARE * available:
        advice = "use hessian='kron' or 'diag', or reduce the feature dimension" if structure is Hessian.FULL else "reduce the feature dimension"
        raise ValueError(
            f"a {structure.value} posterior over {n_classes * n_features} parameters needs about "
            f"{needed / 2**30:.2f} GiB but {available / 2**30:.2f} GiB is available on {device}; {advice}"
        )


#: Keys of the ``lsi_settings`` record that only a marginal-likelihood prior search sets.
PRIOR_SELECTION_KEYS = ("prior_selection", "prior_grid", "prior_grid_log_evidence")


@dataclass
class FittedPosterior:
    """A Laplace posterior of the linear probe, fitted by :func:`fit_lsi_posterior`.

    :func:`score_rows` scores any subset of the fitted rows with it, so one
    fit can be shared by processes that each score a shard of the samples.

    Attributes
    ----------
    posterior : Posterior
        MAP weights and posterior precision of the structure that was asked for.
    dtype : torch.dtype
        Working dtype of the posterior; rows are converted to it for scoring.
    device : torch.device
        Where the posterior's tensors live.
    bias : bool
        Whether a constant feature is appended to every row, as in the fit.
    n_classes : int
    log_evidence : float
        Laplace log marginal likelihood at the chosen prior precision.
    settings : dict
        The fit entries of :func:`compute_lsi`'s ``lsi_settings`` record:
        ``hessian``, ``prior_precision``, ``log_evidence``, ``device``,
        ``dtype``, ``bias``, ``n_samples``, ``n_classes``, ``n_parameters``,
        ``solver``, ``solver_steps``, ``gradient_norm``,
        ``gradient_tolerance``, ``converged`` and ``fit_seconds``, plus the
        entries of :data:`PRIOR_SELECTION_KEYS` after a prior search.
    """

    posterior: Posterior
    dtype: torch.dtype
    device: torch.device
    bias: bool
    n_classes: int
    log_evidence: float
    settings: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Number of feature columns a row must have, without the bias column."""
        return self.posterior.n_features - int(self.bias)

    def to(self, device: str | torch.device) -> FittedPosterior:
        """Return a copy whose posterior tensors live on ``device``; ``self`` is unchanged.

        Every tensor attribute of the posterior moves, including factors it
        has already cached, so a CPU copy pickles into a self-contained
        object for another process.
        """
        device = torch.device(device)
        posterior = copy.copy(self.posterior)
        for name, value in list(vars(posterior).items()):
            if isinstance(value, torch.Tensor):
                setattr(posterior, name, value.to(device))
        return replace(self, posterior=posterior, device=device)

    def for_scoring(self) -> FittedPosterior:
        """Return a copy that keeps only what :func:`score_rows` reads, with those factors computed.

        Send this copy to other processes. A full posterior computes its
        covariance blocks on first use, so the copy has them computed once
        and leaves out the precision, its Cholesky factor and the dense
        covariance, which scoring does not read. That cuts what is pickled
        from about ``3.5 P^2`` to ``0.5 P^2`` numbers for ``P`` weights.
        The copy's posterior then supports scoring only (``one_step_lsi``
        and the MAP ``mean``). Kron and diag posteriors hold only what
        scoring reads, so they are copied unchanged. ``self`` is unchanged.
        """
        if not isinstance(self.posterior, FullPosterior):
            return replace(self, posterior=copy.copy(self.posterior))
        _ = self.posterior._pair_covariance  # computed once and cached on self.posterior
        posterior = copy.copy(self.posterior)
        # The cached_property values live in the instance dict; drop all but the blocks.
        for name in ("cholesky", "covariance"):
            vars(posterior).pop(name, None)
        posterior.precision = None
        return replace(self, posterior=posterior)


def _fit(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    hessian: str,
    prior_precision: float | str,
    device: str,
    bias: bool,
    n_classes: int | None,
    dtype: torch.dtype | None,
    initial_weights: np.ndarray | None,
    progress: ProgressCallback,
    selection_progress: ProgressCallback,
) -> tuple[FittedPosterior, torch.Tensor, torch.Tensor, ProbeFit]:
    """Fit the probe posterior on validated inputs; return it with the probe inputs and the fit.

    ``progress`` receives the start of a fit at a fixed prior precision and
    ``selection_progress`` the steps of a prior search.
    """
    structure = _parse_option(Hessian, hessian, "hessian")
    torch_device = resolve_device(device)
    n_classes = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.max() >= n_classes:
        raise ValueError(f"labels contain class {labels.max()} but n_classes={n_classes}")
    empty = np.setdiff1d(np.arange(n_classes), labels)
    if empty.size:
        logger.warning(
            "classes %s have no samples; their weights are fitted to the prior alone. Map labels to "
            "0..C-1 first (lsi_app.data.encode_labels) unless those classes are meant to be empty",
            empty[:10].tolist(),
        )
    n_features = features.shape[1] + int(bias)
    if dtype is None:
        dtype = torch.float64 if n_classes * n_features <= FLOAT64_MAX_PARAMETERS else torch.float32
    _check_memory(structure, n_classes, n_features, dtype, torch_device)
    start_weights = None
    if initial_weights is not None:
        start_weights = torch.as_tensor(np.asarray(initial_weights), dtype=dtype, device=torch_device)
        if start_weights.shape != (n_classes, n_features):
            raise ValueError(
                f"initial_weights have shape {tuple(start_weights.shape)} but the probe needs "
                f"({n_classes}, {n_features}); append the bias as the last column when bias=True"
            )

    started = time.perf_counter()
    x = torch.as_tensor(features, dtype=dtype, device=torch_device)
    if bias:
        x = append_bias(x)
    y = torch.as_tensor(labels, device=torch_device)
    settings: dict = {}

    if prior_precision == "auto":
        selection = select_prior_precision(
            x, y, n_classes, structure, initial_weights=start_weights, progress=selection_progress
        )
        posterior = selection.posterior
        log_z = selection.log_evidence
        settings.update(
            prior_selection="marginal likelihood grid",
            prior_grid=selection.grid,
            prior_grid_log_evidence=selection.grid_log_evidence,
        )
        fit = selection.fit
    else:
        progress(0.0, "Fitting the probe")
        fit = fit_probe(x, y, n_classes, float(prior_precision), initial_weights=start_weights)
        if structure is Hessian.FULL and fit.precision is not None:
            posterior: Posterior = FullPosterior(fit.weights, fit.precision, float(prior_precision))
        else:
            posterior = fit_posterior(structure, x, fit.weights, float(prior_precision))
        log_z = log_evidence(posterior, x, y)
    fitted = time.perf_counter()
    logger.info(
        "probe MAP and %s posterior: prior precision %g, log evidence %.4g, %.2f s",
        structure.value,
        posterior.prior_precision,
        log_z,
        fitted - started,
    )
    settings.update(
        {
            "hessian": structure.value,
            "prior_precision": posterior.prior_precision,
            "log_evidence": log_z,
            "device": str(torch_device),
            "dtype": str(dtype).removeprefix("torch."),
            "bias": bool(bias),
            "n_samples": int(x.shape[0]),
            "n_classes": n_classes,
            "n_parameters": posterior.n_params,
            "solver": fit.solver,
            "solver_steps": fit.iterations,
            "gradient_norm": fit.gradient_norm,
            "gradient_tolerance": fit.tolerance,
            "converged": fit.gradient_norm <= fit.tolerance,
            "fit_seconds": fitted - started,
        }
    )
    result = FittedPosterior(
        posterior=posterior,
        dtype=dtype,
        device=torch_device,
        bias=bool(bias),
        n_classes=n_classes,
        log_evidence=log_z,
        settings=settings,
    )
    return result, x, y, fit


def fit_lsi_posterior(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    hessian: str = "full",
    prior_precision: float | str = 1.0,
    device: str = "auto",
    bias: bool = True,
    n_classes: int | None = None,
    dtype: torch.dtype | None = None,
    initial_weights: np.ndarray | None = None,
    progress: ProgressCallback = ignore_progress,
) -> FittedPosterior:
    """Fit the probe MAP and its Laplace posterior, the first half of :func:`compute_lsi`.

    The parameters mean what they mean for :func:`compute_lsi`, and the fit
    is the one that :func:`compute_lsi` makes with the same arguments.
    Score rows with :func:`score_rows`.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        Integer classes in ``0..n_classes-1``.
    hessian : {"full", "kron", "diag"}, default="full"
    prior_precision : float or "auto", default=1.0
    device : {"auto", "cpu", "cuda"}, default="auto"
    bias : bool, default=True
    n_classes : int, optional
        Defaults to ``labels.max() + 1``.
    dtype : torch.dtype, optional
        Defaults to float64 up to ``FLOAT64_MAX_PARAMETERS`` weights, else float32.
    initial_weights : ndarray of shape (n_classes, n_features[+1]), optional
    progress : callable, optional
        Receives the completed fraction and a step message.

    Returns
    -------
    FittedPosterior

    Raises
    ------
    ValueError
        For invalid inputs or settings, as :func:`compute_lsi`.
    """
    features, labels = validate_inputs(features, labels, prior_precision)
    fitted, _x, _y, _fit_result = _fit(
        features,
        labels,
        hessian=hessian,
        prior_precision=prior_precision,
        device=device,
        bias=bias,
        n_classes=n_classes,
        dtype=dtype,
        initial_weights=initial_weights,
        progress=progress,
        selection_progress=progress,
    )
    progress(1.0, "Fitted the probe posterior")
    return fitted


def _scoring_chunk_bytes(device: torch.device) -> int:
    return min(MAX_CHUNK_BYTES, int(CHUNK_MEMORY_SHARE * available_bytes(device)), CHUNK_BYTES * 4)


def score_rows(
    fitted: FittedPosterior,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    progress: ProgressCallback = ignore_progress,
) -> pd.DataFrame:
    """Compute the fast (closed-form) LSI of some of the rows that ``fitted`` was fitted on.

    The closed form of each sample needs only its own row and the posterior
    (kron posteriors store the sample count they were fitted on), so any
    split of the rows gives the values of the whole set. Pass rows that were
    part of the fit: a row from elsewhere gets a number, but it is not the
    LSI of that row.

    Parameters
    ----------
    fitted : FittedPosterior
    features : ndarray of shape (n_rows, n_features)
        Without the bias column; standardised like the fitted features.
    labels : ndarray of shape (n_rows,)
        Integer classes in ``0..fitted.n_classes-1``.
    progress : callable, optional
        Receives the completed fraction after each chunk of rows.

    Returns
    -------
    DataFrame with one row per input row, in input order, and the columns
    ``lsi``, ``loss``, ``p_label``, ``predicted``, ``margin`` and
    ``mislabel_score`` of :func:`compute_lsi` with ``method="fast"``. It has
    no ``attrs``.

    Raises
    ------
    ValueError
        When the shapes do not match ``fitted``, a row is not finite or a
        label is out of range.
    """
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2 or features.shape[1] != fitted.n_features:
        raise ValueError(
            f"features have shape {features.shape} but the posterior was fitted on {fitted.n_features} "
            "features per row; pass rows of the fitted feature matrix"
        )
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels have shape {labels.shape}; pass one label per feature row, shape ({features.shape[0]},)")
    if not np.issubdtype(features.dtype, np.number):
        raise ValueError(f"features must be numeric, got dtype {features.dtype}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers 0..{fitted.n_classes - 1}, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= fitted.n_classes):
        raise ValueError(
            f"labels range from {labels.min()} to {labels.max()} but the posterior has {fitted.n_classes} "
            f"classes; pass labels in 0..{fitted.n_classes - 1}"
        )
    bad_rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad_rows.size:
        raise ValueError(f"features contain NaN or inf in rows {bad_rows[:10].tolist()}; drop or repair those rows")
    if features.shape[0] == 0:
        return _score_table(*_empty_rows(fitted), fitted.posterior.mean, torch.zeros(0, dtype=fitted.dtype))

    x = torch.as_tensor(features, dtype=fitted.dtype, device=fitted.device)
    if fitted.bias:
        x = append_bias(x)
    y = torch.as_tensor(labels.astype(np.int64), device=fitted.device)
    scores = fast_lsi(x, y, fitted.posterior, chunk_bytes=_scoring_chunk_bytes(fitted.device), progress=progress)
    return _score_table(x, y, fitted.posterior.mean, scores)


def _empty_rows(fitted: FittedPosterior) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(0, fitted.posterior.n_features, dtype=fitted.dtype, device=fitted.device)
    return x, torch.zeros(0, dtype=torch.int64, device=fitted.device)


def compute_lsi(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    hessian: str = "full",
    prior_precision: float | str = 1.0,
    method: str = "fast",
    device: str = "auto",
    bias: bool = True,
    n_classes: int | None = None,
    dtype: torch.dtype | None = None,
    initial_weights: np.ndarray | None = None,
    self_check: int = 0,
    refine_top: int = 0,
    progress: ProgressCallback = ignore_progress,
    return_weights: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
    """Score every sample with Laplace Sample Information under a linear probe.

    Fits the MAP of a softmax probe on ``features`` (summed cross-entropy plus
    ``prior_precision / 2 * ||theta||^2``), builds its Laplace posterior and
    computes ``LSI(i) = KL(posterior on all || posterior without i)``.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        Integer classes in ``0..n_classes-1``.
    hessian : {"full", "kron", "diag"}, default="full"
        Posterior structure. ``full`` is exact and needs ``O((C D)^2)``
        memory; ``kron`` (K-FAC) and ``diag`` scale to many classes.
    prior_precision : float or "auto", default=1.0
        Precision of the isotropic Gaussian prior on the probe weights.
        ``auto`` picks the value with the largest Laplace marginal likelihood
        on a grid from 1e-4 to 1e4.
    method : {"fast", "exact"}, default="fast"
        ``fast``: closed form, one Newton step with the curvature held at the
        MAP. ``exact``: one leave-one-out refit per sample (slow; for checks).
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``auto`` uses CUDA when available.
    bias : bool, default=True
        Append a constant feature, so the bias sits under the same prior.
    n_classes : int, optional
        Defaults to ``labels.max() + 1``.
    dtype : torch.dtype, optional
        Defaults to float64 up to ``FLOAT64_MAX_PARAMETERS`` weights, else float32.
    initial_weights : ndarray of shape (n_classes, n_features[+1]), optional
        Warm start for the probe fit, for example a model's own last layer
        (weight with the bias appended as the last column when ``bias``).
    self_check : int, default=0
        Also compute exact LSI on this many random samples and report the
        Spearman correlation and median relative error against the fast values.
    refine_top : int, default=0
        Replace the fast values of this many highest-LSI samples by exact ones.
    progress : callable, optional
        Receives the completed fraction and a step message.
    return_weights : bool, default=False
        Also return the probe's MAP weights, for example to warm-start a
        later fit on the same features.

    Returns
    -------
    DataFrame with one row per sample, in input order, and columns

    - ``lsi``: LSI in nats; higher = more informative.
    - ``loss``: cross-entropy of the given label at the MAP.
    - ``p_label``: probability of the given label.
    - ``predicted``: most probable class.
    - ``margin``: ``p_label`` minus the largest other probability; negative
      when the probe disagrees with the label.
    - ``mislabel_score``: ``lsi * loss``; higher = more likely mislabeled.
    - ``lsi_refined`` (with ``refine_top``): True where ``lsi`` is exact.

    ``DataFrame.attrs["lsi_settings"]`` records the settings, the fit's
    convergence, the timings and, when requested, the prior search and the
    self-check.

    With ``return_weights``, a tuple ``(table, weights)`` where ``weights``
    is an ndarray of shape (n_classes, n_features[+1]), the bias last.
    """
    features, labels = validate_inputs(features, labels, prior_precision)
    method_choice = _parse_option(Method, method, "method")
    for name, count in (("self_check", self_check), ("refine_top", refine_top)):
        if count < 0:
            raise ValueError(f"{name} must be >= 0, got {count}")
    fitted_posterior, x, y, fit = _fit(
        features,
        labels,
        hessian=hessian,
        prior_precision=prior_precision,
        device=device,
        bias=bias,
        n_classes=n_classes,
        dtype=dtype,
        initial_weights=initial_weights,
        progress=progress,
        selection_progress=scaled(progress, 0.0, 0.4),
    )
    posterior = fitted_posterior.posterior
    torch_device = fitted_posterior.device
    fit_settings = fitted_posterior.settings
    fitted = time.perf_counter()

    score_progress = scaled(progress, 0.4 if prior_precision == "auto" else 0.1, 0.9 if self_check or refine_top else 1.0)
    if method_choice is Method.FAST:
        scores = fast_lsi(x, y, posterior, chunk_bytes=_scoring_chunk_bytes(torch_device), progress=score_progress)
    else:
        scores = exact_lsi(x, y, posterior, range(x.shape[0]), progress=score_progress)
    scored = time.perf_counter()

    table = _score_table(x, y, posterior.mean, scores)
    settings = {key: fit_settings[key] for key in PRIOR_SELECTION_KEYS if key in fit_settings}
    if self_check and method_choice is Method.FAST:
        settings["self_check"] = _self_check(x, y, posterior, table["lsi"].to_numpy(), self_check, scaled(progress, 0.9, 0.95))
    if refine_top and method_choice is Method.FAST:
        _refine_top(x, y, posterior, table, refine_top, scaled(progress, 0.95, 1.0))
    progress(1.0, "Done")

    settings.update(
        {
            "hessian": fit_settings["hessian"],
            "method": method_choice.value,
            "prior_precision": fit_settings["prior_precision"],
            "log_evidence": fit_settings["log_evidence"],
            "device": fit_settings["device"],
            "dtype": fit_settings["dtype"],
            "bias": fit_settings["bias"],
            "n_samples": fit_settings["n_samples"],
            "n_classes": fit_settings["n_classes"],
            "n_parameters": fit_settings["n_parameters"],
            "solver": fit.solver,
            "solver_steps": fit.iterations,
            "gradient_norm": fit.gradient_norm,
            "gradient_tolerance": fit.tolerance,
            "converged": fit_settings["converged"],
            "refine_top": int(refine_top) if method_choice is Method.FAST else 0,
            "fit_seconds": fit_settings["fit_seconds"],
            "score_seconds": scored - fitted,
            "torch_version": torch.__version__,
            "lsi_app_version": __version__,
        }
    )
    table.attrs["lsi_settings"] = settings
    if return_weights:
        return table, posterior.mean.double().cpu().numpy()
    return table


def _self_check(x, y, posterior, fast_scores, count, progress) -> dict:
    count = min(count, x.shape[0])
    subset = np.sort(np.random.default_rng(SELF_CHECK_SEED).choice(x.shape[0], size=count, replace=False))
    exact = exact_lsi(x, y, posterior, subset, progress=progress).cpu().numpy()
    fast = fast_scores[subset]
    relative = np.abs(fast - exact) / np.maximum(np.abs(exact), np.finfo(np.float64).tiny)
    result = {
        "n_samples": int(count),
        "spearman": float(spearmanr(fast, exact).statistic) if count > 1 else float("nan"),
        "median_relative_error": float(np.median(relative)),
        "indices": subset.tolist(),
        "exact_lsi": exact.tolist(),
    }
    logger.info(
        "self-check on %d samples: Spearman %.4f, median relative error %.3g",
        count,
        result["spearman"],
        result["median_relative_error"],
    )
    return result


def _refine_top(x, y, posterior, table: pd.DataFrame, count: int, progress) -> None:
    top = table["lsi"].to_numpy().argsort()[::-1][: min(count, len(table))]
    exact = exact_lsi(x, y, posterior, top, progress=progress).cpu().numpy()
    table["lsi_fast"] = table["lsi"]
    table["lsi_refined"] = False
    table.loc[top, "lsi"] = exact
    table.loc[top, "lsi_refined"] = True
    table["mislabel_score"] = mislabel_score(table["lsi"].to_numpy(), table["loss"].to_numpy())


def _score_table(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, scores: torch.Tensor) -> pd.DataFrame:
    probs = torch.softmax(x @ weights.T, dim=1)
    rows = torch.arange(y.shape[0], device=y.device)
    p_label = probs[rows, y]
    others = probs.clone()
    others[rows, y] = -1.0
    lsi = scores.double().cpu().numpy()
    # log_softmax keeps the loss finite where p_label rounds to 0 in float32.
    loss = -torch.log_softmax(x @ weights.T, dim=1)[rows, y].double().cpu().numpy()
    return pd.DataFrame(
        {
            "lsi": lsi,
            "loss": loss,
            "p_label": p_label.double().cpu().numpy(),
            "predicted": probs.argmax(1).cpu().numpy(),
            "margin": (p_label - others.max(1).values).double().cpu().numpy(),
            "mislabel_score": mislabel_score(lsi, loss),
        }
    )
