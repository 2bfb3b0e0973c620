"""Orchestration: source -> features -> cache -> engine -> sample table.

The CLI and the dashboard both call :func:`run_pipeline`, so a table computed
by one is a cache hit for the other. Each step is cached in the workspace
under a key of what determines it:

- features: dataset fingerprint + model fingerprint (weights, feature layer,
  input transform);
- probe weights: features key + prior and label settings (a warm start when
  only the posterior structure or method changes);
- score table: features key + every engine setting.

:func:`score_arrays` scores features that were extracted elsewhere, in memory.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from lsi_app import __version__
from lsi_app.analysis import build_sample_table, kmeans_pseudo_labels
from lsi_app.analysis.embedding import umap_embedding
from lsi_app.data import SampleSet, SkippedItem, encode_labels, open_dataset, parse_dataset_source
from lsi_app.engine import compute_lsi, resolve_device, validate_inputs
from lsi_app.models import CNNConfig, check_model_source, open_model, resolve_model_source
from lsi_app.progress import ProgressCallback, ignore_progress, scaled
from lsi_app.store import FeatureCache, ProbeCache, ResultCache, cache_key, lock, workspace_dir

logger = logging.getLogger(__name__)

#: Environment variables through which ``lsi-app run`` hands the chosen sources to the dashboard.
DATASET_VARIABLE = "LSI_APP_DATASET"
MODEL_VARIABLE = "LSI_APP_MODEL"
LABELS_VARIABLE = "LSI_APP_LABELS"
CLUSTERS_VARIABLE = "LSI_APP_CLUSTERS"

#: Share of the progress bar at the end of opening, extraction and scoring; the rest is the UMAP map.
#: Extraction (or CNN training) dominates on CPU.
_CLI_STEPS = (0.1, 0.8, 1.0)
_DASHBOARD_STEPS = (0.1, 0.7, 0.85)

#: Seed of the UMAP map, so that the map is the same on every run.
UMAP_SEED = 0

#: Bumped when the layout of cached features or tables changes, so old entries are not reused.
CACHE_FORMAT = 2

#: Images or texts per extraction batch.
DEFAULT_BATCH_SIZE = 64


class Engine(str, Enum):
    """Execution backend of feature extraction and scoring."""

    LOCAL = "local"
    RAY = "ray"


@dataclass(frozen=True)
class PipelineSettings:
    """Everything that determines a score table.

    ``device`` and ``batch_size`` change speed but not the result beyond
    rounding, so they are left out of the cache keys.
    """

    dataset: str = "digits"
    model: str = "auto"
    labels: str | None = None
    clusters: int = 0
    feature_layer: str | None = None
    image_size: int = 224
    hessian: str = "full"
    prior_precision: float | str = 1.0
    method: str = "fast"
    device: str = "auto"
    self_check: int = 0
    refine_top: int = 0
    standardize: bool = True
    batch_size: int = DEFAULT_BATCH_SIZE
    cnn: CNNConfig = field(default_factory=CNNConfig)
    engine: str = Engine.LOCAL.value
    ray_address: str | None = None

    def validate(self) -> None:
        """Raise ValueError for an invalid source or engine setting, before any work."""
        parse_dataset_source(self.dataset)
        check_model_source(self.model)
        if self.prior_precision != "auto" and (
            isinstance(self.prior_precision, str) or not np.isfinite(self.prior_precision) or self.prior_precision <= 0
        ):
            raise ValueError(f"prior precision must be a finite number > 0 or 'auto', got {self.prior_precision}")
        if self.clusters < 0 or self.clusters == 1:
            raise ValueError(f"clusters must be 0 (labelled data) or >= 2, got {self.clusters}")
        if self.image_size < 8:
            raise ValueError(f"image size must be >= 8 pixels, got {self.image_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.engine not in {member.value for member in Engine}:
            raise ValueError(f"engine {self.engine!r} is not supported; use 'local' or 'ray'")
        if self.engine == Engine.RAY.value and (self.method != "fast" or self.self_check or self.refine_top):
            raise ValueError(
                "--engine ray computes fast LSI only; drop --method exact, --self-check and --refine-top, "
                "or use --engine local"
            )
        if self.engine != Engine.RAY.value and self.ray_address is not None:
            raise ValueError(f"--ray-address {self.ray_address} applies to --engine ray only; add --engine ray")
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
    """A scored dataset: the scored samples and one table row per sample, in the same order.

    Attributes
    ----------
    samples : SampleSet
        The samples that were scored; ``samples.skipped`` lists every item
        left out, with its reason.
    table : DataFrame
        One row per sample of ``samples``; see :func:`lsi_app.analysis.build_sample_table`.
    key : str
        Cache key of the table.
    from_cache : bool
        True when the table was read from the cache.
    features_from_cache : bool
        True when no feature extraction ran.
    features : ndarray of shape (n_samples, n_features), or None
        The scored (standardised) features, with ``dashboard=True`` only.
    coords : ndarray of shape (n_samples, 2), or None
        The UMAP map of ``features``, with ``dashboard=True`` only.
    """

    samples: SampleSet
    table: pd.DataFrame
    key: str
    from_cache: bool
    features_from_cache: bool = True
    features: np.ndarray | None = None
    coords: np.ndarray | None = None

    @property
    def skipped(self) -> pd.DataFrame:
        """The skipped items as a table with columns ``item`` and ``reason``."""
        return skipped_table(self.samples.skipped)


def skipped_table(skipped) -> pd.DataFrame:
    """Tabulate skipped items (``SkippedItem`` or ``(item, reason)`` pairs) as ``item, reason`` columns."""
    rows = [(entry.item, entry.reason) if isinstance(entry, SkippedItem) else tuple(entry) for entry in skipped]
    return pd.DataFrame(rows, columns=["item", "reason"])


def standardize(features: np.ndarray) -> np.ndarray:
    """Scale each feature to zero mean and unit variance; constant features become 0.

    The prior on the probe weights is isotropic, so features on very
    different scales would be regularised unequally without this.
    """
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std[std == 0] = 1.0
    return (features - mean) / std


def _features_key(samples: SampleSet, model_fingerprint: str) -> str:
    return cache_key({"dataset": samples.fingerprint, "model": model_fingerprint, "format": CACHE_FORMAT})


def _probe_key(settings: PipelineSettings, features_key: str) -> str:
    parts = {
        "features": features_key,
        "prior_precision": settings.prior_precision,
        "standardize": settings.standardize,
        "clusters": settings.clusters,
    }
    return cache_key(parts)


def _result_key(settings: PipelineSettings, features_key: str) -> str:
    parts = asdict(settings)
    unkeyed_fields = (
        "device", "batch_size", "dataset", "model", "labels", "feature_layer", "image_size", "cnn", "engine", "ray_address",
    )
    for unkeyed in unkeyed_fields:
        parts.pop(unkeyed)  # The features key already covers the sources, or the value leaves the result unchanged.
    parts.update(features=features_key, format=CACHE_FORMAT, lsi_app_version=__version__)
    return cache_key(parts)


def _extract(settings, samples, extractor, features_cache, key, device, progress):
    """Return (features, kept, skipped, from_cache), extracting under a lock unless cached."""
    with lock(features_cache.root, key):
        if features_cache.has(key):
            features, kept, metadata = features_cache.load(key)
            skipped = [SkippedItem(item, reason) for item, reason in metadata.get("skipped", [])]
            for note in metadata.get("notes", []):
                logger.info("%s", note)
            return features, kept, skipped, True
        logger.info("extracting features of %d samples with %s on %s", len(samples), extractor.source, device)
        if settings.engine == Engine.RAY.value:
            from lsi_app.scaleout import extract_features_ray  # the ray extra is optional

            extraction = extract_features_ray(
                samples,
                extractor.source,
                cache_root=features_cache.root,
                features_key=key,
                model_options={"feature_layer": settings.feature_layer, "image_size": settings.image_size},
                options=_ray_options(settings, device),
                batch_size=settings.batch_size,
                progress=progress,
            )
        else:
            extraction = extractor.extract(samples, device=device, batch_size=settings.batch_size, progress=progress)
        for note in extraction.notes:
            logger.info("%s", note)
        metadata = {
            "description": f"{samples.name} | {extractor.source} | {extraction.features.shape[1]} features",
            "dataset": samples.name,
            "model": extractor.source,
            "n_samples": int(len(extraction.kept)),
            "skipped": [[entry.item, entry.reason] for entry in extraction.skipped],
            "notes": list(extraction.notes),
        }
        features_cache.save(key, extraction.features, extraction.kept, metadata)
        if settings.engine == Engine.RAY.value:
            from lsi_app.scaleout import discard_feature_shards

            shard_size = _ray_options(settings, device).shard_size
            discard_feature_shards(len(samples), cache_root=features_cache.root, features_key=key, shard_size=shard_size)
        return extraction.features, extraction.kept, list(extraction.skipped), False


def _drop_non_finite(samples: SampleSet, features: np.ndarray) -> tuple[SampleSet, np.ndarray]:
    finite = np.isfinite(features).all(axis=1)
    if finite.all():
        return samples, features
    bad = np.flatnonzero(~finite)
    where = samples.paths if samples.paths is not None else samples.sample_ids
    skipped = [SkippedItem(str(where[i]), "the model produced non-finite features (NaN or inf)") for i in bad]
    kept = np.flatnonzero(finite)
    return samples.subset(kept, skipped), features[kept]


def _check_labels(settings: PipelineSettings, samples: SampleSet, model_source: str) -> None:
    """Raise ValueError, before any extraction, when the labels and the settings do not fit together."""
    if samples.labelled and settings.clusters:
        raise ValueError(
            f"dataset {samples.name!r} has labels, so --clusters {settings.clusters} does not apply; "
            "omit it to score against the given labels"
        )
    if not samples.labelled and not settings.clusters:
        raise ValueError(
            f"dataset {samples.name!r} has no labels; pass --clusters K (K >= 2) to score against "
            "k-means pseudo-labels of the features, or add labels"
        )
    if not samples.labelled and model_source == "cnn":
        raise ValueError(
            f"dataset {samples.name!r} has no labels, and the in-app CNN trains on labels; pass a pretrained "
            "model with --model torchvision:ARCH:WEIGHTS_FILE or a TorchScript file"
        )


def _label(settings: PipelineSettings, samples: SampleSet, features: np.ndarray) -> SampleSet:
    if samples.labelled:
        return samples
    labels, names = kmeans_pseudo_labels(features, settings.clusters)
    return samples.with_labels(labels, names, pseudo=True)


def _open_sources(settings: PipelineSettings, progress: ProgressCallback = ignore_progress):
    """Open the dataset and the model; return the samples, the resolved model source, the extractor and the features key."""
    samples = open_dataset(settings.dataset, labels=settings.labels, progress=progress)
    model_source = resolve_model_source(settings.model, samples.kind)
    _check_labels(settings, samples, model_source)
    extractor = open_model(
        model_source,
        samples.kind,
        feature_layer=settings.feature_layer,
        image_size=settings.image_size,
        cnn_config=settings.cnn,
    )
    return samples, model_source, extractor, _features_key(samples, extractor.fingerprint())


def run_pipeline(
    settings: PipelineSettings = PipelineSettings(),
    *,
    progress: ProgressCallback = ignore_progress,
    workspace: Path | str | None = None,
    dashboard: bool = False,
) -> PipelineResult:
    """Open the dataset, extract features, score with LSI and tabulate, reusing cached steps.

    Parameters
    ----------
    settings : PipelineSettings
    progress : callable, optional
        Receives the completed fraction of the whole run and a step message.
    workspace : path, optional
        Cache folder; defaults to :func:`lsi_app.store.workspace_dir`.
    dashboard : bool, default=False
        Also return the scored features and a 2-D UMAP map of them (cached),
        which the dashboard needs for its map and nearest neighbours.

    Raises
    ------
    ValueError
        For invalid settings or sources, with the value and the fix.
    """
    settings.validate()
    root = workspace_dir(workspace)
    steps = _DASHBOARD_STEPS if dashboard else _CLI_STEPS
    progress(0.0, f"Opening dataset {settings.dataset}")
    samples, model_source, extractor, features_key = _open_sources(settings, scaled(progress, 0.0, steps[0]))
    features_cache = FeatureCache(root)

    results = ResultCache(root)
    cached = _load_result(results, settings, samples, features_key)
    if cached is not None and (not dashboard or features_cache.has(features_key)):
        logger.info("cache hit for %s (%s)", settings.dataset, cached.key)
        if dashboard:
            features, kept, _ = features_cache.load(features_key)
            opened_positions = pd.Index(samples.sample_ids).get_indexer(cached.table["sample_id"].astype(str))
            features = np.asarray(features[np.searchsorted(kept, opened_positions)])
            cached.features = standardize(features) if settings.standardize else features
            cached.coords = _embedding(root, settings, features_key, cached.features, scaled(progress, steps[2], 1.0))
        progress(1.0, "Loaded cached scores")
        return cached

    device = resolve_device(settings.device)
    progress(steps[0], "Extracting features")
    features, kept, skipped, features_from_cache = _extract(
        settings, samples, extractor, features_cache, features_key, device, scaled(progress, steps[0], steps[1])
    )
    samples = samples.subset(kept, skipped)
    samples, features = _drop_non_finite(samples, features)
    if len(samples) == 0:
        raise ValueError(f"no usable sample in {settings.dataset!r}: all {len(samples.skipped)} items were skipped")
    if settings.standardize:
        features = standardize(features)
    samples = _label(settings, samples, features)

    key = _result_key(settings, features_key)
    with lock(root, key):
        if results.has(key):
            table, from_cache = results.load(key), True
        else:
            scored = _score(settings, samples, model_source, features, features_key, root, device, progress, steps)
            table, from_cache = scored, False
            results.save(key, table, description={"description": _describe(settings, model_source)})
    result = PipelineResult(samples, table, key, from_cache=from_cache, features_from_cache=features_from_cache)
    if dashboard:
        result.features = np.asarray(features)
        result.coords = _embedding(root, settings, features_key, result.features, scaled(progress, steps[2], 1.0))
    progress(1.0, "Done")
    return result


def _score(settings, samples, model_source, features, features_key, root, device, progress, steps) -> pd.DataFrame:
    """Fit the probe posterior and compute LSI, warm-starting from cached probe weights."""
    progress(steps[1], "Fitting the probe posterior and computing LSI")
    probes = ProbeCache(root)
    probe_key = _probe_key(settings, features_key)
    initial_weights = probes.load(probe_key)[0] if probes.has(probe_key) else None
    if settings.engine == Engine.RAY.value:
        from lsi_app.scaleout import score_ray  # the ray extra is optional

        scores, weights = score_ray(
            features,
            samples.labels,
            samples.n_classes,
            cache_root=root,
            result_key=_result_key(settings, features_key),
            hessian=settings.hessian,
            prior_precision=settings.prior_precision,
            options=_ray_options(settings, device),
            device=str(device),
            initial_weights=initial_weights,
            progress=scaled(progress, steps[1], steps[2]),
            return_weights=True,
        )
    else:
        scores, weights = compute_lsi(
            features,
            samples.labels,
            n_classes=samples.n_classes,
            initial_weights=initial_weights,
            progress=scaled(progress, steps[1], steps[2]),
            return_weights=True,
            **settings.engine_options(str(device)),
        )
    probes.save(probe_key, weights, {"description": f"{settings.dataset} | {model_source} | probe weights"})
    table = build_sample_table(samples, scores)
    table.attrs["pipeline_settings"] = _settings_record(settings, model_source)
    table.attrs["dataset_fingerprint"] = samples.fingerprint
    table.attrs["probe_key"] = probe_key
    table.attrs["skipped"] = [[entry.item, entry.reason] for entry in samples.skipped]
    return table


def _ray_options(settings: PipelineSettings, device):
    from lsi_app.scaleout import RayOptions  # the ray extra is optional

    return RayOptions(address=settings.ray_address, gpus_per_worker=1.0 if device.type == "cuda" else 0.0)


def _embedding(root: Path, settings: PipelineSettings, features_key: str, features: np.ndarray, progress) -> np.ndarray:
    """Return the cached 2-D UMAP map of ``features``, computing and storing it on a miss."""
    key = cache_key(
        {
            "features": features_key,
            "standardize": settings.standardize,
            "n_samples": int(features.shape[0]),
            "umap_seed": UMAP_SEED,
            "format": CACHE_FORMAT,
        }
    )
    cache = FeatureCache(root)
    with lock(root, key):
        if cache.has(key):
            return np.asarray(cache.load(key)[0])
        progress(0.0, "Computing the UMAP map")
        coords = umap_embedding(features, seed=UMAP_SEED, progress=progress)
        positions = np.arange(coords.shape[0], dtype=np.int64)
        cache.save(key, coords, positions, {"description": f"{settings.dataset} | UMAP map of {coords.shape[0]} samples"})
    return coords


def _settings_record(settings: PipelineSettings, model_source: str) -> dict:
    record = asdict(settings)
    record["model_resolved"] = model_source
    return record


def _describe(settings: PipelineSettings, model_source: str) -> str:
    prior = settings.prior_precision
    return f"{settings.dataset} | {model_source} | {settings.hessian}, prior {prior}, {settings.method}"


def _load_result(results: ResultCache, settings, samples: SampleSet, features_key: str) -> PipelineResult | None:
    key = _result_key(settings, features_key)
    if not results.has(key):
        return None
    table = results.load(key)
    # Rows are matched by sample id, which is unique within a set, so the
    # scored subset is rebuilt without storing positions.
    positions = pd.Index(samples.sample_ids).get_indexer(table["sample_id"].astype(str))
    if (positions < 0).any():
        logger.warning("cached table %s names samples missing from %s; recomputing", key, settings.dataset)
        return None
    skipped = [SkippedItem(item, reason) for item, reason in table.attrs.get("skipped", [])]
    scored = replace(samples, skipped=()).subset(positions, skipped)
    if "label" in table and not samples.labelled:
        names = tuple(table.attrs.get("label_mapping", {}).values())
        scored = scored.with_labels(table["label"].to_numpy(), names, pseudo=True)
    return PipelineResult(scored, table, key, from_cache=True)


def load_cached(settings: PipelineSettings, workspace: Path | str | None = None) -> PipelineResult | None:
    """Return the cached result for ``settings``, or None when it has not been computed.

    Opens the dataset (to fingerprint it) but extracts nothing and fits nothing.
    """
    settings.validate()
    samples, _, _, features_key = _open_sources(settings)
    return _load_result(ResultCache(workspace_dir(workspace)), settings, samples, features_key)


def score_arrays(
    features: np.ndarray,
    labels: np.ndarray,
    settings: PipelineSettings = PipelineSettings(),
    *,
    progress: ProgressCallback = ignore_progress,
) -> pd.DataFrame:
    """Score precomputed features in memory; labels may be strings or any integers.

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
