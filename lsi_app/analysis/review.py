"""The mislabel review queue: candidates ranked by mislabel score, with the probe's suggestion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lsi_app.analysis.gallery import merge_curation

#: Score table columns that the review queue needs.
REQUIRED_COLUMNS = ("sample_id", "label", "mislabel_score", "predicted", "predicted_name")


def _probability_of_prediction(table: pd.DataFrame) -> np.ndarray:
    """Recover the probe's probability of its predicted class from ``p_label`` and ``margin``.

    ``margin`` is ``p_label`` minus the largest probability among the other
    classes. Where the prediction differs from the label, that largest
    other probability is the prediction's own, so it equals
    ``p_label - margin``. Where they agree, it is ``p_label``. Without both
    columns the result is NaN.
    """
    if "p_label" not in table.columns or "margin" not in table.columns:
        return np.full(len(table), np.nan)
    p_label = table["p_label"].to_numpy(dtype=np.float64)
    margin = table["margin"].to_numpy(dtype=np.float64)
    agrees = table["predicted"].to_numpy() == table["label"].to_numpy()
    # Clipping removes float rounding outside [0, 1], and NaN stays NaN.
    return np.clip(np.where(agrees, p_label, p_label - margin), 0.0, 1.0)


def _is_reviewed(merged: pd.DataFrame) -> np.ndarray:
    review = merged["review"].astype(object).where(merged["review"].notna(), "").astype(str).str.strip()
    relabel = merged["relabel"].astype(object).where(merged["relabel"].notna(), "").astype(str).str.strip()
    return ((review != "") | (relabel != "")).to_numpy()


def mislabel_candidates(
    table: pd.DataFrame, state: pd.DataFrame | None = None, *, limit: int | None = None
) -> pd.DataFrame:
    """Rank samples for label review by mislabel score, highest first.

    The ranking is by ``mislabel_score`` over all rows. Rows where the probe
    disagrees with the label are not moved ahead, because the score already
    multiplies LSI by the label's loss. On digits with flipped labels that
    product ranked the flips better than LSI or the loss alone (see
    :func:`lsi_app.engine.mislabel.mislabel_score`). Rows where the probe agrees are
    still listed, with the given label as the suggestion. The ``disagrees``
    column marks the rows where the prediction differs from the label.

    Parameters
    ----------
    table : DataFrame
        Score table from :func:`lsi_app.analysis.tables.build_sample_table`.
    state : DataFrame or None, default=None
        Curation state (see :func:`lsi_app.analysis.gallery.merge_curation`).
        When given, its columns are merged in and rows already reviewed
        (``review`` set, or ``relabel`` set) are left out. Flagged rows
        that were not reviewed stay in the queue.
    limit : int or None, default=None
        Keep at most this many candidates.

    Returns
    -------
    DataFrame
        Rows of ``table`` in rank order. Ties keep table order and NaN
        scores come last. The added columns are ``suggested_label`` (the
        predicted class name), ``suggested_code`` (its code),
        ``p_suggested`` (the probe's probability of it, NaN without
        ``p_label`` and ``margin``) and ``disagrees`` (True where the
        prediction differs from the label).
    """
    missing = [name for name in REQUIRED_COLUMNS if name not in table.columns]
    if missing:
        raise ValueError(f"the score table lacks columns {missing}; build it with build_sample_table")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
        raise ValueError(f"limit must be an integer >= 0 or None, got {limit!r}")

    candidates = table.copy() if state is None else merge_curation(table, state)
    candidates["suggested_label"] = candidates["predicted_name"]
    candidates["suggested_code"] = candidates["predicted"]
    candidates["p_suggested"] = _probability_of_prediction(candidates)
    candidates["disagrees"] = candidates["predicted"].to_numpy() != candidates["label"].to_numpy()
    if state is not None:
        candidates = candidates.loc[~_is_reviewed(candidates)]
    candidates = candidates.sort_values("mislabel_score", ascending=False, kind="stable", na_position="last")
    return candidates if limit is None else candidates.head(limit)


def next_candidate(candidates: pd.DataFrame, after_sample_id: str | None) -> str | None:
    """Return the sample id that follows ``after_sample_id`` in the review queue.

    Parameters
    ----------
    candidates : DataFrame
        Output of :func:`mislabel_candidates`.
    after_sample_id : str or None
        The sample just shown. None, or an id that is no longer in the
        queue, returns the first candidate.

    Returns
    -------
    str or None
        None when the queue is empty or ``after_sample_id`` is the last one.
    """
    # NOTE: an id that left the queue (reviewed, so excluded on the next
    # call) restarts at the top, which also brings back candidates the user
    # skipped earlier.
    ids = candidates["sample_id"].astype(str).tolist()
    if not ids:
        return None
    if after_sample_id is None or str(after_sample_id) not in ids:
        return ids[0]
    position = ids.index(str(after_sample_id))
    return ids[position + 1] if position + 1 < len(ids) else None
