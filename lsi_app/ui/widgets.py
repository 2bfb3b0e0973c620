"""Small display helpers shared by the pages."""

from __future__ import annotations

import re

import streamlit as st

from lsi_app.data import ItemError, ItemKind, SampleSet

#: Characters that Markdown gives a meaning to.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def escape_markdown(text: str) -> str:
    """Escape Markdown (and so HTML tag) syntax, so user strings render as plain text in Markdown elements."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def format_lsi(value: float) -> str:
    # A non-breaking hyphen keeps values such as 2.1e-12 on one line.
    return f"{value:.3g}".replace("-", "\u2011")


def item_caption(row) -> str:
    """Return 'label X · LSI v', with the prediction where the probe disagrees (plain text)."""
    label = row.get("relabel") if isinstance(row.get("relabel"), str) else row["class_name"]
    if row["predicted"] == row["label"]:
        verdict = f"label {label}"
    else:
        verdict = f"label {label}, pred {row['predicted_name']} ✗"
    flag = "⚑ " if row.get("flagged", False) else ""
    return f"{flag}{verdict} · LSI {format_lsi(row['lsi'])}"


def show_item(container, samples: SampleSet, position: int, caption: str, *, alt: str) -> None:
    """Draw one sample's thumbnail (or text preview) with a caption into ``container``."""
    try:
        preview = samples.reader.thumbnail(position)
    except ItemError as error:
        container.warning(f"{alt}: {error}")
        return
    if samples.kind is ItemKind.IMAGE:
        container.image(preview, caption=caption, width="stretch", alt=alt)
        return
    box = container.container(border=True)
    box.text(preview)
    box.text(caption)


def show_large_item(samples: SampleSet, position: int) -> None:
    """Draw one sample in full: the image at its own size (up to the column width) or the whole text."""
    try:
        item = samples.reader.load(position)
    except ItemError as error:
        st.warning(str(error))
        return
    if samples.kind is ItemKind.IMAGE:
        if max(item.size) < 128:
            # Enlarge small images (such as 8x8 digits) by pixel repetition so they stay sharp.
            factor = 256 // max(item.size)
            item = item.resize((item.width * factor, item.height * factor), resample=0)
        st.image(item, width="content")
    elif samples.kind is ItemKind.TEXT:
        st.text(item)
    else:
        st.text(samples.reader.thumbnail(position))
