import pandas as pd

from lsi_app.ui.widgets import escape_markdown, format_lsi, item_caption


def test_escape_markdown_neutralises_links_and_tags():
    escaped = escape_markdown("[x](javascript:alert(1)) <b>bold</b> *a_b*")

    assert escaped == r"\[x\]\(javascript:alert\(1\)\) \<b\>bold\<\/b\> \*a\_b\*".replace(r"\/", "/")


def test_format_lsi_keeps_exponent_on_one_line():
    assert format_lsi(2.1e-12) == "2.1e\u201112"


def test_item_caption_marks_disagreement_and_flag():
    row = pd.Series({"class_name": "cat", "label": 0, "predicted": 1, "predicted_name": "dog", "lsi": 0.5, "flagged": True})

    assert item_caption(row) == "⚑ label cat, pred dog ✗ · LSI 0.5"


def test_item_caption_shows_relabel():
    row = pd.Series({"class_name": "cat", "label": 0, "predicted": 0, "predicted_name": "cat", "lsi": 0.1, "relabel": "dog"})

    assert item_caption(row) == "label dog · LSI 0.1"
