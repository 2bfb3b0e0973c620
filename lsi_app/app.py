"""Streamlit entry file: page navigation for the LSI Studio dashboard."""

import logging

import streamlit as st

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="LSI Studio", layout="wide")
navigation = st.navigation(
    [st.Page("ui/pages/ranking.py", title="Ranking", icon=":material/leaderboard:", default=True)]
)
navigation.run()
