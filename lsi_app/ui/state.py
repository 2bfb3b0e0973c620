"""Session settings, cached results and curation access shared by the dashboard pages.

Pages call :func:`require_result` for the scored dataset and
:func:`curation_state` / :func:`curate` for flags. Logic lives in
``lsi_app.analysis`` and ``lsi_app.store``; this module only connects it to
Streamlit's session and caches.
"""

from __future__ import annotations

import logging
import os
import uuid

import numpy as np
import pandas as pd
import streamlit as st

from lsi_app.analysis.gallery import merge_curation
from lsi_app.pipeline import (
    CLUSTERS_VARIABLE,
    DATASET_VARIABLE,
    LABELS_VARIABLE,
    MODEL_VARIABLE,
    PipelineResult,
    PipelineSettings,
    run_pipeline,
)
from lsi_app.store import CurationAction, CurationStore, ProbeCache, workspace_dir
from lsi_app.ui.widgets import escape_markdown

logger = logging.getLogger(__name__)

#: Distinct settings whose results stay in memory. A 50,000-sample result
#: with 512 features and its map takes about 120 MB.
MAX_CACHED_RESULTS = 4

#: Exact refits the dashboard runs for the self-check figure on the overview page.
DASHBOARD_SELF_CHECK = 20

SETTINGS_KEY = "pipeline_settings"
SELECTION_KEY = "map_selection"
DETAIL_KEY = "detail_sample"


def default_settings() -> PipelineSettings:
    """Return the settings chosen on the command line (``lsi-app run``), else the defaults."""
    clusters = os.environ.get(CLUSTERS_VARIABLE, "0")
    return PipelineSettings(
        dataset=os.environ.get(DATASET_VARIABLE, "digits"),
        model=os.environ.get(MODEL_VARIABLE, "auto"),
        labels=os.environ.get(LABELS_VARIABLE) or None,
        clusters=int(clusters) if clusters.isdigit() else 0,
        self_check=DASHBOARD_SELF_CHECK,
    )


def current_settings() -> PipelineSettings:
    """Return this session's settings, starting from :func:`default_settings`."""
    if SETTINGS_KEY not in st.session_state:
        st.session_state[SETTINGS_KEY] = default_settings()
    return st.session_state[SETTINGS_KEY]


def actor() -> str:
    """Return an id of this browser session, recorded with each curation action."""
    return st.session_state.setdefault("actor", uuid.uuid4().hex[:8])


@st.cache_resource(max_entries=MAX_CACHED_RESULTS, show_spinner=False)
def _cached_result(settings: PipelineSettings, workspace: str) -> PipelineResult:
    # A resource is shared, not copied, across sessions: pages must not mutate it.
    bar = st.progress(0.0, text="Starting")
    try:
        return run_pipeline(
            settings,
            workspace=workspace,
            dashboard=True,
            progress=lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message),
        )
    finally:
        bar.empty()


def require_result() -> PipelineResult:
    """Return the scored dataset for this session's settings, or show an error and stop the page."""
    settings = current_settings()
    try:
        return _cached_result(settings, str(workspace_dir()))
    except ValueError as error:
        st.error(escape_markdown(f"Could not score dataset {settings.dataset!r}: {error}"))
    except Exception:  # noqa: BLE001 - the page shows a message, the log keeps the traceback
        logger.exception("scoring dataset %r failed", settings.dataset)
        st.error(
            escape_markdown(
                f"Scoring dataset {settings.dataset!r} failed unexpectedly. The server log has the details; "
                "please report them."
            )
        )
    st.stop()


def curation_store() -> CurationStore:
    return CurationStore(workspace_dir() / "curation.sqlite")


def curation_state(result: PipelineResult) -> pd.DataFrame:
    """Return the current flags, relabels, notes and reviews of the result's dataset."""
    return curation_store().state(result.samples.fingerprint)


def curated_table(result: PipelineResult) -> pd.DataFrame:
    """Return the score table joined with the current curation state (a new frame)."""
    return merge_curation(result.table, curation_state(result))


def curate(result: PipelineResult, sample_ids, action: CurationAction, value=None) -> None:
    """Record one curation action on one or more samples."""
    ids = [sample_ids] if isinstance(sample_ids, str) else list(sample_ids)
    store = curation_store()
    if len(ids) == 1:
        _apply_one(store, result.samples.fingerprint, ids[0], action, value)
    else:
        store.apply_many(result.samples.fingerprint, ids, action, value, actor=actor())
    logger.info("curation %s %s on %d samples of %s", action.value, value, len(ids), result.samples.name)


def _apply_one(store: CurationStore, dataset: str, sample_id: str, action: CurationAction, value) -> None:
    if action is CurationAction.FLAG:
        store.flag(dataset, sample_id, reason=value or "flagged", actor=actor())
    elif action is CurationAction.UNFLAG:
        store.unflag(dataset, sample_id, actor=actor())
    elif action is CurationAction.RELABEL:
        store.relabel(dataset, sample_id, value, actor=actor())
    elif action is CurationAction.NOTE:
        store.note(dataset, sample_id, value or "", actor=actor())
    else:
        store.review(dataset, sample_id, value, actor=actor())


def undo_last(result: PipelineResult) -> dict | None:
    """Undo this session's most recent curation action; return what was undone."""
    return curation_store().undo(result.samples.fingerprint, actor=actor())


def probe_weights(result: PipelineResult) -> np.ndarray | None:
    """Return the probe's MAP weights of the result, or None when the cache no longer has them."""
    key = result.table.attrs.get("probe_key")
    if not key:
        return None
    probes = ProbeCache(workspace_dir())
    return np.asarray(probes.load(key)[0]) if probes.has(key) else None
