"""Streamlit entry file: the settings sidebar and page navigation of the LSI Studio dashboard."""

import logging

import streamlit as st

from lsi_app.ui.sidebar import render_sidebar

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="LSI Studio", layout="wide")
PAGES = [
    st.Page("ui/pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("ui/pages/gallery.py", title="Gallery", icon=":material/grid_view:"),
    st.Page("ui/pages/mislabeled.py", title="Mislabeled", icon=":material/report:"),
    st.Page("ui/pages/classes.py", title="Classes", icon=":material/bar_chart:"),
    st.Page("ui/pages/embedding.py", title="Embedding", icon=":material/scatter_plot:"),
    st.Page("ui/pages/export.py", title="Export", icon=":material/download:"),
]
navigation = st.navigation(PAGES)
render_sidebar()
navigation.run()
