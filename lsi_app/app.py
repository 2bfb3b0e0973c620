"""Streamlit entry file: the settings sidebar and page navigation of the LSI Studio dashboard."""

import logging

import streamlit as st

from lsi_app.ui.sidebar import render_sidebar

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

# No Material icons on the pages: the browser would fetch them from fonts.gstatic.com,
# and the dashboard makes no request beyond its own server.
st.set_page_config(page_title="LSI Studio", layout="wide")
PAGES = [
    st.Page("ui/pages/overview.py", title="Overview", default=True),
    st.Page("ui/pages/gallery.py", title="Gallery"),
    st.Page("ui/pages/mislabeled.py", title="Mislabeled"),
    st.Page("ui/pages/classes.py", title="Classes"),
    st.Page("ui/pages/embedding.py", title="Embedding"),
    st.Page("ui/pages/export.py", title="Export"),
]
navigation = st.navigation(PAGES)
render_sidebar()
navigation.run()
