"""Gallery page: every sample as a thumbnail grid, sorted and filtered, with flags and a detail view."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lsi_app.analysis.gallery import PAGE_SIZES, FlagState, GalleryQuery, paginate, query_gallery, sortable_columns
from lsi_app.analysis.neighbors import nearest_neighbors
from lsi_app.data import ItemKind
from lsi_app.store import CurationAction
from lsi_app.store.curation import NOTE_MAX_CHARS
from lsi_app.ui.state import (
    DETAIL_KEY,
    SELECTION_KEY,
    curate,
    curated_table,
    probe_weights,
    require_result,
    undo_last,
)
from lsi_app.ui.widgets import escape_markdown, format_lsi, item_caption, show_item, show_large_item

#: Thumbnails per grid row for images, and previews per row for text.
IMAGE_COLUMNS = 6
TEXT_COLUMNS = 3
#: Nearest neighbours shown in the detail view.
NEIGHBOURS = 6
#: Classes shown in the detail view's probability bars.
TOP_PROBABILITIES = 5

st.title("Gallery")
result = require_result()
samples = result.samples
table = curated_table(result)
class_names = list(samples.class_names)


def _toggle_flag(sample_id: str, key: str) -> None:
    action = CurationAction.FLAG if st.session_state[key] else CurationAction.UNFLAG
    curate(result, sample_id, action)


def _probabilities(position: int) -> pd.Series | None:
    weights = probe_weights(result)
    if weights is None or result.features is None:
        return None
    row = np.append(result.features[position], 1.0) if weights.shape[1] == result.features.shape[1] + 1 else result.features[position]
    logits = weights @ row
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    return pd.Series(probabilities, index=class_names).sort_values(ascending=False).head(TOP_PROBABILITIES)


def _close_detail() -> None:
    st.session_state.pop(DETAIL_KEY, None)


# The dialog stays open across reruns until dismissed, so it shows each action's result.
@st.dialog("Sample", width="large", on_dismiss=_close_detail)
def _detail(sample_id: str) -> None:
    rows = table[table["sample_id"] == sample_id]
    if rows.empty:
        st.warning("This sample is no longer in the table.")
        return
    row = rows.iloc[0]
    position = int(row["index"])
    left, right = st.columns([3, 2])
    with left:
        show_large_item(samples, position)
        st.text(f"id: {sample_id}")
        if "path" in row and isinstance(row["path"], str):
            st.text(f"path: {row['path']}")
    with right:
        st.metric("LSI (nats)", format_lsi(row["lsi"]))
        st.text(f"label: {row['class_name']}\npredicted: {row['predicted_name']}")
        st.text(f"mislabel score: {row['mislabel_score']:.3g}\nloss: {row['loss']:.3g}\nmargin: {row['margin']:.3g}")
        probabilities = _probabilities(position)
        if probabilities is not None:
            bars = go.Figure(go.Bar(x=probabilities.to_numpy(), y=probabilities.index.astype(str), orientation="h"))
            bars.update_layout(
                height=200, margin=dict(l=10, r=10, t=10, b=10), xaxis_range=[0, 1], yaxis_autorange="reversed",
                xaxis_title="probe probability",
            )
            st.plotly_chart(bars, width="stretch")
        flagged = bool(row["flagged"])
        if st.button("Unflag" if flagged else "Flag", key="detail-flag", type="primary"):
            curate(result, sample_id, CurationAction.UNFLAG if flagged else CurationAction.FLAG)
            st.rerun()
        current = row["relabel"] if isinstance(row["relabel"], str) else row["class_name"]
        new_label = st.selectbox(
            "Label", class_names, index=class_names.index(current) if current in class_names else 0, key="detail-label"
        )
        if st.button("Apply label", key="detail-relabel"):
            curate(result, sample_id, CurationAction.RELABEL, None if new_label == row["class_name"] else new_label)
            st.rerun()
        note = st.text_area("Note", value=row["note"] or "", max_chars=NOTE_MAX_CHARS, key="detail-note-text")
        if st.button("Save note", key="detail-note"):
            curate(result, sample_id, CurationAction.NOTE, note)
            st.rerun()
    if result.features is not None and len(table) > 1:
        st.subheader("Nearest neighbours in feature space")
        neighbours, distances = nearest_neighbors(result.features, position, k=NEIGHBOURS)
        columns = st.columns(NEIGHBOURS)
        by_position = table.set_index("index")
        for column, neighbour, distance in zip(columns, neighbours, distances):
            neighbour_row = by_position.loc[int(neighbour)]
            show_item(
                column, samples, int(neighbour), f"{neighbour_row['class_name']} · d {distance:.2f}",
                alt=str(neighbour_row["sample_id"]),
            )


# Filters and sort order.
scores = sortable_columns(table)
with st.container(border=True):
    first = st.columns([2, 1, 2, 2, 2])
    sort_by = first[0].selectbox("Sort by", scores, index=scores.index("lsi"), key="gallery-sort")
    descending = first[1].radio("Order", ["high first", "low first"], key="gallery-order") == "high first"
    classes = first[2].multiselect("Label", class_names, key="gallery-classes")
    predicted = first[3].multiselect("Predicted", class_names, key="gallery-predicted")
    flag_state = first[4].selectbox("Curation", [state.value for state in FlagState], key="gallery-curation")
    second = st.columns([2, 3, 3, 1])
    score_column = second[0].selectbox("Score range of", scores, index=scores.index("lsi"), key="gallery-score-column")
    values = table[score_column].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if high > low:
        score_min, score_max = second[1].slider("Range", low, high, (low, high), format="%.3g", key=f"gallery-range-{score_column}")
    else:
        score_min, score_max = low, high
        second[1].text(f"all values are {low:.3g}")
    search = second[2].text_input("Search id or path", placeholder="e.g. cat/00", key="gallery-search")
    page_size = second[3].selectbox("Per page", PAGE_SIZES, index=1, key="gallery-page-size")

selection = st.session_state.get(SELECTION_KEY)
if selection is not None:
    note, clear = st.columns([4, 1])
    note.info(f"Showing the {len(selection)} samples selected on the map.")
    if clear.button("Clear map selection"):
        st.session_state.pop(SELECTION_KEY)
        st.rerun()

query = GalleryQuery(
    sort_by=sort_by,
    descending=descending,
    classes=tuple(classes),
    predicted=tuple(predicted),
    flag_state=FlagState(flag_state),
    score_column=score_column,
    score_min=score_min if score_min > low else None,
    score_max=score_max if score_max < high else None,
    search=search,
    sample_ids=tuple(selection) if selection is not None else None,
)
rows = query_gallery(table, query)
n_pages = max(1, -(-len(rows) // page_size))
header = st.columns([3, 1, 1, 1])
page = header[1].number_input("Page", min_value=1, max_value=n_pages, value=1, step=1, key="gallery-page")
page_rows, n_pages = paginate(rows, int(page), page_size)
header[0].write(f"{len(rows):,} of {len(table):,} samples · page {int(page)} of {n_pages}")
if header[2].button("Flag this page", disabled=page_rows.empty, key="gallery-flag-page"):
    curate(result, page_rows["sample_id"].tolist(), CurationAction.FLAG)
    st.rerun()
if header[3].button("Undo last action", key="gallery-undo"):
    undone = undo_last(result)
    st.toast(escape_markdown(f"Undid {undone['action']} of {undone['sample_id']}") if undone else "Nothing to undo")
    st.rerun()

per_row = IMAGE_COLUMNS if samples.kind is ItemKind.IMAGE else TEXT_COLUMNS
for start in range(0, len(page_rows), per_row):
    columns = st.columns(per_row)
    for column, (_, row) in zip(columns, page_rows.iloc[start : start + per_row].iterrows()):
        sample_id = str(row["sample_id"])
        show_item(column, samples, int(row["index"]), item_caption(row), alt=sample_id)
        key = f"flag-{sample_id}"
        st.session_state[key] = bool(row["flagged"])
        controls = column.columns(2)
        controls[0].checkbox("Flag", key=key, on_change=_toggle_flag, args=(sample_id, key))
        if controls[1].button("Details", key=f"detail-{sample_id}"):
            st.session_state[DETAIL_KEY] = sample_id

if st.session_state.get(DETAIL_KEY):
    _detail(st.session_state[DETAIL_KEY])

if page_rows.empty:
    st.write("No sample matches these filters.")
