import numpy as np
import pandas as pd
import pytest

from lsi_app.analysis import build_sample_table, highest_and_lowest
from lsi_app.data import SampleSet


@pytest.fixture
def samples():
    return SampleSet(
        name="toy",
        sample_ids=np.array(["s0", "s1", "s2", "s3"]),
        images=np.zeros((4, 2, 2), dtype=np.float32),
        labels=np.array([0, 1, 1, 0]),
        class_names=("cat", "dog"),
    )


def test_build_sample_table_joins_names(samples):
    scores = pd.DataFrame({"lsi": [0.1, 0.4, 0.2, 0.3], "predicted": [0, 0, 1, 0]})
    scores.attrs["lsi_settings"] = {"method": "fast"}

    table = build_sample_table(samples, scores)

    assert table["sample_id"].tolist() == ["s0", "s1", "s2", "s3"]
    assert table["class_name"].tolist() == ["cat", "dog", "dog", "cat"]
    assert table["predicted_name"].tolist() == ["cat", "cat", "dog", "cat"]
    assert table["index"].tolist() == [0, 1, 2, 3]
    assert table.attrs["lsi_settings"] == {"method": "fast"}


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
