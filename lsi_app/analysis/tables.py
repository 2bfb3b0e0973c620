"""Per-sample score tables."""

from __future__ import annotations

import pandas as pd

from lsi_app.data import SampleSet


def build_sample_table(samples: SampleSet, scores: pd.DataFrame) -> pd.DataFrame:
    """Join engine scores with sample ids, paths, labels and class names.

    Parameters
    ----------
    samples : SampleSet
        Labelled samples (given labels or pseudo-labels).
    scores : DataFrame
        Output of :func:`lsi_app.engine.compute_lsi`, one row per sample in
        the order of ``samples``.

    Returns
    -------
    DataFrame with columns ``index`` (position in ``samples``), ``sample_id``,
    ``path`` (file-backed sources only), ``label``, ``class_name``, the
    source's extra columns (such as ``split``), every score column and
    ``predicted_name``. ``attrs["label_mapping"]`` maps each class code, as
    text, to its class name, and ``attrs["pseudo_labels"]`` is True when
    the labels are k-means clusters of unlabelled data.
    """
    if len(scores) != len(samples):
        raise ValueError(f"scores have {len(scores)} rows but the dataset has {len(samples)} samples")
    if samples.labels is None:
        raise ValueError(f"dataset {samples.name!r} has no labels; assign labels or pseudo-labels before scoring")
    names = pd.Series(samples.class_names, dtype=object)
    columns = {"index": range(len(samples)), "sample_id": samples.sample_ids}
    if samples.paths is not None:
        columns["path"] = samples.paths
    columns["label"] = samples.labels
    columns["class_name"] = names.iloc[samples.labels].to_numpy()
    columns.update(samples.columns)
    table = pd.DataFrame(columns)
    table = pd.concat([table, scores.reset_index(drop=True)], axis=1)
    table["predicted_name"] = names.iloc[table["predicted"].to_numpy()].to_numpy()
    table.attrs = dict(scores.attrs)
    table.attrs["label_mapping"] = {str(code): name for code, name in enumerate(samples.class_names)}
    table.attrs["pseudo_labels"] = bool(samples.pseudo_labels)
    return table


def highest_and_lowest(table: pd.DataFrame, k: int, column: str = "lsi") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the ``k`` rows with the highest ``column`` (descending) and the ``k`` lowest (ascending).

    Ties keep dataset order, so the result is deterministic.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    ordered = table.sort_values(column, ascending=False, kind="stable")
    highest = ordered.head(k)
    lowest = table.sort_values(column, ascending=True, kind="stable").head(k)
    return highest, lowest
