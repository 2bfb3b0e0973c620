"""Mislabeled page: review candidates ranked by mislabel score, one keystroke per decision."""

import pandas as pd
import streamlit as st

from lsi_app.analysis.review import mislabel_candidates
from lsi_app.store import CurationAction
from lsi_app.ui.state import curate, curation_state, curation_store, require_result, undo_last
from lsi_app.ui.widgets import escape_markdown, format_lsi, show_large_item

#: Candidates listed below the one under review.
QUEUE_PREVIEW = 20
SKIPPED_KEY = "mislabel_skipped"

st.title("Mislabeled candidates")
st.caption(
    "Ranked by mislabel score (LSI times the loss of the given label; higher = more likely mislabeled). "
    "Keys: a = accept the suggested label, m = mark mislabeled (left out of exports), k = keep as is, "
    "s = skip for now, u = undo."
)
result = require_result()
skipped = st.session_state.setdefault(SKIPPED_KEY, set())
candidates = mislabel_candidates(result.table, curation_state(result))
disagreeing_only = st.toggle(
    "Only samples whose label the probe disagrees with",
    value=True,
    key="review-disagreeing",
    help="Off: every sample in mislabel-score order, including those the probe agrees with.",
)
if disagreeing_only:
    candidates = candidates[candidates["disagrees"]]
queue = candidates[~candidates["sample_id"].astype(str).isin(skipped)]

reviewed = curation_store().counts(result.samples.fingerprint)["reviewed"]
st.write(f"{len(queue):,} candidates to review · {reviewed:,} reviewed · {len(skipped):,} skipped in this session")

if queue.empty:
    st.success("No candidates left to review.")
    if skipped and st.button("Show skipped candidates again"):
        skipped.clear()
        st.rerun()
    st.stop()

row = queue.iloc[0]
sample_id = str(row["sample_id"])
left, right = st.columns([3, 2])
with left:
    show_large_item(result.samples, int(row["index"]))
    st.text(f"id: {sample_id}")
with right:
    st.metric("Mislabel score", f"{row['mislabel_score']:.3g}")
    st.text(
        f"given label: {row['class_name']}\n"
        f"suggested:   {row['suggested_label']} (p = {row['p_suggested']:.2f})\n"
        f"LSI: {format_lsi(row['lsi'])} nats · loss {row['loss']:.3g}"
    )
    same = row["suggested_label"] == row["class_name"]
    if st.button(
        f"Accept label {row['suggested_label']}", shortcut="a", type="primary", disabled=bool(same), width="stretch", key="review-accept"
    ):
        curate(result, sample_id, CurationAction.RELABEL, row["suggested_label"])
        st.rerun()
    if st.button("Mark mislabeled", shortcut="m", width="stretch", key="review-mislabeled"):
        curate(result, sample_id, CurationAction.REVIEW, "mislabeled")
        st.rerun()
    if st.button("Keep", shortcut="k", width="stretch", key="review-keep"):
        curate(result, sample_id, CurationAction.REVIEW, "kept")
        st.rerun()
    if st.button("Skip", shortcut="s", width="stretch", key="review-skip"):
        skipped.add(sample_id)
        st.rerun()
    if st.button("Undo", shortcut="u", width="stretch", key="review-undo"):
        undone = undo_last(result)
        st.toast(escape_markdown(f"Undid {undone['action']} of {undone['sample_id']}") if undone else "Nothing to undo")
        st.rerun()

st.subheader("Next in the queue")
preview = queue.iloc[1 : 1 + QUEUE_PREVIEW]
st.dataframe(
    pd.DataFrame(
        {
            "sample": preview["sample_id"].astype(str),
            "label": preview["class_name"].astype(str),
            "suggested": preview["suggested_label"].astype(str),
            "mislabel score": preview["mislabel_score"],
            "LSI": preview["lsi"],
        }
    ),
    hide_index=True,
    width="stretch",
)
