import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from lsi_app.analysis.clusters import kmeans_pseudo_labels


def make_blobs(sizes=(30, 20, 10), n_features: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return Gaussian blobs centred 20 units out on separate axes (spread 0.3), shuffled, and their true labels."""
    rng = np.random.default_rng(seed)
    centres = 20.0 * np.eye(len(sizes), n_features)
    features = np.vstack([centre + 0.3 * rng.standard_normal((size, n_features)) for centre, size in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(truth))
    return features[order], truth[order]


def test_separated_blobs_recovered():
    features, truth = make_blobs()

    labels, names = kmeans_pseudo_labels(features, 3)

    assert adjusted_rand_score(truth, labels) == 1.0
    assert labels.dtype == np.int64
    assert names == ("cluster 0", "cluster 1", "cluster 2")


def test_clusters_numbered_by_descending_size():
    features, truth = make_blobs(sizes=(10, 30, 20))

    labels, _ = kmeans_pseudo_labels(features, 3)

    assert np.bincount(labels).tolist() == [30, 20, 10]
    # The largest true blob (index 1, 30 samples) becomes cluster 0.
    assert set(labels[truth == 1]) == {0}
    assert set(labels[truth == 0]) == {2}


def test_equal_sizes_ordered_by_first_sample():
    features, _ = make_blobs(sizes=(15, 15, 15))

    labels, _ = kmeans_pseudo_labels(features, 3)

    first_positions = [np.flatnonzero(labels == c)[0] for c in range(3)]
    assert first_positions == sorted(first_positions)
    assert labels[0] == 0


def test_same_seed_same_labels():
    rng = np.random.default_rng(3)
    # Structureless data, where k-means results depend on the start.
    features = rng.standard_normal((80, 4))

    first, _ = kmeans_pseudo_labels(features, 4, seed=7)
    second, _ = kmeans_pseudo_labels(features, 4, seed=7)

    np.testing.assert_array_equal(first, second)


def test_integer_features_accepted():
    features = np.array([[0, 0], [0, 1], [10, 10], [10, 11]])

    labels, _ = kmeans_pseudo_labels(features, 2)

    assert labels[0] == labels[1]
    assert labels[2] == labels[3]
    assert labels[0] != labels[2]


@pytest.mark.parametrize("n_clusters", [1, 0, -2, 7, 2.0, True, "3"])
def test_invalid_cluster_count_raises(n_clusters):
    features = np.random.default_rng(0).standard_normal((6, 2))

    with pytest.raises(ValueError, match=r"pass --clusters K with 2 <= K <= 6"):
        kmeans_pseudo_labels(features, n_clusters)


def test_fewer_distinct_points_than_clusters():
    features = np.array([[0.0, 0.0]] * 4 + [[5.0, 5.0]] * 4)

    with pytest.raises(ValueError, match=r"2 distinct points; pass --clusters K with K <= 2"):
        kmeans_pseudo_labels(features, 3)


@pytest.mark.parametrize(
    "features, message",
    [
        (np.zeros(5), "must be 2-D"),
        (np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 2.0]]), "NaN or inf"),
        (np.array([["a", "b"], ["c", "d"]]), "must be numeric"),
    ],
)
def test_invalid_features_raise(features, message):
    with pytest.raises(ValueError, match=message):
        kmeans_pseudo_labels(features, 2)
