"""Dataset and per-class LSI summaries with bootstrap confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Bootstrap resamples per interval. 2,000 keeps the Monte Carlo error of a
#: 95% percentile bound near 1% of the interval's width.
N_BOOTSTRAP = 2000
CONFIDENCE = 0.95


@dataclass
class LSISummary:
    """Dataset-level LSI statistics and one row per class.

    Attributes
    ----------
    mean, median : float
        Over all samples, in nats.
    n_samples : int
    per_class : DataFrame
        Index ``class``; columns ``class_name``, ``count``, ``mean_lsi``,
        ``mean_lsi_low``, ``mean_lsi_high``, ``median_lsi``,
        ``median_lsi_low``, ``median_lsi_high`` (bootstrap percentile
        intervals; NaN for classes with no samples).
    """

    mean: float
    median: float
    n_samples: int
    per_class: pd.DataFrame


def summarize_lsi(
    lsi: np.ndarray,
    labels: np.ndarray,
    class_names: list[str] | tuple[str, ...] | None = None,
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> LSISummary:
    """Summarise LSI over the dataset and per class.

    Parameters
    ----------
    lsi : ndarray of shape (n_samples,)
    labels : ndarray of shape (n_samples,)
        Integer classes in ``0..n_classes-1``.
    class_names : sequence of str, optional
        Defaults to the class numbers; classes without samples are listed
        with count 0.
    n_bootstrap : int, default=N_BOOTSTRAP
    confidence : float, default=CONFIDENCE
        Coverage of the percentile intervals.
    seed : int, default=0
        Seed of the bootstrap resampling.
    """
    lsi = np.asarray(lsi, dtype=np.float64)
    labels = np.asarray(labels)
    if lsi.shape != labels.shape or lsi.ndim != 1:
        raise ValueError(f"lsi and labels must be 1-D arrays of one length, got shapes {lsi.shape} and {labels.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if class_names is not None:
        names = list(class_names)
    else:
        n_classes = int(labels.max()) + 1 if labels.size else 0
        names = [str(c) for c in range(n_classes)]
    return _compute_summary(lsi, labels, names, n_bootstrap, confidence, np.random.default_rng(seed))


def _compute_summary(lsi, labels, names, n_bootstrap, confidence, rng) -> LSISummary:
    tail = (1 - confidence) / 2
    rows = []
    for index, name in enumerate(names):
        values = lsi[labels == index]
        row = {"class": index, "class_name": name, "count": int(values.size)}
        if values.size == 0:
            row.update(dict.fromkeys(
                ["mean_lsi", "mean_lsi_low", "mean_lsi_high", "median_lsi", "median_lsi_low", "median_lsi_high"], np.nan
            ))
        else:
            resamples = values[rng.integers(0, values.size, size=(n_bootstrap, values.size))]
            means = resamples.mean(axis=1)
            medians = np.median(resamples, axis=1)
            row.update(
                mean_lsi=values.mean(),
                mean_lsi_low=np.quantile(means, tail),
                mean_lsi_high=np.quantile(means, 1 - tail),
                median_lsi=np.median(values),
                median_lsi_low=np.quantile(medians, tail),
                median_lsi_high=np.quantile(medians, 1 - tail),
            )
        rows.append(row)
    per_class = pd.DataFrame(rows).set_index("class")
    return LSISummary(
        mean=float(lsi.mean()) if lsi.size else float("nan"),
        median=float(np.median(lsi)) if lsi.size else float("nan"),
        n_samples=int(lsi.size),
        per_class=per_class,
    )
