"""Embedding page: a UMAP map of the features; a box or lasso selection filters the gallery."""

import streamlit as st

from lsi_app.analysis.embedding import embedding_figure, ids_from_selection
from lsi_app.ui.state import SELECTION_KEY, curated_table, require_result
from lsi_app.ui.widgets import item_caption, show_item

COLOUR_CHOICES = {"LSI": "lsi", "class": "class_name", "flag state": "flagged", "mislabel score": "mislabel_score"}
#: Figures kept in memory (results times colourings).
MAX_CACHED_FIGURES = 16
#: Selected samples previewed under the map.
PREVIEW_SIZE = 12



@st.cache_data(max_entries=MAX_CACHED_FIGURES, show_spinner=False)
def _score_figure(result_key: str, _table, _coords, colour_column: str):
    # Building 50,000 WebGL points takes most of a second; colourings that do not
    # depend on curation state are cached per result.
    return embedding_figure(_table, _coords, color_by=colour_column)


st.title("Embedding map")
st.caption(
    "UMAP of the probe's input features (seeded, so the map is the same on every run). Points are "
    "sized by LSI; hovering shows a point's id, label and LSI. Drag a box or a lasso to select samples: "
    "their thumbnails appear under the map, and the gallery can show them all."
)
# NOTE: plotly hover labels cannot show images, so thumbnails appear for the selection
# under the map rather than on hover.
result = require_result()
table = curated_table(result)
if result.coords is None:
    st.warning("This result has no map; press Compute in the sidebar to build it.")
    st.stop()

colour = st.radio("Colour by", list(COLOUR_CHOICES), horizontal=True, key="map-colour")
colour_column = COLOUR_CHOICES[colour]
if colour_column == "flagged":
    figure = embedding_figure(table, result.coords, color_by=colour_column)
else:
    figure = _score_figure(result.key, result.table, result.coords, colour_column)
figure.update_layout(height=640)
event = st.plotly_chart(figure, width="stretch", on_select="rerun", selection_mode=("box", "lasso"), key="map")
selected = ids_from_selection(event)

if selected:
    st.session_state[SELECTION_KEY] = selected
    info, action = st.columns([3, 1])
    info.write(f"{len(selected):,} samples selected.")
    if action.button("Show in gallery", type="primary", key="map-to-gallery"):
        st.switch_page("ui/pages/gallery.py")
    rows = table.set_index("sample_id").loc[selected[:PREVIEW_SIZE]].reset_index()
    columns = st.columns(6)
    for number, (_, row) in enumerate(rows.iterrows()):
        show_item(columns[number % 6], result.samples, int(row["index"]), item_caption(row), alt=str(row["sample_id"]))
else:
    st.write("No selection: the gallery shows every sample.")
    st.session_state.pop(SELECTION_KEY, None)
