"""Gallery queries: merge curation state into the score table, filter, sort and paginate.

Every function works on the table of :func:`lsi_app.analysis.tables.build_sample_table`
and uses vectorised pandas operations without per-row Python, because the
dashboard reruns a query on every widget change.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Rows per gallery page offered to the user. Each is a multiple of 3, 4, 6
#: and 8, the thumbnail counts per grid row, so full pages fill whole rows.
PAGE_SIZES = (24, 48, 96, 192)

#: Curation columns added by :func:`merge_curation`, in this order.
CURATION_COLUMNS = ("flagged", "flag_reason", "relabel", "note", "review")

#: Score columns listed first by :func:`sortable_columns`, in this order.
PREFERRED_SCORE_COLUMNS = ("lsi", "mislabel_score", "loss", "p_label", "margin")

#: Numeric columns that are codes or positions, not scores, so sorting or
#: filtering by them is never offered.
NON_SCORE_COLUMNS = frozenset({"index", "label", "predicted"})


class FlagState(str, Enum):
    """Curation state that gallery rows must have."""

    ALL = "all"
    FLAGGED = "flagged"
    UNFLAGGED = "unflagged"
    RELABELLED = "relabelled"
    NOTED = "noted"


@dataclass(frozen=True)
class GalleryQuery:
    """Filters and sort order of one gallery view.

    Attributes
    ----------
    sort_by : str, default="lsi"
        Numeric column to sort by (see :func:`sortable_columns`).
    descending : bool, default=True
    classes : tuple of str, default=()
        Given class names to keep; empty keeps every class.
    predicted : tuple of str, default=()
        Predicted class names to keep; empty keeps every prediction.
    flag_state : FlagState, default=FlagState.ALL
    score_column : str, default="lsi"
        Numeric column that ``score_min`` and ``score_max`` bound.
    score_min, score_max : float or None, default=None
        Inclusive bounds; None leaves that side open. Rows whose score is
        NaN are dropped as soon as either bound is set.
    search : str, default=""
        Case-insensitive plain-text substring of the sample id or the path.
    sample_ids : tuple of str or None, default=None
        Explicit selection, for example from the embedding map. None keeps
        every row, and an empty tuple keeps none.
    """

    sort_by: str = "lsi"
    descending: bool = True
    classes: tuple[str, ...] = ()
    predicted: tuple[str, ...] = ()
    flag_state: FlagState = FlagState.ALL
    score_column: str = "lsi"
    score_min: float | None = None
    score_max: float | None = None
    search: str = ""
    sample_ids: tuple[str, ...] | None = None


def merge_curation(table: pd.DataFrame, state: pd.DataFrame | None) -> pd.DataFrame:
    """Left-join curation state onto the score table by ``sample_id``.

    Parameters
    ----------
    table : DataFrame
        Score table with a ``sample_id`` column.
    state : DataFrame or None
        Curation store rows with columns ``sample_id``, ``flagged``,
        ``flag_reason``, ``relabel``, ``note`` and ``review``; missing
        columns count as absent state. When a sample id occurs more than
        once, the last row wins (the latest row if ``updated_at`` exists).

    Returns
    -------
    DataFrame
        A copy of ``table`` with the same rows in the same order, plus
        ``flagged`` (bool, False when absent), ``flag_reason`` and ``note``
        (str, "" when absent), ``relabel`` and ``review`` (str or None).
        Existing columns of these names are replaced.
    """
    if "sample_id" not in table.columns:
        raise ValueError("the score table has no 'sample_id' column; build it with build_sample_table")
    merged = table.copy()
    if state is None or len(state) == 0:
        state = pd.DataFrame(columns=["sample_id", *CURATION_COLUMNS])
    if "sample_id" not in state.columns:
        raise ValueError(f"the curation state has no 'sample_id' column (columns: {list(state.columns)})")

    if "updated_at" in state.columns:
        state = state.sort_values("updated_at", kind="stable", na_position="first")
    state = state.drop_duplicates("sample_id", keep="last")
    keys = state["sample_id"].astype(str)
    aligned = state.set_index(keys).reindex(merged["sample_id"].astype(str).to_numpy())

    def column(name: str) -> pd.Series:
        if name in aligned.columns:
            return aligned[name]
        return pd.Series(np.full(len(aligned), None, dtype=object), index=aligned.index)

    merged["flagged"] = as_flag_array(column("flagged"))
    for name in ("flag_reason", "note"):
        merged[name] = column(name).astype(object).where(column(name).notna(), "").to_numpy()
    for name in ("relabel", "review"):
        # Object dtype keeps None, because pandas >= 3 would infer a string column with NaN.
        values = column(name).astype(object).where(column(name).notna(), None).to_numpy()
        merged[name] = pd.Series(values, index=merged.index, dtype=object)
    return merged


def as_flag_array(values: pd.Series) -> np.ndarray:
    """Convert flags (bool, 0/1 or missing) to a bool ndarray of shape (n_samples,), False where missing."""
    raw = values.to_numpy(dtype=object)
    present = pd.notna(raw)
    flags = np.zeros(len(raw), dtype=bool)
    flags[present] = raw[present].astype(bool)
    return flags


def sortable_columns(table: pd.DataFrame) -> list[str]:
    """List the numeric score columns that galleries can sort and filter by.

    The columns of :data:`PREFERRED_SCORE_COLUMNS` come first, then every
    other numeric column in table order. Boolean columns and the codes in
    :data:`NON_SCORE_COLUMNS` are left out.
    """
    numeric = [
        name
        for name in table.columns
        if name not in NON_SCORE_COLUMNS
        and pd.api.types.is_numeric_dtype(table[name])
        and not pd.api.types.is_bool_dtype(table[name])
    ]
    preferred = [name for name in PREFERRED_SCORE_COLUMNS if name in numeric]
    return preferred + [name for name in numeric if name not in preferred]


def _validate_query(table: pd.DataFrame, query: GalleryQuery) -> FlagState:
    options = sortable_columns(table)
    for role, name in (("sort column", query.sort_by), ("score column", query.score_column)):
        if name not in options:
            raise ValueError(f"unknown {role} {name!r}; choose one of the numeric columns {options}")
    for role, bound in (("score_min", query.score_min), ("score_max", query.score_max)):
        if bound is not None and math.isnan(bound):
            raise ValueError(f"{role} is NaN; pass a number or None for an open bound")
    if query.score_min is not None and query.score_max is not None and query.score_min > query.score_max:
        raise ValueError(f"score_min {query.score_min} is greater than score_max {query.score_max}; swap them")
    try:
        return FlagState(query.flag_state)
    except ValueError:
        choices = [state.value for state in FlagState]
        raise ValueError(f"unknown flag state {query.flag_state!r}; choose one of {choices}") from None


def _text_column(table: pd.DataFrame, name: str) -> pd.Series:
    """Return a string column, or empty strings when the table has no such column."""
    if name not in table.columns:
        return pd.Series("", index=table.index, dtype=object)
    values = table[name]
    return values.astype(object).where(values.notna(), "")


def _isin_text(values: pd.Series, allowed) -> np.ndarray:
    """Test which values, compared as text, are in ``allowed``.

    Both sides become object arrays, because pandas' string dtype was about
    20 times slower for 50,000 values and 20,000 allowed ids (pandas 3.1).
    """
    haystack = pd.Series(values.astype(str).to_numpy(dtype=object), dtype=object)
    return haystack.isin(np.array([str(item) for item in allowed], dtype=object)).to_numpy()


def _contains_text(values: pd.Series, text: str) -> np.ndarray:
    """Test which values contain ``text``, ignoring case; missing values never match."""
    # pandas 2 turns missing values into "nan" in astype(str), hence the notna test.
    found = values.astype(str).str.contains(text, case=False, regex=False, na=False).to_numpy(dtype=bool)
    return found & values.notna().to_numpy()


def _flag_mask(table: pd.DataFrame, flag_state: FlagState) -> np.ndarray:
    # Without merged curation state no row is flagged, relabelled or noted.
    if flag_state is FlagState.ALL:
        return np.ones(len(table), dtype=bool)
    if flag_state in (FlagState.FLAGGED, FlagState.UNFLAGGED):
        if "flagged" in table.columns:
            flagged = as_flag_array(table["flagged"])
        else:
            flagged = np.zeros(len(table), dtype=bool)
        return flagged if flag_state is FlagState.FLAGGED else ~flagged
    column = "relabel" if flag_state is FlagState.RELABELLED else "note"
    return (_text_column(table, column).astype(str).str.strip() != "").to_numpy()


def _query_mask(table: pd.DataFrame, query: GalleryQuery, flag_state: FlagState) -> np.ndarray:
    # A writable copy, because pandas >= 3 hands out read-only views from to_numpy().
    mask = np.array(_flag_mask(table, flag_state), dtype=bool)
    if query.classes:
        mask &= _isin_text(table["class_name"], query.classes)
    if query.predicted:
        mask &= _isin_text(table["predicted_name"], query.predicted)
    if query.score_min is not None or query.score_max is not None:
        scores = table[query.score_column].to_numpy(dtype=np.float64)
        # NaN compares False, so rows without a score fall out of any range.
        in_range = ~np.isnan(scores)
        if query.score_min is not None:
            in_range &= scores >= query.score_min
        if query.score_max is not None:
            in_range &= scores <= query.score_max
        mask &= in_range
    search = query.search.strip()
    if search:
        found = _contains_text(table["sample_id"], search)
        if "path" in table.columns:
            found |= _contains_text(table["path"], search)
        mask &= found
    if query.sample_ids is not None:
        mask &= _isin_text(table["sample_id"], query.sample_ids)
    return mask


def query_gallery(table: pd.DataFrame, query: GalleryQuery) -> pd.DataFrame:
    """Filter and sort the score table for one gallery view.

    Parameters
    ----------
    table : DataFrame
        Score table, usually after :func:`merge_curation`. Without the
        curation columns no row counts as flagged, relabelled or noted.
    query : GalleryQuery

    Returns
    -------
    DataFrame
        The rows that pass every filter, sorted by ``query.sort_by``. The
        sort is stable, so ties keep table order, and NaN scores come last
        in both directions. The index labels of ``table`` are kept.

    Raises
    ------
    ValueError
        If ``sort_by`` or ``score_column`` is not a numeric column, the
        bounds are NaN or reversed, or ``flag_state`` is unknown.
    """
    flag_state = _validate_query(table, query)
    rows = table.loc[_query_mask(table, query, flag_state)]
    return rows.sort_values(query.sort_by, ascending=not query.descending, kind="stable", na_position="last")


def paginate(rows: pd.DataFrame, page: int, page_size: int) -> tuple[pd.DataFrame, int]:
    """Cut one page out of the gallery rows.

    Parameters
    ----------
    rows : DataFrame
    page : int
        1-based page number; values outside ``1..n_pages`` are clamped.
    page_size : int
        Rows per page, >= 1 (see :data:`PAGE_SIZES`).

    Returns
    -------
    page_rows : DataFrame
    n_pages : int
        Number of pages, >= 1 even when ``rows`` is empty.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, (int, np.integer)) or page_size < 1:
        raise ValueError(f"page_size must be an integer >= 1, got {page_size!r}")
    n_pages = max(1, math.ceil(len(rows) / page_size))
    page = min(max(int(page), 1), n_pages)
    start = (page - 1) * page_size
    return rows.iloc[start : start + page_size], n_pages
