"""Exact nearest neighbours of one sample in feature space."""

from __future__ import annotations

import numpy as np

#: Memory for one chunk of float64 differences. 64 MiB keeps the peak far
#: below the feature matrix itself (1M x 2048 float32 is about 7.6 GiB),
#: while a chunk of 2048-wide rows still has 4096 rows, so the per-chunk
#: Python overhead is negligible.
CHUNK_BYTES = 64 * 2**20


def nearest_neighbors(features: np.ndarray, index: int, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Find the ``k`` samples closest to sample ``index`` by Euclidean distance.

    The search is brute force over row chunks of at most :data:`CHUNK_BYTES`
    of float64 differences, so ``features`` may be a memory-mapped array
    larger than RAM.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    index : int
        Row of the query sample, in ``0..n_samples-1``.
    k : int, default=8
        Neighbours to return; clamped to ``n_samples - 1``.

    Returns
    -------
    indices : ndarray of shape (min(k, n_samples - 1),), dtype int64
        Rows of the neighbours, excluding ``index`` itself but including
        exact duplicates of it. Ties in distance are broken by lower row.
    distances : ndarray of shape (min(k, n_samples - 1),), dtype float64
        Euclidean distances, ascending. Rows with NaN features get NaN
        distances and come last.
    """
    if not hasattr(features, "ndim") or features.ndim != 2:
        raise ValueError(f"features must be a 2-D array (n_samples, n_features), got {type(features).__name__}")
    n_samples, n_features = features.shape
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n_samples:
        raise ValueError(f"index {index!r} is not a row of the {n_samples} samples; pass 0..{n_samples - 1}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    query = np.asarray(features[index], dtype=np.float64)
    if not np.isfinite(query).all():
        raise ValueError(f"sample {index} has NaN or infinite features, so it has no distances")
    k = min(int(k), n_samples - 1)

    chunk_rows = max(1, CHUNK_BYTES // max(1, n_features * 8))
    best_rows = np.empty(0, dtype=np.int64)
    best_squared = np.empty(0, dtype=np.float64)
    for start in range(0, n_samples, chunk_rows):
        stop = min(start + chunk_rows, n_samples)
        differences = np.array(features[start:stop], dtype=np.float64)
        differences -= query
        squared = np.einsum("ij,ij->i", differences, differences)
        rows = np.arange(start, stop, dtype=np.int64)
        if start <= index < stop:
            keep = rows != index
            rows, squared = rows[keep], squared[keep]
        # lexsort orders by distance, then by row, and puts NaN distances last.
        rows = np.concatenate([best_rows, rows])
        squared = np.concatenate([best_squared, squared])
        order = np.lexsort((rows, squared))[:k]
        best_rows, best_squared = rows[order], squared[order]
    return best_rows, np.sqrt(best_squared)
