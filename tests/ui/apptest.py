"""Helpers for AppTest runs of the dashboard pages."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

import lsi_app

APP = str(Path(lsi_app.__file__).with_name("app.py"))
#: First runs train the CNN and build the map; AppTest's default of 3 s is too short for that.
TIMEOUT = 180


def open_page(page: str | None = None) -> AppTest:
    """Run the app, switch to ``page`` (e.g. "ui/pages/gallery.py") and return the finished AppTest."""
    st.cache_resource.clear()  # Each test has its own workspace, so results cached in memory must not leak.
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page is not None:
        app.switch_page(page).run()
    return app


def images(app: AppTest) -> list:
    return list(app.get("image"))
