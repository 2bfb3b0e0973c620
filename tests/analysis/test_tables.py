from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from lsi_app.analysis import build_sample_table, highest_and_lowest
from lsi_app.data import ArrayImages, SampleSet


@pytest.fixture
def samples():
    return SampleSet(
        name="toy",
        sample_ids=np.array(["s0", "s1", "s2", "s3"]),
        labels=np.array([0, 1, 1, 0]),
        class_names=("cat", "dog"),
        reader=ArrayImages(np.zeros((4, 2, 2), dtype=np.float32)),
        fingerprint="toy",
        paths=np.array(["/d/s0.png", "/d/s1.png", "/d/s2.png", "/d/s3.png"]),
        columns={"split": np.array(["train", "train", "val", "val"])},
    )


def test_build_sample_table_joins_names(samples):
    scores = pd.DataFrame({"lsi": [0.1, 0.4, 0.2, 0.3], "predicted": [0, 0, 1, 0]})
    scores.attrs["lsi_settings"] = {"method": "fast"}

    table = build_sample_table(samples, scores)

    assert table["sample_id"].tolist() == ["s0", "s1", "s2", "s3"]
    assert table["class_name"].tolist() == ["cat", "dog", "dog", "cat"]
    assert table["predicted_name"].tolist() == ["cat", "cat", "dog", "cat"]
    assert table["index"].tolist() == [0, 1, 2, 3]
    assert table["path"].tolist()[0] == "/d/s0.png"
    assert table["split"].tolist() == ["train", "train", "val", "val"]
    assert table.attrs["lsi_settings"] == {"method": "fast"}
    assert table.attrs["label_mapping"] == {"0": "cat", "1": "dog"}
    assert table.attrs["pseudo_labels"] is False


def test_build_sample_table_rejects_unlabelled(samples):
    unlabelled = replace(samples, labels=None, class_names=())

    with pytest.raises(ValueError, match="has no labels"):
        build_sample_table(unlabelled, pd.DataFrame({"lsi": [1, 2, 3, 4], "predicted": [0, 0, 0, 0]}))


def test_build_sample_table_rejects_length_mismatch(samples):
    with pytest.raises(ValueError, match="3 rows but the dataset has 4"):
        build_sample_table(samples, pd.DataFrame({"lsi": [1, 2, 3], "predicted": [0, 0, 0]}))


def test_highest_and_lowest_order_and_ties():
    table = pd.DataFrame({"sample_id": list("abcde"), "lsi": [0.2, 0.9, 0.2, 0.5, 0.1]})

    highest, lowest = highest_and_lowest(table, 3)

    assert highest["sample_id"].tolist() == ["b", "d", "a"]
    assert lowest["sample_id"].tolist() == ["e", "a", "c"]


def test_highest_and_lowest_k_larger_than_table():
    table = pd.DataFrame({"lsi": [0.3, 0.1]})

    highest, lowest = highest_and_lowest(table, 10)

    assert len(highest) == 2
    assert len(lowest) == 2
    with pytest.raises(ValueError, match="k must be >= 0"):
        highest_and_lowest(table, -1)
