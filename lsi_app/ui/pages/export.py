"""Export page: the curated subset (all minus flagged, relabels applied) as files or a zip."""

from datetime import datetime, timezone
from pathlib import Path

import streamlit as st

from lsi_app.analysis.export import ExportFormat, build_zip, curated_subset, write_export
from lsi_app.store import workspace_dir
from lsi_app.ui.state import curation_state, curation_store, require_result
from lsi_app.ui.widgets import escape_markdown

FORMAT_LABELS = {
    "CSV": ExportFormat.CSV,
    "Parquet": ExportFormat.PARQUET,
    "JSON manifest": ExportFormat.JSON,
    "ImageFolder copy": ExportFormat.IMAGEFOLDER,
}
ZIP_KEY = "export_zip"

st.title("Export")
st.caption(
    "The curated subset is every sample minus the flagged ones and those marked mislabeled, with relabels "
    "applied. Every export includes the scores, the label mapping and the curation history."
)
result = require_result()
state = curation_state(result)
history = curation_store().history(result.samples.fingerprint)

with st.container(border=True):
    columns = st.columns(3)
    top_k = columns[0].number_input("Keep the top k per class by LSI (0 = all)", min_value=0, value=0, step=1, key="export-top-k")
    bottom_k = columns[1].number_input("Keep the bottom k per class by LSI (0 = all)", min_value=0, value=0, step=1, key="export-bottom-k")
    budget = columns[2].number_input("LSI budget in nats (0 = none)", min_value=0.0, value=0.0, format="%g", key="export-budget")

try:
    subset = curated_subset(
        result.table,
        state,
        top_k=int(top_k) or None,
        bottom_k=int(bottom_k) or None,
        lsi_budget=float(budget) or None,
    )
except ValueError as error:
    st.error(escape_markdown(str(error)))
    st.stop()

st.write(f"{len(subset):,} of {len(result.table):,} samples in the curated subset; {len(history):,} curation actions.")
st.dataframe(subset.head(200), hide_index=True, width="stretch")

settings = {
    "pipeline": result.table.attrs.get("pipeline_settings", {}),
    "lsi": {key: value for key, value in result.table.attrs.get("lsi_settings", {}).items() if key != "self_check"},
    "dataset_fingerprint": result.samples.fingerprint,
    "selection": {"top_k": int(top_k), "bottom_k": int(bottom_k), "lsi_budget": float(budget)},
}
label_mapping = result.table.attrs.get("label_mapping", {})

st.subheader("Write to a folder")
has_paths = "path" in subset.columns
choices = [label for label, fmt in FORMAT_LABELS.items() if fmt is not ExportFormat.IMAGEFOLDER or has_paths]
chosen = st.radio("Format", choices, horizontal=True, key="export-format")
stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
default_folder = workspace_dir() / "exports" / f"{Path(result.samples.name).name or 'dataset'}-{stamp}"
folder = st.text_input("Destination folder (must be empty or new)", value=str(default_folder), key="export-folder")
if st.button("Export", type="primary", key="export-write"):
    try:
        written = write_export(
            subset, FORMAT_LABELS[chosen], Path(folder).expanduser(),
            label_mapping=label_mapping, history=history, settings=settings,
        )
    except (ValueError, OSError) as error:
        st.error(escape_markdown(f"Export failed: {error}"))
    else:
        st.success(escape_markdown(f"Wrote {len(written)} files to {folder}"))
        st.text("\n".join(str(path) for path in written[:20]) + ("\n…" if len(written) > 20 else ""))

st.subheader("Download a zip")
include_files = st.checkbox("Include the image files", value=False, disabled=not has_paths, key="export-include-files")
if st.button("Build zip", key="export-zip"):
    try:
        st.session_state[ZIP_KEY] = build_zip(
            subset, label_mapping=label_mapping, history=history, settings=settings, include_files=include_files
        )
    except (ValueError, OSError) as error:
        st.error(escape_markdown(f"Could not build the zip: {error}"))
if ZIP_KEY in st.session_state:
    st.download_button(
        "Download curated subset (.zip)",
        data=st.session_state[ZIP_KEY],
        file_name=f"curated-{stamp}.zip",
        mime="application/zip",
    )
