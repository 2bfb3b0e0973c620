"""Ranking page: the samples with the highest and the lowest LSI as thumbnail grids."""

import logging

import streamlit as st

from lsi_app.analysis import highest_and_lowest
from lsi_app.data import ItemError, ItemKind
from lsi_app.ui.state import current_settings, scored_result

logger = logging.getLogger(__name__)

#: Samples shown in each grid, and thumbnails per grid row.
GRID_SIZE = 48
GRID_COLUMNS = 8
#: Text and vector previews need wider cells than thumbnails.
TEXT_COLUMNS = 3


def _caption(row) -> str:
    if row["predicted"] == row["label"]:
        verdict = f"label {row['class_name']}"
    else:
        verdict = f"label {row['class_name']}, pred {row['predicted_name']} ✗"
    # A non-breaking hyphen keeps values such as 2.1e-12 on one line.
    value = f"{row['lsi']:.3g}".replace("-", "\u2011")
    return f"{verdict} · LSI {value}"


def _show_grid(rows, samples) -> None:
    columns_per_row = GRID_COLUMNS if samples.kind is ItemKind.IMAGE else TEXT_COLUMNS
    for start in range(0, len(rows), columns_per_row):
        columns = st.columns(columns_per_row)
        for column, (_, row) in zip(columns, rows.iloc[start : start + columns_per_row].iterrows()):
            _show_item(column, samples, row)


def _show_item(column, samples, row) -> None:
    try:
        preview = samples.reader.thumbnail(int(row["index"]))
    except ItemError as error:
        column.warning(f"{row['sample_id']}: {error}")
        return
    if samples.kind is ItemKind.IMAGE:
        column.image(preview, caption=_caption(row), width="stretch", alt=str(row["sample_id"]))
        return
    box = column.container(border=True)
    box.text(preview)
    box.caption(_caption(row))


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
    model = table.attrs.get("pipeline_settings", {}).get("model_resolved", settings.model)
    st.write(f"Model: **{model}**, posterior: **{settings.hessian}**")
    st.write(f"Prior precision: **{settings.prior_precision}**")
    if result.samples.pseudo_labels:
        st.info(f"Unlabelled data: labels are {result.samples.n_classes} k-means clusters of the features.")

skipped = result.skipped
if len(skipped):
    noun = "item" if len(skipped) == 1 else "items"
    with st.expander(f"{len(skipped)} {noun} skipped while opening the dataset"):
        st.dataframe(skipped, hide_index=True, width="stretch")

metrics = st.columns(4)
metrics[0].metric("Samples", f"{len(table):,}")
metrics[1].metric("Probe accuracy", f"{(table['predicted'] == table['label']).mean():.1%}")
metrics[2].metric("Mean LSI (nats)", f"{table['lsi'].mean():.3g}")
metrics[3].metric("Median LSI (nats)", f"{table['lsi'].median():.3g}")

shown = min(GRID_SIZE, len(table))
highest, lowest = highest_and_lowest(table, shown)
st.subheader(f"Highest LSI: the {shown} most informative samples")
_show_grid(highest, result.samples)
st.subheader(f"Lowest LSI: the {shown} most redundant samples")
_show_grid(lowest, result.samples)
