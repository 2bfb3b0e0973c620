"""k-means pseudo-labels for unlabelled data.

LSI needs a label per sample. For unlabelled data the pipeline clusters the
standardised features with k-means and scores against the cluster labels.
LSI on such pseudo-labels measures how much a sample shapes the cluster
boundaries that a classifier learns. It does not measure label noise,
because the clusters come from the same features and have no ground truth
to disagree with.
"""

from __future__ import annotations

import logging
import numbers
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

logger = logging.getLogger(__name__)

#: k-means++ starts; the fit with the lowest inertia is kept. scikit-learn 1.9 defaults to a
#: single start, and several starts make a poor local optimum less likely. Each costs one full fit.
KMEANS_RESTARTS = 10


def _validate(features: np.ndarray, n_clusters) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {features.shape}")
    if features.dtype.kind not in "biuf":
        raise ValueError(f"features must be numeric, got dtype {features.dtype}")
    if features.dtype.kind != "f":
        features = features.astype(np.float64)
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or inf; drop those rows before clustering")

    n_samples = features.shape[0]
    is_integer = isinstance(n_clusters, numbers.Integral) and not isinstance(n_clusters, bool)
    if not is_integer or not 2 <= n_clusters <= n_samples:
        raise ValueError(
            f"invalid number of clusters {n_clusters!r} for {n_samples} samples; "
            f"pass --clusters K with 2 <= K <= {n_samples}"
        )
    return features


def _order_by_size(labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Renumber clusters by descending size; ties go to the cluster whose first sample comes first."""
    sizes = np.bincount(labels, minlength=n_clusters)
    first_sample = np.full(n_clusters, len(labels), dtype=np.int64)
    np.minimum.at(first_sample, labels, np.arange(len(labels)))
    # np.lexsort sorts by its last key first: size descending, then first sample ascending.
    order = np.lexsort((first_sample, -sizes))
    new_label = np.empty(n_clusters, dtype=np.int64)
    new_label[order] = np.arange(n_clusters)
    return new_label[labels]


def kmeans_pseudo_labels(features: np.ndarray, n_clusters: int, *, seed: int = 0) -> tuple[np.ndarray, tuple[str, ...]]:
    """Cluster features with k-means and return the clusters as labels.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Already standardised features; they are clustered as given.
    n_clusters : int
        Number of clusters K, with 2 <= K <= n_samples.
    seed : int, default 0
        Random state of k-means; the same features and seed give the same labels.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int64
        Cluster of each sample in ``0..K-1``. Cluster 0 is the largest, and
        clusters of equal size are ordered by their first sample, so that the
        numbering does not depend on k-means' internal order.
    class_names : tuple of str
        ``("cluster 0", "cluster 1", ...)``.

    Raises
    ------
    ValueError
        If ``n_clusters`` is not an integer in ``2..n_samples``, the features
        are not a finite 2-D numeric array, or they contain fewer distinct
        points than ``n_clusters``.
    """
    features = _validate(features, n_clusters)
    kmeans = KMeans(n_clusters=n_clusters, n_init=KMEANS_RESTARTS, random_state=seed)
    with warnings.catch_warnings():
        # With fewer distinct points than clusters scikit-learn warns and leaves clusters
        # empty; the check below turns that into an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = kmeans.fit_predict(features).astype(np.int64)

    n_found = len(np.unique(labels))
    if n_found < n_clusters:
        n_distinct = len(np.unique(features, axis=0))
        if n_distinct < n_clusters:
            raise ValueError(
                f"k-means found only {n_found} non-empty clusters of the {n_clusters} requested, because the "
                f"features contain {n_distinct} distinct points; pass --clusters K with K <= {n_distinct}"
            )
        # NOTE: no test reaches this branch, because scikit-learn 1.9's Lloyd iterations relocate
        # empty clusters to distant points whenever enough distinct points exist.
        raise ValueError(
            f"k-means left {n_clusters - n_found} of {n_clusters} clusters empty; pass a smaller --clusters K"
        )

    labels = _order_by_size(labels, n_clusters)
    logger.info("k-means with %d clusters: sizes %s", n_clusters, np.bincount(labels).tolist())
    return labels, tuple(f"cluster {c}" for c in range(n_clusters))
