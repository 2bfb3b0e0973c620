"""Per-class statistics for the dashboard: LSI summaries, accuracy, confusion and distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lsi_app.analysis.gallery import as_flag_array
from lsi_app.analysis.summaries import N_BOOTSTRAP, summarize_lsi

#: Points per class in :func:`lsi_distributions`. A box or violin plot of
#: 2,000 points is indistinguishable from one of all points, and 1,000
#: classes then send at most 2 million points to the browser.
MAX_POINTS_PER_CLASS = 2000


def _class_codes(table: pd.DataFrame, column: str, n_classes: int) -> np.ndarray:
    codes = table[column].to_numpy()
    if codes.size and (codes.min() < 0 or codes.max() >= n_classes):
        bad = codes[(codes < 0) | (codes >= n_classes)][0]
        raise ValueError(
            f"column {column!r} contains class code {bad}, outside 0..{n_classes - 1} of the "
            f"{n_classes} class names given; pass every class name in code order"
        )
    return codes.astype(np.int64)


def class_table(
    table: pd.DataFrame,
    class_names: list[str] | tuple[str, ...],
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """Summarise LSI, probe accuracy and flags per given class.

    Parameters
    ----------
    table : DataFrame
        Score table with ``label``, ``lsi`` and ``predicted``; a ``flagged``
        column (see :func:`lsi_app.analysis.gallery.merge_curation`) adds
        the flag counts.
    class_names : sequence of str
        ``class_names[c]`` names class code ``c``.
    n_bootstrap : int, default=N_BOOTSTRAP
        Resamples of the bootstrap intervals.
    seed : int, default=0
        Seed of the bootstrap resampling.

    Returns
    -------
    DataFrame
        One row per class in code order, with index ``label`` (the class
        code). The columns are ``class_name``, ``count``, ``mean_lsi``,
        ``mean_lsi_low`` and ``mean_lsi_high`` (95% bootstrap interval of
        the mean), ``median_lsi`` and ``accuracy`` (share of the class
        predicted as its label). A ``flagged`` input column adds
        ``flagged``, the count of flagged rows.
        ``count`` includes rows whose LSI is NaN, while the LSI statistics
        use finite values only. Classes without samples have count 0 and
        NaN statistics.
    """
    names = list(class_names)
    labels = _class_codes(table, "label", len(names))
    lsi = table["lsi"].to_numpy(dtype=np.float64)
    finite = np.isfinite(lsi)
    summary = summarize_lsi(lsi[finite], labels[finite], names, n_bootstrap=n_bootstrap, seed=seed).per_class

    counts = np.bincount(labels, minlength=len(names))
    correct = np.bincount(labels, weights=table["predicted"].to_numpy() == labels, minlength=len(names))
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)

    result = pd.DataFrame(
        {
            "class_name": names,
            "count": counts.astype(np.int64),
            "mean_lsi": summary["mean_lsi"].to_numpy(),
            "mean_lsi_low": summary["mean_lsi_low"].to_numpy(),
            "mean_lsi_high": summary["mean_lsi_high"].to_numpy(),
            "median_lsi": summary["median_lsi"].to_numpy(),
            "accuracy": accuracy,
        },
        index=pd.RangeIndex(len(names), name="label"),
    )
    if "flagged" in table.columns:
        flagged = as_flag_array(table["flagged"])
        result["flagged"] = np.bincount(labels, weights=flagged, minlength=len(names)).astype(np.int64)
    return result


def confusion_matrix(table: pd.DataFrame, class_names: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Count samples per (given label, predicted class) pair.

    Returns
    -------
    DataFrame of shape (n_classes, n_classes)
        Index ``label``: the given class names; columns ``predicted``: the
        predicted class names. Every class is listed, with zeros when absent.
    """
    names = list(class_names)
    n_classes = len(names)
    labels = _class_codes(table, "label", n_classes)
    predicted = _class_codes(table, "predicted", n_classes)
    counts = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes)
    return pd.DataFrame(
        counts.reshape(n_classes, n_classes).astype(np.int64),
        index=pd.Index(names, name="label"),
        columns=pd.Index(names, name="predicted"),
    )


def lsi_distributions(
    table: pd.DataFrame, *, max_points_per_class: int = MAX_POINTS_PER_CLASS, seed: int = 0
) -> pd.DataFrame:
    """Return per-class LSI values in long format for a box or violin plot.

    Parameters
    ----------
    table : DataFrame
        Score table with ``sample_id``, ``class_name`` and ``lsi``.
    max_points_per_class : int, default=MAX_POINTS_PER_CLASS
        Classes with more finite LSI values are subsampled uniformly
        without replacement.
    seed : int, default=0
        Seed of the subsampling, so one table always gives the same points.

    Returns
    -------
    DataFrame
        Columns ``sample_id``, ``class_name`` and ``lsi``, in table order.
        Rows whose LSI is NaN or infinite are left out.
    """
    if max_points_per_class < 1:
        raise ValueError(f"max_points_per_class must be >= 1, got {max_points_per_class}")
    points = table.loc[np.isfinite(table["lsi"].to_numpy(dtype=np.float64)), ["sample_id", "class_name", "lsi"]]
    # A random key per row, sorted within each class, picks a uniform
    # subsample of each class in one vectorised pass.
    key = np.random.default_rng(seed).random(len(points))
    ranked = points.assign(_key=key, _position=np.arange(len(points))).sort_values(["class_name", "_key"])
    sampled = ranked.groupby("class_name", sort=False).head(max_points_per_class).sort_values("_position")
    return sampled.drop(columns=["_key", "_position"]).reset_index(drop=True)
