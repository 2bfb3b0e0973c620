import re

import numpy as np
import pandas as pd
import pytest

from lsi_app.data.embeddings import NON_FINITE_REASON, open_embeddings
from lsi_app.data.samples import ItemKind, SkippedItem, VectorItems


def make_features(n_rows: int = 6, n_features: int = 4, dtype=np.float32) -> np.ndarray:
    return np.arange(n_rows * n_features, dtype=dtype).reshape(n_rows, n_features) / 10


def test_npy_features_with_npy_labels(tmp_path):
    features = make_features()
    np.save(tmp_path / "x.npy", features)
    np.save(tmp_path / "y.npy", np.array([5, 1, 5, 9, 1, 5]))

    samples = open_embeddings(tmp_path / "x.npy", tmp_path / "y.npy")

    assert isinstance(samples.reader, VectorItems)
    assert samples.kind is ItemKind.VECTOR
    assert samples.reader.vectors.dtype == np.float32
    np.testing.assert_array_equal(samples.reader.vectors, features)
    assert samples.class_names == ("1", "5", "9")
    assert samples.labels.dtype == np.int64
    assert samples.labels.tolist() == [1, 0, 1, 2, 0, 1]
    assert samples.sample_ids[0] == "row-00001"
    assert samples.sample_ids[5] == "row-00006"
    assert str(tmp_path / "y.npy") in samples.name
    assert samples.skipped == ()


def test_float64_kept_and_integers_widened(tmp_path):
    np.save(tmp_path / "f64.npy", make_features(dtype=np.float64))
    np.save(tmp_path / "int.npy", np.arange(12, dtype=np.int32).reshape(3, 4))

    assert open_embeddings(tmp_path / "f64.npy").reader.vectors.dtype == np.float64
    assert open_embeddings(tmp_path / "int.npy").reader.vectors.dtype == np.float64


def test_npz_with_labels_inside(tmp_path):
    features = make_features(4)
    np.savez(tmp_path / "both.npz", embeddings=features, labels=np.array(["dog", "cat", "dog", "bird"]))

    samples = open_embeddings(tmp_path / "both.npz")

    np.testing.assert_array_equal(samples.reader.vectors, features)
    assert samples.class_names == ("bird", "cat", "dog")
    assert samples.labels.tolist() == [2, 1, 2, 0]


def test_separate_labels_override_npz_labels(tmp_path):
    np.savez(tmp_path / "both.npz", features=make_features(3), labels=np.array([0, 0, 0]))
    np.save(tmp_path / "other.npy", np.array(["a", "b", "a"]))

    samples = open_embeddings(tmp_path / "both.npz", tmp_path / "other.npy")

    assert samples.class_names == ("a", "b")


def test_parquet_label_and_id_columns(tmp_path):
    table = pd.DataFrame({"a": [0.1, 0.2, 0.3], "b": [1.0, 2.0, 3.0], "id": [101, 102, 103], "label": ["x", "y", "x"]})
    table.to_parquet(tmp_path / "table.parquet")

    samples = open_embeddings(tmp_path / "table.parquet")

    # The numeric id column is not a feature.
    assert samples.reader.vectors.shape == (3, 2)
    np.testing.assert_array_equal(samples.reader.vectors, table[["a", "b"]].to_numpy())
    assert samples.sample_ids.tolist() == ["101", "102", "103"]
    assert samples.class_names == ("x", "y")
    assert samples.labels.tolist() == [0, 1, 0]


def test_parquet_without_labels_unlabelled(tmp_path):
    pd.DataFrame({"sample_id": ["s1", "s2"], "a": [1.5, 2.5]}).to_parquet(tmp_path / "plain.parquet")

    samples = open_embeddings(tmp_path / "plain.parquet")

    assert samples.labels is None
    assert samples.sample_ids.tolist() == ["s1", "s2"]
    assert samples.reader.vectors.shape == (2, 1)


def test_non_finite_rows_skipped(tmp_path):
    features = make_features(5)
    features[1, 2] = np.nan
    features[3, 0] = np.inf
    np.save(tmp_path / "x.npy", features)
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1, 1]))

    samples = open_embeddings(tmp_path / "x.npy", tmp_path / "y.npy")

    assert samples.sample_ids.tolist() == ["row-00001", "row-00003", "row-00005"]
    np.testing.assert_array_equal(samples.reader.vectors, features[[0, 2, 4]])
    assert samples.labels.tolist() == [0, 0, 1]
    assert samples.skipped == (SkippedItem("row 2", NON_FINITE_REASON), SkippedItem("row 4", NON_FINITE_REASON))


def test_all_rows_non_finite_raises(tmp_path):
    np.save(tmp_path / "x.npy", np.full((3, 2), np.nan))

    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / 'x.npy'))} has no usable row"):
        open_embeddings(tmp_path / "x.npy")


@pytest.mark.parametrize(
    "labels",
    [
        np.array([1.0, np.nan, 2.0, 1.0]),
        np.array(["a", None, "b", "a"], dtype=object),
        np.array(["a", "  ", "b", "a"]),
    ],
)
def test_missing_label_rows_skipped(tmp_path, labels):
    np.save(tmp_path / "x.npy", make_features(4))
    # .npy files are read without pickle, so labels containing None go through Parquet.
    if labels.dtype == object:
        labels_path = tmp_path / "y.parquet"
        pd.DataFrame({"label": labels}).to_parquet(labels_path)
    else:
        labels_path = tmp_path / "y.npy"
        np.save(labels_path, labels)

    samples = open_embeddings(tmp_path / "x.npy", labels_path)

    assert samples.sample_ids.tolist() == ["row-00001", "row-00003", "row-00004"]
    assert samples.labels.tolist() == [0, 1, 0]
    assert samples.skipped == (SkippedItem("row 2", "missing label"),)


def test_string_labels_stripped_and_mapped(tmp_path):
    np.save(tmp_path / "x.npy", make_features(3))
    np.save(tmp_path / "y.npy", np.array(["cat", "cat ", "dog"]))

    samples = open_embeddings(tmp_path / "x.npy", tmp_path / "y.npy")

    assert samples.class_names == ("cat", "dog")
    assert samples.labels.tolist() == [0, 0, 1]


def test_label_count_mismatch_names_both_files(tmp_path):
    np.save(tmp_path / "x.npy", make_features(6))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0]))

    with pytest.raises(ValueError) as raised:
        open_embeddings(tmp_path / "x.npy", tmp_path / "y.npy")

    message = str(raised.value)
    assert f"{tmp_path / 'x.npy'} has 6 rows" in message
    assert f"{tmp_path / 'y.npy'} has 3 labels" in message


def test_empty_labels_file_raises(tmp_path):
    np.save(tmp_path / "x.npy", make_features(2))
    np.save(tmp_path / "y.npy", np.array([np.nan, np.nan]))

    with pytest.raises(ValueError, match="contains no label"):
        open_embeddings(tmp_path / "x.npy", tmp_path / "y.npy")


def test_unlabelled_npy(tmp_path):
    np.save(tmp_path / "x.npy", make_features(3))

    samples = open_embeddings(tmp_path / "x.npy")

    assert samples.labels is None
    assert samples.class_names == ()
    assert len(samples) == 3


def test_duplicate_parquet_id_raises(tmp_path):
    pd.DataFrame({"id": ["a", "b", "a"], "f": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / "dupes.parquet")

    with pytest.raises(ValueError, match="repeats sample id 'a'"):
        open_embeddings(tmp_path / "dupes.parquet")


def test_fingerprint_follows_labels(tmp_path):
    np.save(tmp_path / "x.npy", make_features(4))
    np.save(tmp_path / "y1.npy", np.array([0, 1, 0, 1]))
    np.save(tmp_path / "y2.npy", np.array([1, 0, 0, 1]))

    first = open_embeddings(tmp_path / "x.npy", tmp_path / "y1.npy")
    again = open_embeddings(tmp_path / "x.npy", tmp_path / "y1.npy")
    relabelled = open_embeddings(tmp_path / "x.npy", tmp_path / "y2.npy")

    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != relabelled.fingerprint


def test_missing_features_file_raises(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        open_embeddings(tmp_path / "absent.npy")
