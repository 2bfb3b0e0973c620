"""Per-sample score tables."""

from __future__ import annotations

import pandas as pd

from lsi_app.data import SampleSet


def build_sample_table(samples: SampleSet, scores: pd.DataFrame) -> pd.DataFrame:
    """Join engine scores with sample ids, labels and class names.

    Parameters
    ----------
    samples : SampleSet
    scores : DataFrame
        Output of :func:`lsi_app.engine.compute_lsi`, one row per sample in
        the order of ``samples``.

    Returns
    -------
    DataFrame with columns ``index`` (position in ``samples``), ``sample_id``,
    ``label``, ``class_name``, ``predicted_name`` and every score column.
    """
    if len(scores) != len(samples):
        raise ValueError(f"scores have {len(scores)} rows but the dataset has {len(samples)} samples")
    names = pd.Series(samples.class_names)
    table = pd.DataFrame(
        {
            "index": range(len(samples)),
            "sample_id": samples.sample_ids,
            "label": samples.labels,
            "class_name": names.iloc[samples.labels].to_numpy(),
        }
    )
    table = pd.concat([table, scores.reset_index(drop=True)], axis=1)
    table["predicted_name"] = names.iloc[table["predicted"].to_numpy()].to_numpy()
    table.attrs = dict(scores.attrs)
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
