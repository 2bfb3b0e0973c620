import time

import numpy as np
import pandas as pd
import pytest

from lsi_app.analysis.gallery import (
    PAGE_SIZES,
    FlagState,
    GalleryQuery,
    merge_curation,
    paginate,
    query_gallery,
    sortable_columns,
)


def make_table() -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "index": range(6),
            "sample_id": ["cat/a.png", "cat/B.png", "dog/c.png", "dog/d.png", "bird/e.png", "bird/f.png"],
            "path": ["/data/cat/a.png", "/data/cat/B.png", "/data/dog/c.png", None, "/data/bird/e.png", "/x/f.png"],
            "label": [0, 0, 1, 1, 2, 2],
            "class_name": ["cat", "cat", "dog", "dog", "bird", "bird"],
            "split": ["train", "val", "train", "val", "train", "val"],
            "lsi": [0.5, 2.0, np.nan, 2.0, 0.1, 1.0],
            "loss": [0.1, 3.0, 0.2, 0.4, 0.05, 2.0],
            "p_label": [0.9, 0.05, 0.8, 0.7, 0.95, 0.1],
            "predicted": [0, 1, 1, 1, 2, 0],
            "margin": [0.8, -0.9, 0.6, 0.4, 0.9, -0.8],
            "mislabel_score": [0.05, 6.0, np.nan, 0.8, 0.005, 2.0],
            "predicted_name": ["cat", "dog", "dog", "dog", "bird", "cat"],
        }
    )
    table.attrs["label_mapping"] = {"0": "cat", "1": "dog", "2": "bird"}
    return table


def make_state() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["cat/B.png", "dog/d.png", "bird/f.png", "not/in/table.png"],
            "flagged": [True, False, True, True],
            "flag_reason": ["blurry", None, "duplicate", "gone"],
            "relabel": [None, "cat", None, None],
            "note": [None, "check the ears", "", "x"],
            "review": [None, "mislabeled", "kept", None],
            "updated_at": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
        }
    )


def ids(rows: pd.DataFrame) -> list[str]:
    return rows["sample_id"].tolist()


def test_merge_curation_adds_columns_in_row_order():
    table = make_table()

    merged = merge_curation(table, make_state())

    assert ids(merged) == ids(table)
    assert merged["flagged"].tolist() == [False, True, False, False, False, True]
    assert merged["flagged"].dtype == bool
    assert merged["flag_reason"].tolist() == ["", "blurry", "", "", "", "duplicate"]
    assert merged["relabel"].tolist() == [None, None, None, "cat", None, None]
    assert merged["note"].tolist() == ["", "", "", "check the ears", "", ""]
    assert merged["review"].tolist() == [None, None, None, "mislabeled", None, "kept"]
    assert merged.attrs["label_mapping"] == table.attrs["label_mapping"]
    assert "flagged" not in table.columns


@pytest.mark.parametrize("state", [None, pd.DataFrame(), pd.DataFrame(columns=["sample_id", "flagged"])])
def test_merge_curation_with_missing_state(state):
    merged = merge_curation(make_table(), state)

    assert len(merged) == 6
    assert not merged["flagged"].any()
    assert merged["note"].tolist() == [""] * 6
    assert merged["relabel"].isna().all()
    assert merged["review"].isna().all()


def test_merge_curation_latest_duplicate_wins():
    state = pd.DataFrame(
        {
            "sample_id": ["cat/a.png", "cat/a.png"],
            "flagged": [False, True],
            "note": ["new", "old"],
            "updated_at": ["2024-05-02", "2024-05-01"],
        }
    )

    merged = merge_curation(make_table(), state)

    assert len(merged) == 6
    assert merged["note"].iloc[0] == "new"
    assert not merged["flagged"].iloc[0]


def test_merge_curation_requires_sample_id():
    with pytest.raises(ValueError, match="no 'sample_id' column"):
        merge_curation(make_table(), pd.DataFrame({"id": ["cat/a.png"], "flagged": [True]}))


def test_sortable_columns_lists_scores_first():
    table = merge_curation(make_table(), None)
    table["lsi_fast"] = table["lsi"]

    columns = sortable_columns(table)

    assert columns == ["lsi", "mislabel_score", "loss", "p_label", "margin", "lsi_fast"]


def test_query_default_sorts_by_lsi_descending_nan_last():
    rows = query_gallery(make_table(), GalleryQuery())

    # Ties (cat/B and dog/d at 2.0) keep table order.
    assert ids(rows) == ["cat/B.png", "dog/d.png", "bird/f.png", "cat/a.png", "bird/e.png", "dog/c.png"]


def test_query_ascending_keeps_ties_and_nan_last():
    rows = query_gallery(make_table(), GalleryQuery(descending=False))

    assert ids(rows) == ["bird/e.png", "cat/a.png", "bird/f.png", "cat/B.png", "dog/d.png", "dog/c.png"]


def test_query_sorts_by_other_column():
    rows = query_gallery(make_table(), GalleryQuery(sort_by="margin", descending=False))

    assert ids(rows) == ["cat/B.png", "bird/f.png", "dog/d.png", "dog/c.png", "cat/a.png", "bird/e.png"]


def test_query_keeps_table_index_labels():
    rows = query_gallery(make_table(), GalleryQuery())

    assert rows.index.tolist() == rows["index"].tolist()


def test_query_filters_given_and_predicted_classes():
    table = make_table()

    by_class = query_gallery(table, GalleryQuery(classes=("cat", "bird")))
    by_prediction = query_gallery(table, GalleryQuery(predicted=("cat",)))
    both = query_gallery(table, GalleryQuery(classes=("cat",), predicted=("dog",)))
    unknown = query_gallery(table, GalleryQuery(classes=("fish",)))

    assert set(by_class["class_name"]) == {"cat", "bird"}
    assert len(by_class) == 4
    assert ids(by_prediction) == ["bird/f.png", "cat/a.png"]
    assert ids(both) == ["cat/B.png"]
    assert unknown.empty


@pytest.mark.parametrize(
    "flag_state, expected",
    [
        (FlagState.ALL, {"cat/a.png", "cat/B.png", "dog/c.png", "dog/d.png", "bird/e.png", "bird/f.png"}),
        (FlagState.FLAGGED, {"cat/B.png", "bird/f.png"}),
        (FlagState.UNFLAGGED, {"cat/a.png", "dog/c.png", "dog/d.png", "bird/e.png"}),
        (FlagState.RELABELLED, {"dog/d.png"}),
        (FlagState.NOTED, {"dog/d.png"}),
        ("flagged", {"cat/B.png", "bird/f.png"}),
    ],
)
def test_query_filters_flag_state(flag_state, expected):
    table = merge_curation(make_table(), make_state())

    rows = query_gallery(table, GalleryQuery(flag_state=flag_state))

    assert set(ids(rows)) == expected


def test_query_flag_state_without_curation_columns():
    table = make_table()

    assert query_gallery(table, GalleryQuery(flag_state=FlagState.FLAGGED)).empty
    assert len(query_gallery(table, GalleryQuery(flag_state=FlagState.UNFLAGGED))) == 6
    assert query_gallery(table, GalleryQuery(flag_state=FlagState.NOTED)).empty


def test_query_score_range_is_inclusive_and_drops_nan():
    table = make_table()

    both = query_gallery(table, GalleryQuery(score_min=0.5, score_max=1.0))
    lower = query_gallery(table, GalleryQuery(score_min=1.0))
    upper = query_gallery(table, GalleryQuery(score_max=0.5))
    other = query_gallery(table, GalleryQuery(score_column="loss", score_min=1.0, sort_by="loss"))
    unbounded = query_gallery(table, GalleryQuery())

    assert ids(both) == ["bird/f.png", "cat/a.png"]
    assert ids(lower) == ["cat/B.png", "dog/d.png", "bird/f.png"]
    assert ids(upper) == ["cat/a.png", "bird/e.png"]
    assert ids(other) == ["cat/B.png", "bird/f.png"]
    assert "dog/c.png" in ids(unbounded)


def test_query_search_is_case_insensitive_plain_text():
    table = make_table()
    table.loc[4, "sample_id"] = "bird/e[1].png"

    by_id = query_gallery(table, GalleryQuery(search="b.PNG"))
    by_path = query_gallery(table, GalleryQuery(search="/x/"))
    brackets = query_gallery(table, GalleryQuery(search="e[1]"))
    regex_like = query_gallery(table, GalleryQuery(search=".*"))
    padded = query_gallery(table, GalleryQuery(search="  DOG/  "))
    missing_path = query_gallery(table, GalleryQuery(search="nan"))
    none_path = query_gallery(table, GalleryQuery(search="None"))

    assert ids(by_id) == ["cat/B.png"]
    assert ids(by_path) == ["bird/f.png"]
    assert ids(brackets) == ["bird/e[1].png"]
    assert regex_like.empty
    assert set(ids(padded)) == {"dog/c.png", "dog/d.png"}
    assert missing_path.empty
    assert none_path.empty


def test_query_explicit_selection():
    table = make_table()

    chosen = query_gallery(table, GalleryQuery(sample_ids=("dog/c.png", "bird/e.png", "missing")))
    empty = query_gallery(table, GalleryQuery(sample_ids=()))

    assert ids(chosen) == ["bird/e.png", "dog/c.png"]
    assert empty.empty


def test_query_combines_filters():
    table = merge_curation(make_table(), make_state())
    query = GalleryQuery(
        classes=("cat", "dog"),
        flag_state=FlagState.UNFLAGGED,
        score_min=0.1,
        search=".png",
        sample_ids=("cat/a.png", "cat/B.png", "dog/d.png"),
    )

    rows = query_gallery(table, query)

    assert ids(rows) == ["dog/d.png", "cat/a.png"]


@pytest.mark.parametrize(
    "query, message",
    [
        (GalleryQuery(sort_by="sample_id"), r"unknown sort column 'sample_id'.*'lsi', 'mislabel_score'"),
        (GalleryQuery(sort_by="label"), "unknown sort column 'label'"),
        (GalleryQuery(score_column="nope", score_min=1.0), "unknown score column 'nope'"),
        (GalleryQuery(score_min=2.0, score_max=1.0), "greater than score_max"),
        (GalleryQuery(score_min=float("nan")), "score_min is NaN"),
        (GalleryQuery(flag_state="starred"), "unknown flag state 'starred'"),
    ],
)
def test_query_rejects_invalid_query(query, message):
    with pytest.raises(ValueError, match=message):
        query_gallery(make_table(), query)


def test_query_on_large_table_is_vectorised():
    n_rows = 50_000
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n_rows)
    predicted = np.where(rng.random(n_rows) < 0.9, labels, rng.integers(0, 10, n_rows))
    sample_ids = np.array([f"class{c}/img_{i:06d}.png" for i, c in enumerate(labels)], dtype=object)
    table = pd.DataFrame(
        {
            "index": np.arange(n_rows),
            "sample_id": sample_ids,
            "path": "/data/" + pd.Series(sample_ids),
            "label": labels,
            "class_name": [f"class{c}" for c in labels],
            "lsi": rng.exponential(size=n_rows),
            "loss": rng.exponential(size=n_rows),
            "p_label": rng.random(n_rows),
            "predicted": predicted,
            "margin": rng.random(n_rows) - 0.5,
            "predicted_name": [f"class{c}" for c in predicted],
        }
    )
    table["mislabel_score"] = table["lsi"] * table["loss"]
    state = pd.DataFrame({"sample_id": sample_ids[::7], "flagged": True})
    merged = merge_curation(table, state)
    query = GalleryQuery(
        sort_by="mislabel_score",
        classes=("class1", "class2", "class3"),
        flag_state=FlagState.UNFLAGGED,
        score_min=0.1,
        search="IMG_0",
        sample_ids=tuple(sample_ids[:30_000]),
    )

    start = time.perf_counter()
    rows = query_gallery(merged, query)
    elapsed = time.perf_counter() - start

    assert elapsed < 1.0
    assert len(rows) > 0
    assert rows["mislabel_score"].is_monotonic_decreasing
    assert not rows["flagged"].any()
    assert set(rows["class_name"]) <= {"class1", "class2", "class3"}


def test_paginate_pages_and_clamping():
    rows = pd.DataFrame({"x": range(10)})

    first, n_pages = paginate(rows, 1, 4)
    last, _ = paginate(rows, 3, 4)
    beyond, _ = paginate(rows, 99, 4)
    before, _ = paginate(rows, 0, 4)
    negative, _ = paginate(rows, -5, 4)

    assert n_pages == 3
    assert first["x"].tolist() == [0, 1, 2, 3]
    assert last["x"].tolist() == [8, 9]
    assert beyond["x"].tolist() == [8, 9]
    assert before["x"].tolist() == [0, 1, 2, 3]
    assert negative["x"].tolist() == [0, 1, 2, 3]


def test_paginate_exact_multiple_and_empty():
    full, n_full = paginate(pd.DataFrame({"x": range(8)}), 2, 4)
    empty, n_empty = paginate(pd.DataFrame({"x": []}), 3, 24)

    assert n_full == 2
    assert full["x"].tolist() == [4, 5, 6, 7]
    assert n_empty == 1
    assert empty.empty


@pytest.mark.parametrize("page_size", [0, -1, 2.5, True])
def test_paginate_rejects_bad_page_size(page_size):
    with pytest.raises(ValueError, match="page_size must be an integer >= 1"):
        paginate(pd.DataFrame({"x": range(3)}), 1, page_size)


def test_page_sizes_fill_grid_rows():
    for size in PAGE_SIZES:
        for columns in (3, 4, 6, 8):
            assert size % columns == 0
