"""Ranking page: the samples with the highest and the lowest LSI as thumbnail grids."""

import logging

import streamlit as st

from lsi_app.analysis import highest_and_lowest, thumbnail
from lsi_app.ui.state import current_settings, scored_result

logger = logging.getLogger(__name__)

#: Samples shown in each grid, and thumbnails per grid row.
GRID_SIZE = 48
GRID_COLUMNS = 8


def _caption(row) -> str:
    if row["predicted"] == row["label"]:
        verdict = f"label {row['class_name']}"
    else:
        verdict = f"label {row['class_name']}, pred {row['predicted_name']} ✗"
    # A non-breaking hyphen keeps values such as 2.1e-12 on one line.
    value = f"{row['lsi']:.3g}".replace("-", "\u2011")
    return f"{verdict} · LSI {value}"


def _show_grid(rows, images) -> None:
    for start in range(0, len(rows), GRID_COLUMNS):
        columns = st.columns(GRID_COLUMNS)
        for column, (_, row) in zip(columns, rows.iloc[start : start + GRID_COLUMNS].iterrows()):
            column.image(
                thumbnail(images[int(row["index"])]),
                caption=_caption(row),
                width="stretch",
                alt=str(row["sample_id"]),
            )


settings = current_settings()
st.title("Laplace Sample Information")
st.caption(
    "LSI is the KL divergence, in nats, between the probe's posterior fit on all samples and the "
    "one fit without a sample. High LSI marks atypical or mislabeled samples; low LSI marks "
    "typical, redundant ones."
)

try:
    result = scored_result(settings)
except ValueError as error:
    st.error(f"Could not score dataset {settings.dataset!r}: {error}")
    st.stop()
except Exception:  # noqa: BLE001 - the page shows a message, the log keeps the traceback
    logger.exception("scoring dataset %r failed", settings.dataset)
    st.error(
        f"Scoring dataset {settings.dataset!r} failed unexpectedly. The server log has the details; "
        "please report them."
    )
    st.stop()

table = result.table
with st.sidebar:
    st.subheader("Run")
    st.write(f"Dataset: **{settings.dataset}** ({len(table)} samples, {result.samples.n_classes} classes)")
    st.write(f"Model: **{settings.model}**, posterior: **{settings.hessian}**")
    st.write(f"Prior precision: **{settings.prior_precision:g}**")

metrics = st.columns(4)
metrics[0].metric("Samples", f"{len(table):,}")
metrics[1].metric("Probe accuracy", f"{(table['predicted'] == table['label']).mean():.1%}")
metrics[2].metric("Mean LSI (nats)", f"{table['lsi'].mean():.3g}")
metrics[3].metric("Median LSI (nats)", f"{table['lsi'].median():.3g}")

highest, lowest = highest_and_lowest(table, GRID_SIZE)
images = result.samples.images
st.subheader(f"Highest LSI: the {GRID_SIZE} most informative samples")
_show_grid(highest, images)
st.subheader(f"Lowest LSI: the {GRID_SIZE} most redundant samples")
_show_grid(lowest, images)
