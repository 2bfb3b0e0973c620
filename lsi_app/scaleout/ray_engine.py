"""Feature extraction and LSI scoring split into shards that run as Ray tasks.

Both steps split the samples into contiguous shards of ``shard_size`` rows.
Each shard is one Ray task that writes its result to the workspace cache
under a key of the shard (a hash of the run's key, the shard's index and
its row bounds) and returns only that key. The driver then loads the
shards in order. So:

- the driver never loads the images, and no model object is shipped:
  each extraction task opens the model from its source string;
- a task is idempotent. A retry after a lost worker finds or rewrites the
  same entry, and every write is atomic, so no row is lost or duplicated.
  The driver checks that every row appears exactly once;
- a run that stops (an error, a killed driver) keeps the finished shards,
  and running it again computes only the missing ones.

Scoring fits the probe posterior once on the driver (the features fit in
its memory), puts a CPU copy into the object store once, and each task
scores its rows with :func:`lsi_app.engine.api.score_rows`. The closed-form
LSI of a sample needs only its row and the posterior, so the table equals
:func:`lsi_app.engine.compute_lsi` with ``method="fast"``.

Workers must import ``lsi_app`` and read the workspace (``cache_root``) and
any model file at the paths the driver uses. A local cluster shares them
with the driver. On a multi-node cluster, ``cache_root`` and model files
must be on a file system that every node mounts at the same path, and
``lsi-app[ray]`` must be installed on every node.

Ray is imported only when a function here needs it, so this module imports
without Ray installed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lsi_app import __version__
from lsi_app.data.samples import SampleSet, SkippedItem
from lsi_app.engine.api import PRIOR_SELECTION_KEYS, FittedPosterior, fit_lsi_posterior, score_rows
from lsi_app.models import ModelName, check_model_source, open_model, resolve_model_source
from lsi_app.models.base import DEFAULT_BATCH_SIZE, Extraction
from lsi_app.models.extraction import log_skipped
from lsi_app.progress import ProgressCallback, ignore_progress, scaled
from lsi_app.scaleout.cluster import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_SHARD_SIZE,
    RAY_MISSING_MESSAGE,
    RayOptions,
    Shard,
    ShardFailedError,
    ShardHook,
    cluster_slots,
    import_ray,
    plan_shards,
    ray_session,
    run_shards,
    set_worker_threads,
    worker_device,
)
from lsi_app.store.cache import FeatureCache, ResultCache
from lsi_app.store.locks import lock

logger = logging.getLogger(__name__)

#: Share of the progress bar for the driver's fit in :func:`score_ray`. It is
#: a rough split, because the ratio of fit to scoring time depends on the
#: solver steps and on the number of workers.
FIT_PROGRESS_SHARE = 0.3

#: Column that each scored shard stores with the global row number of its
#: rows, so that the driver can check the gathered table.
ROW_COLUMN = "row"


# --- feature extraction -------------------------------------------------------


def _extract_shard(
    shard_samples: SampleSet,
    model_source: str,
    model_options: dict,
    cache_root: str,
    shard: Shard,
    batch_size: int,
    gpus_per_worker: float,
    cpus_per_worker: float,
    shard_hook: ShardHook | None,
) -> str:
    """Ray task: extract the features of one shard and store them under ``shard.key``."""
    cache = FeatureCache(cache_root)
    with lock(cache_root, shard.key):
        if cache.has(shard.key):
            return shard.key
        if shard_hook is not None:
            shard_hook(shard.index)
        set_worker_threads(cpus_per_worker)
        extractor = open_model(model_source, shard_samples.kind, **model_options)
        extraction = extractor.extract(shard_samples, device=worker_device(gpus_per_worker), batch_size=batch_size)
        metadata = {
            "description": f"Ray feature shard {shard.index}, rows {shard.start}-{shard.stop - 1} | {model_source}",
            "start": shard.start,
            "stop": shard.stop,
            "skipped": [[entry.item, entry.reason] for entry in extraction.skipped],
            "notes": list(extraction.notes),
        }
        cache.save(shard.key, extraction.features, extraction.kept, metadata)
    return shard.key


def _feature_shards(n_items: int, shard_size: int, features_key: str) -> list[Shard]:
    return plan_shards(n_items, shard_size, {"features": features_key, "engine": "ray"})


def extract_features_ray(
    samples: SampleSet,
    model_source: str,
    *,
    cache_root: Path | str,
    features_key: str,
    model_options: Mapping | None = None,
    options: RayOptions | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback = ignore_progress,
    shard_hook: ShardHook | None = None,
) -> Extraction:
    """Extract the features of ``samples`` in Ray tasks, one per shard of contiguous items.

    Each task opens the model from ``model_source`` itself, extracts its
    shard (a :meth:`SampleSet.subset`) and stores the result in the
    workspace cache under a key derived from ``features_key`` and the
    shard. Shards found there are not computed again. The result equals
    ``open_model(model_source, samples.kind, **model_options).extract(samples)``
    up to floating-point rounding, which may differ because batches start
    at shard boundaries.

    Parameters
    ----------
    samples : SampleSet
        Its reader must be picklable, as :class:`~lsi_app.data.samples.ItemReader` requires.
    model_source : str
        A model source for :func:`lsi_app.models.open_model`. ``cnn`` (and
        ``auto`` for images) is rejected, because the in-app CNN trains on
        the whole dataset and one per shard would give different features.
    cache_root : Path or str
        Workspace root; workers write the shards there.
    features_key : str
        Key of the whole extraction, such as the pipeline's features key
        (dataset and model fingerprints).
    model_options : mapping, optional
        Keyword arguments for :func:`lsi_app.models.open_model`, such as
        ``feature_layer`` and ``image_size``.
    options : RayOptions, optional
        Defaults to ``RayOptions()``: a local cluster using every CPU.
    batch_size : int, default=DEFAULT_BATCH_SIZE
        Items per forward pass inside a task.
    progress : callable, optional
        Receives the fraction of shards done and a message.
    shard_hook : callable, optional
        See :data:`ShardHook`.

    Returns
    -------
    Extraction
        ``features`` of shape (n_kept, n_features), ``kept`` (ascending
        positions into ``samples``), ``skipped`` in sample order and the
        extractor's ``notes``.

    Raises
    ------
    ValueError
        For a model source that does not fit the samples or cannot be split.
    ShardFailedError
        When a shard fails; the finished shards stay cached.
    ImportError
        When Ray is not installed.
    """
    options = options or RayOptions()
    model_options = dict(model_options or {})
    check_model_source(model_source, samples.kind)
    if resolve_model_source(model_source, samples.kind) == ModelName.CNN.value:
        raise ValueError(
            f"model source {model_source!r} is the in-app CNN, which trains on the whole dataset, so it cannot "
            "be split across Ray workers; use a pretrained model (torchvision:ARCH or a TorchScript file) "
            "or the local engine"
        )
    cache_root = Path(cache_root)
    cache = FeatureCache(cache_root)
    shards = _feature_shards(len(samples), options.shard_size, features_key)
    # Opening skips belong to the whole set; shipping them with every shard would only add weight.
    unskipped = replace(samples, skipped=())

    with ray_session(options) as ray:
        window = options.num_workers or cluster_slots(ray, options)

        def arguments(shard: Shard) -> tuple:
            shard_samples = unskipped.subset(np.arange(shard.start, shard.stop))
            return (
                shard_samples,
                model_source,
                model_options,
                str(cache_root),
                shard,
                batch_size,
                options.gpus_per_worker,
                options.cpus_per_worker,
                shard_hook,
            )

        started = time.perf_counter()
        computed = run_shards(
            ray,
            _extract_shard,
            shards,
            arguments,
            cache.has,
            options=options,
            window=window,
            step="Extracting features on Ray",
            progress=progress,
        )
    logger.info(
        "extracted %d shards on Ray (%d computed, %d from the cache) in %.1f s with up to %d workers",
        len(shards),
        computed,
        len(shards) - computed,
        time.perf_counter() - started,
        window,
    )
    return _gather_features(cache, shards, len(samples))


def _gather_features(cache: FeatureCache, shards: Sequence[Shard], n_items: int) -> Extraction:
    """Concatenate the stored shards in order, offsetting kept positions by each shard's start."""
    blocks: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    skipped: list[SkippedItem] = []
    notes: list[str] = []
    n_features: int | None = None
    for shard in shards:
        features, shard_kept, metadata = cache.load(shard.key)
        shard_skipped = metadata.get("skipped", [])
        n_rows = shard.stop - shard.start
        if len(shard_kept) + len(shard_skipped) != n_rows or np.any(np.diff(shard_kept) <= 0):
            raise ValueError(
                f"feature shard {shard.index} ({shard.key}) covers {len(shard_kept)} kept and {len(shard_skipped)} "
                f"skipped items, but its rows {shard.start}-{shard.stop - 1} are {n_rows} items; remove the entry "
                "with `lsi-app cache clear` and run again"
            )
        if len(shard_kept) and (shard_kept[0] < 0 or shard_kept[-1] >= n_rows):
            raise ValueError(
                f"feature shard {shard.index} ({shard.key}) has kept positions outside 0..{n_rows - 1}; remove "
                "the entry with `lsi-app cache clear` and run again"
            )
        skipped.extend(SkippedItem(item, reason) for item, reason in shard_skipped)
        notes.extend(note for note in metadata.get("notes", []) if note not in notes)
        if len(shard_kept) == 0:
            continue
        if n_features is not None and features.shape[1] != n_features:
            raise ValueError(
                f"feature shard {shard.index} has {features.shape[1]} features per row but earlier shards have "
                f"{n_features}; the shards come from different models, so clear the cache and run again"
            )
        n_features = features.shape[1]
        blocks.append(features)
        kept.append(shard_kept + shard.start)

    log_skipped(skipped, n_items)
    if not blocks:
        return Extraction(np.empty((0, 0), dtype=np.float32), np.empty(0, dtype=np.int64), skipped, notes)
    return Extraction(np.concatenate(blocks), np.concatenate(kept).astype(np.int64), skipped, notes)


def discard_feature_shards(
    n_items: int, *, cache_root: Path | str, features_key: str, shard_size: int = DEFAULT_SHARD_SIZE
) -> int:
    """Remove the feature shards of one extraction from the cache; return how many were removed.

    Call it once the caller has stored the whole matrix (the pipeline does,
    under ``features_key``), so the features are not kept twice on disk.
    ``n_items`` and ``shard_size`` must be those of the extraction.
    """
    cache = FeatureCache(cache_root)
    removed = 0
    for shard in _feature_shards(n_items, shard_size, features_key):
        if not cache.has(shard.key):
            continue
        # The sidecar marks an entry as complete, so it goes first.
        for path in (cache.metadata_path(shard.key), cache.path(shard.key), cache.kept_path(shard.key)):
            path.unlink(missing_ok=True)
        removed += 1
    return removed


# --- scoring -----------------------------------------------------------------


def _score_shard(
    fitted: FittedPosterior,
    features: np.ndarray,
    labels: np.ndarray,
    cache_root: str,
    shard: Shard,
    gpus_per_worker: float,
    cpus_per_worker: float,
    shard_hook: ShardHook | None,
) -> str:
    """Ray task: score one shard's rows and store the table under ``shard.key``."""
    results = ResultCache(cache_root)
    with lock(cache_root, shard.key):
        if results.has(shard.key):
            return shard.key
        if shard_hook is not None:
            shard_hook(shard.index)
        set_worker_threads(cpus_per_worker)
        device = worker_device(gpus_per_worker)
        if fitted.device != device:
            fitted = fitted.to(device)
        table = score_rows(fitted, features, labels)
        table.insert(0, ROW_COLUMN, np.arange(shard.start, shard.stop, dtype=np.int64))
        description = {"description": f"Ray score shard {shard.index}, rows {shard.start}-{shard.stop - 1}"}
        results.save(shard.key, table, description=description)
    return shard.key


def score_ray(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int | None = None,
    *,
    cache_root: Path | str,
    result_key: str,
    hessian: str = "full",
    prior_precision: float | str = 1.0,
    options: RayOptions | None = None,
    device: str = "auto",
    bias: bool = True,
    dtype: torch.dtype | None = None,
    initial_weights: np.ndarray | None = None,
    progress: ProgressCallback = ignore_progress,
    return_weights: bool = False,
    shard_hook: ShardHook | None = None,
) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
    """Score every sample with fast LSI, fitting on the driver and scoring shards in Ray tasks.

    Gives the table of :func:`lsi_app.engine.compute_lsi` with
    ``method="fast"`` and the same arguments, up to floating-point rounding.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        Integer classes in ``0..n_classes-1``.
    n_classes : int, optional
        Defaults to ``labels.max() + 1``.
    cache_root : Path or str
        Workspace root; workers write the scored shards there.
    result_key : str
        Key of the whole run. It must change whenever the features or the
        labels change, as the pipeline's result key does. The engine
        settings given here are added to the shard keys.
    hessian, prior_precision, device, bias, dtype, initial_weights
        As for :func:`lsi_app.engine.compute_lsi`. ``device`` is where the
        driver fits; workers score on a GPU when ``options.gpus_per_worker``
        is above 0, else on CPU.
    options : RayOptions, optional
        Defaults to ``RayOptions()``: a local cluster using every CPU.
    progress : callable, optional
        Receives the completed fraction and a step message.
    return_weights : bool, default=False
        Also return the probe's MAP weights, as :func:`compute_lsi` does.
    shard_hook : callable, optional
        See :data:`ShardHook`.

    Returns
    -------
    DataFrame
        One row per sample in input order, with the columns of
        :func:`compute_lsi`. ``attrs["lsi_settings"]`` has its entries plus
        ``engine`` (``"ray"``), ``n_shards``, ``shard_size``, ``workers``
        (tasks in flight at once), ``computed_shards`` (the rest came from
        the cache), ``gpus_per_worker`` and ``ray_version``. With
        ``return_weights``, a tuple ``(table, weights)``.

    Raises
    ------
    ValueError
        For invalid inputs or settings, as :func:`compute_lsi`.
    ShardFailedError
        When a shard fails; the finished shards stay cached.
    ImportError
        When Ray is not installed.
    """
    options = options or RayOptions()
    cache_root = Path(cache_root)
    started = time.perf_counter()
    fitted = fit_lsi_posterior(
        features,
        labels,
        hessian=hessian,
        prior_precision=prior_precision,
        device=device,
        bias=bias,
        n_classes=n_classes,
        dtype=dtype,
        initial_weights=initial_weights,
        progress=scaled(progress, 0.0, FIT_PROGRESS_SHARE),
    )
    features = np.asarray(features)
    labels = np.asarray(labels).astype(np.int64)
    fit_settings = fitted.settings
    shards = plan_shards(
        len(labels),
        options.shard_size,
        {
            "result": result_key,
            "engine": "ray",
            "hessian": fit_settings["hessian"],
            "prior_precision": fit_settings["prior_precision"],
            "dtype": fit_settings["dtype"],
            "bias": fit_settings["bias"],
            "n_classes": fit_settings["n_classes"],
            "n_samples": fit_settings["n_samples"],
        },
    )
    results = ResultCache(cache_root)

    with ray_session(options) as ray:
        window = options.num_workers or cluster_slots(ray, options)
        # One CPU copy in the object store; tasks receive it without another pickling.
        posterior_reference = ray.put(fitted.for_scoring().to("cpu"))

        def arguments(shard: Shard) -> tuple:
            return (
                posterior_reference,
                features[shard.start : shard.stop],
                labels[shard.start : shard.stop],
                str(cache_root),
                shard,
                options.gpus_per_worker,
                options.cpus_per_worker,
                shard_hook,
            )

        scoring_started = time.perf_counter()
        computed = run_shards(
            ray,
            _score_shard,
            shards,
            arguments,
            results.has,
            options=options,
            window=window,
            step="Computing LSI on Ray",
            progress=scaled(progress, FIT_PROGRESS_SHARE, 1.0),
        )
        ray_version = ray.__version__
    table = _gather_scores(results, shards, len(labels))
    scored = time.perf_counter()
    logger.info(
        "scored %d samples in %d shards on Ray (%d computed) in %.1f s with up to %d workers",
        len(labels),
        len(shards),
        computed,
        scored - scoring_started,
        window,
    )

    settings = {key: fit_settings[key] for key in PRIOR_SELECTION_KEYS if key in fit_settings}
    settings.update(
        {
            "hessian": fit_settings["hessian"],
            "method": "fast",
            "prior_precision": fit_settings["prior_precision"],
            "log_evidence": fit_settings["log_evidence"],
            "device": fit_settings["device"],
            "dtype": fit_settings["dtype"],
            "bias": fit_settings["bias"],
            "n_samples": fit_settings["n_samples"],
            "n_classes": fit_settings["n_classes"],
            "n_parameters": fit_settings["n_parameters"],
            "solver": fit_settings["solver"],
            "solver_steps": fit_settings["solver_steps"],
            "gradient_norm": fit_settings["gradient_norm"],
            "gradient_tolerance": fit_settings["gradient_tolerance"],
            "converged": fit_settings["converged"],
            "refine_top": 0,
            "fit_seconds": fit_settings["fit_seconds"],
            "score_seconds": scored - scoring_started,
            "total_seconds": scored - started,
            "torch_version": torch.__version__,
            "lsi_app_version": __version__,
            "engine": "ray",
            "n_shards": len(shards),
            "shard_size": options.shard_size,
            "workers": int(window),
            "computed_shards": int(computed),
            "gpus_per_worker": float(options.gpus_per_worker),
            "ray_version": ray_version,
        }
    )
    table.attrs["lsi_settings"] = settings
    progress(1.0, "Done")
    if return_weights:
        return table, fitted.posterior.mean.double().cpu().numpy()
    return table


def _gather_scores(results: ResultCache, shards: Sequence[Shard], n_rows: int) -> pd.DataFrame:
    """Concatenate the scored shards in order and check that every row appears exactly once."""
    table = pd.concat([results.load(shard.key) for shard in shards], ignore_index=True)
    rows = table[ROW_COLUMN].to_numpy()
    if not np.array_equal(rows, np.arange(n_rows)):
        counts = np.bincount(rows[(rows >= 0) & (rows < n_rows)], minlength=n_rows)
        missing = np.flatnonzero(counts == 0)[:10].tolist()
        repeated = np.flatnonzero(counts > 1)[:10].tolist()
        raise RuntimeError(
            f"the scored shards do not cover rows 0..{n_rows - 1} exactly once in order (missing {missing}, "
            f"repeated {repeated}); remove the shard entries with `lsi-app cache clear` and run again"
        )
    table = table.drop(columns=ROW_COLUMN)
    table.attrs = {}
    return table


__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_SHARD_SIZE",
    "RAY_MISSING_MESSAGE",
    "RayOptions",
    "ShardFailedError",
    "discard_feature_shards",
    "extract_features_ray",
    "import_ray",
    "ray_session",
    "score_ray",
]
