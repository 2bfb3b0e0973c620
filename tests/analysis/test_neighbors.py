import numpy as np
import pytest

from lsi_app.analysis import neighbors
from lsi_app.analysis.neighbors import nearest_neighbors


def reference(features: np.ndarray, index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    distances = np.sqrt(((features.astype(np.float64) - features[index].astype(np.float64)) ** 2).sum(axis=1))
    rows = np.array([row for row in np.lexsort((np.arange(len(features)), distances)) if row != index])
    return rows[:k], distances[rows[:k]]


@pytest.mark.parametrize("index, k", [(0, 8), (57, 1), (199, 20), (100, 500)])
def test_neighbors_match_brute_force(index, k):
    features = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)

    rows, distances = nearest_neighbors(features, index, k)
    expected_rows, expected_distances = reference(features, index, k)

    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12)
    assert rows.dtype == np.int64
    assert index not in rows
    assert (np.diff(distances) >= 0).all()


def test_neighbors_across_small_chunks(monkeypatch):
    # 16 features x 8 bytes x 3 rows per chunk forces many chunks.
    monkeypatch.setattr(neighbors, "CHUNK_BYTES", 16 * 8 * 3)
    features = np.random.default_rng(1).normal(size=(50, 16))

    rows, distances = nearest_neighbors(features, 22, 10)
    expected_rows, expected_distances = reference(features, 22, 10)

    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(distances, expected_distances)


def test_neighbors_keep_duplicates_and_break_ties_by_row():
    features = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])

    rows, distances = nearest_neighbors(features, 0, 3)

    np.testing.assert_array_equal(rows, [2, 1, 3])
    np.testing.assert_allclose(distances, [0.0, 1.0, 1.0])


def test_neighbors_clamp_k_and_accept_memmap(tmp_path):
    path = tmp_path / "features.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(4, 3))
    features = np.load(path, mmap_mode="r")

    rows, distances = nearest_neighbors(features, 3, 10)
    none, no_distances = nearest_neighbors(features, 3, 0)
    alone, alone_distances = nearest_neighbors(features[:1], 0)

    np.testing.assert_array_equal(rows, [2, 1, 0])
    np.testing.assert_allclose(distances, np.sqrt(27) * np.array([1, 2, 3]))
    assert none.shape == (0,)
    assert no_distances.shape == (0,)
    assert alone.shape == (0,)
    assert alone_distances.shape == (0,)


def test_neighbors_nan_rows_come_last():
    features = np.array([[0.0], [np.nan], [5.0], [1.0]])

    rows, distances = nearest_neighbors(features, 0, 3)

    np.testing.assert_array_equal(rows, [3, 2, 1])
    assert np.isnan(distances[2])


@pytest.mark.parametrize(
    "features, index, k, message",
    [
        (np.zeros(5), 0, 3, "must be a 2-D array"),
        (np.zeros((5, 2)), 5, 3, "index 5 is not a row of the 5 samples"),
        (np.zeros((5, 2)), -1, 3, "index -1 is not a row"),
        (np.zeros((5, 2)), 0, -1, "k must be an integer >= 0"),
        (np.array([[np.nan], [1.0]]), 0, 1, "sample 0 has NaN or infinite features"),
    ],
)
def test_neighbors_reject_bad_input(features, index, k, message):
    with pytest.raises(ValueError, match=message):
        nearest_neighbors(features, index, k)
