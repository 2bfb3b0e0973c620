"""Orchestration: dataset -> features -> LSI scores -> sample table, with caching.

The CLI and the dashboard both call :func:`run_pipeline`, so a table computed
by one is a cache hit for the other. :func:`score_arrays` scores features
that were extracted elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from lsi_app import __version__
from lsi_app.analysis import build_sample_table
from lsi_app.data import SampleSet, encode_labels, load_dataset
from lsi_app.engine import compute_lsi, resolve_device, validate_inputs
from lsi_app.models import CNNConfig, check_model_source, extract_features, train_cnn
from lsi_app.progress import ProgressCallback, ignore_progress, scaled
from lsi_app.store import ResultCache, cache_key

logger = logging.getLogger(__name__)

#: Environment variables through which ``lsi-app run`` hands the chosen sources to the dashboard.
DATASET_VARIABLE = "LSI_APP_DATASET"
MODEL_VARIABLE = "LSI_APP_MODEL"

#: Share of the progress bar given to each step; CNN training dominates on CPU.
_LOAD_END, _TRAIN_END, _EXTRACT_END = 0.05, 0.75, 0.8


@dataclass(frozen=True)
class PipelineSettings:
    """Everything that determines a score table; all fields enter the cache key."""

    dataset: str = "digits"
    model: str = "cnn"
    hessian: str = "full"
    prior_precision: float | str = 1.0
    method: str = "fast"
    device: str = "auto"
    self_check: int = 0
    refine_top: int = 0
    standardize: bool = True
    cnn: CNNConfig = field(default_factory=CNNConfig)

    def validate(self) -> None:
        """Raise ValueError for an unknown model source or an invalid engine setting."""
        check_model_source(self.model)
        if self.prior_precision != "auto" and (
            isinstance(self.prior_precision, str) or not np.isfinite(self.prior_precision) or self.prior_precision <= 0
        ):
            raise ValueError(f"prior precision must be a finite number > 0 or 'auto', got {self.prior_precision}")
        resolve_device(self.device)

    def engine_options(self, device: str | None = None) -> dict:
        """Keyword arguments for :func:`lsi_app.engine.compute_lsi`."""
        return {
            "hessian": self.hessian,
            "prior_precision": self.prior_precision,
            "method": self.method,
            "device": device or self.device,
            "self_check": self.self_check,
            "refine_top": self.refine_top,
        }


@dataclass
class PipelineResult:
    """A scored dataset: the samples and one table row per sample."""

    samples: SampleSet
    table: pd.DataFrame
    key: str
    from_cache: bool


def standardize(features: np.ndarray) -> np.ndarray:
    """Scale each feature to zero mean and unit variance; constant features become 0.

    The prior on the probe weights is isotropic, so features on very
    different scales would be regularised unequally without this.
    """
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std[std == 0] = 1.0
    return (features - mean) / std


def result_key(settings: PipelineSettings, samples: SampleSet) -> str:
    """Return the cache key of the table that ``settings`` produce on ``samples``."""
    parts = asdict(settings)
    parts.pop("device")  # The device changes speed, not the result beyond rounding.
    parts["dataset_fingerprint"] = samples.fingerprint
    parts["lsi_app_version"] = __version__
    return cache_key(parts)


def run_pipeline(
    settings: PipelineSettings = PipelineSettings(),
    *,
    progress: ProgressCallback = ignore_progress,
    cache: ResultCache | None = None,
) -> PipelineResult:
    """Load the dataset, extract features, score with LSI and tabulate, reusing a cached table.

    Parameters
    ----------
    settings : PipelineSettings
    progress : callable, optional
        Receives the completed fraction of the whole run and a step message.
    cache : ResultCache, optional
        Defaults to the workspace cache (``$LSI_APP_HOME``).
    """
    settings.validate()
    cache = cache if cache is not None else ResultCache()
    progress(0.0, f"Loading dataset {settings.dataset!r}")
    samples = load_dataset(settings.dataset)
    key = result_key(settings, samples)
    if cache.has(key):
        progress(1.0, "Loaded cached scores")
        logger.info("cache hit for %s (%s)", settings.dataset, key)
        return PipelineResult(samples=samples, table=cache.load(key), key=key, from_cache=True)

    device = resolve_device(settings.device)
    logger.info("scoring %s: %d samples on %s", settings.dataset, len(samples), device)
    model = train_cnn(
        samples.images,
        samples.labels,
        samples.n_classes,
        settings.cnn,
        device=device,
        progress=scaled(progress, _LOAD_END, _TRAIN_END),
    )
    progress(_TRAIN_END, "Extracting features")
    features = extract_features(model, samples.images, device=device)
    if settings.standardize:
        features = standardize(features)

    progress(_EXTRACT_END, "Fitting the probe posterior and computing LSI")
    scores = compute_lsi(
        features,
        samples.labels,
        n_classes=samples.n_classes,
        progress=scaled(progress, _EXTRACT_END, 1.0),
        **settings.engine_options(str(device)),
    )
    table = build_sample_table(samples, scores)
    table.attrs["pipeline_settings"] = asdict(settings)
    cache.save(key, table)
    progress(1.0, "Done")
    return PipelineResult(samples=samples, table=table, key=key, from_cache=False)


def score_arrays(
    features: np.ndarray,
    labels: np.ndarray,
    settings: PipelineSettings = PipelineSettings(),
    *,
    progress: ProgressCallback = ignore_progress,
) -> pd.DataFrame:
    """Score precomputed features; labels may be strings or any integers.

    Returns
    -------
    DataFrame with one row per input row: ``sample_id`` (the row number),
    ``label`` (class code 0..C-1), ``class_name`` (the original label),
    ``predicted_name`` and every score column. ``attrs["label_mapping"]``
    maps each code to its original label.
    """
    settings.validate()
    codes, class_names = encode_labels(labels)
    # Validate before scaling: one NaN row would otherwise spread to every row.
    features, codes = validate_inputs(features, codes, settings.prior_precision)
    if settings.standardize:
        features = standardize(features)
    scores = compute_lsi(
        features, codes, n_classes=len(class_names), progress=progress, **settings.engine_options()
    )
    names = np.asarray(class_names)
    table = pd.concat(
        [pd.DataFrame({"sample_id": np.arange(len(codes)), "label": codes, "class_name": names[codes]}), scores],
        axis=1,
    )
    table["predicted_name"] = names[table["predicted"].to_numpy()]
    table.attrs = dict(scores.attrs)
    table.attrs["label_mapping"] = {str(code): name for code, name in enumerate(class_names)}
    table.attrs["standardized"] = bool(settings.standardize)
    return table


def load_cached(settings: PipelineSettings, cache: ResultCache | None = None) -> PipelineResult | None:
    """Return the cached result for ``settings``, or None when it has not been computed."""
    cache = cache if cache is not None else ResultCache()
    samples = load_dataset(settings.dataset)
    key = result_key(settings, samples)
    if not cache.has(key):
        return None
    return PipelineResult(samples=samples, table=cache.load(key), key=key, from_cache=True)
