"""Settings and cached results shared by the dashboard pages."""

from __future__ import annotations

import logging
import os

import streamlit as st

from lsi_app.pipeline import (
    CLUSTERS_VARIABLE,
    DATASET_VARIABLE,
    LABELS_VARIABLE,
    MODEL_VARIABLE,
    PipelineResult,
    PipelineSettings,
    load_cached,
    run_pipeline,
)

logger = logging.getLogger(__name__)

#: Distinct settings whose results stay in memory; each digits result is well under 1 MB.
MAX_CACHED_RESULTS = 8


class ResultNotComputed(LookupError):
    """No stored result exists yet for the requested settings."""


def current_settings() -> PipelineSettings:
    """Return the settings chosen on the command line (``lsi-app run``), else the defaults."""
    clusters = os.environ.get(CLUSTERS_VARIABLE, "0")
    return PipelineSettings(
        dataset=os.environ.get(DATASET_VARIABLE, "digits"),
        model=os.environ.get(MODEL_VARIABLE, "auto"),
        labels=os.environ.get(LABELS_VARIABLE) or None,
        clusters=int(clusters) if clusters.isdigit() else 0,
    )


@st.cache_data(max_entries=MAX_CACHED_RESULTS, show_spinner=False)
def _stored_result(settings: PipelineSettings) -> PipelineResult:
    # Exceptions are not cached, so a miss is retried on the next rerun.
    result = load_cached(settings)
    if result is None:
        raise ResultNotComputed(settings)
    return result


def scored_result(settings: PipelineSettings) -> PipelineResult:
    """Return the scored dataset, computing it under a progress bar on first use."""
    try:
        return _stored_result(settings)
    except ResultNotComputed:
        pass
    bar = st.progress(0.0, text="Starting")
    run_pipeline(settings, progress=lambda fraction, message: bar.progress(fraction, text=message))
    bar.empty()
    return _stored_result(settings)
