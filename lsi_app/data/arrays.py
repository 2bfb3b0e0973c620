"""Precomputed features and labels from .npy, .npz and .parquet files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ARRAY_SUFFIXES = (".npy", ".npz", ".parquet")

#: Names looked up, in order, inside .npz archives and Parquet tables.
FEATURE_KEYS = ("features", "embeddings", "X")
LABEL_KEYS = ("labels", "label", "y", "target")


def _check_path(path: Path, role: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{role} file {path} not found")
    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise ValueError(f"{role} file {path} has an unsupported type; use one of {', '.join(ARRAY_SUFFIXES)}")
    return path


def _from_npz(path: Path, keys: tuple[str, ...], role: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        for key in keys:
            if key in names:
                return archive[key]
        if len(names) == 1:
            return archive[names[0]]
    raise ValueError(f"{role} file {path} contains arrays {names}; name the {role} array one of {', '.join(keys)}")


def _load(path: Path, keys: tuple[str, ...], role: str, from_table) -> np.ndarray:
    path = _check_path(path, role)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        return _from_npz(path, keys, role)
    return from_table(pd.read_parquet(path), path)


def _features_from_table(table: pd.DataFrame, path: Path) -> np.ndarray:
    numeric = table.select_dtypes("number")
    numeric = numeric.drop(columns=[c for c in LABEL_KEYS if c in numeric.columns])
    if numeric.shape[1] == 0:
        raise ValueError(f"features file {path} has no numeric columns")
    return numeric.to_numpy()


def _labels_from_table(table: pd.DataFrame, path: Path) -> np.ndarray:
    column = next((c for c in LABEL_KEYS if c in table.columns), None)
    if column is None and table.shape[1] == 1:
        column = table.columns[0]
    if column is None:
        raise ValueError(f"labels file {path} has columns {list(table.columns)}; name the label column 'label'")
    return table[column].to_numpy()


def load_features(path: Path) -> np.ndarray:
    """Load a (n_samples, n_features) array.

    ``.npy``: the array itself. ``.npz``: the array named ``features``,
    ``embeddings`` or ``X``, or the only array. ``.parquet``: every numeric
    column, in file order, except label columns.
    """
    features = _load(path, FEATURE_KEYS, "features", _features_from_table)
    if features.ndim != 2:
        raise ValueError(f"features in {path} must be 2-D (n_samples, n_features), got shape {features.shape}")
    return features


def load_labels(path: Path) -> np.ndarray:
    """Load a 1-D label array of integers or strings.

    ``.npy``: the array itself. ``.npz``: the array named ``labels``,
    ``label``, ``y`` or ``target``, or the only array. ``.parquet``: the
    column with one of those names, or the only column.
    """
    labels = np.asarray(_load(path, LABEL_KEYS, "labels", _labels_from_table))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"labels in {path} must be 1-D, got shape {labels.shape}")
    return labels


def labels_in_npz(path: Path) -> bool:
    """Return True when ``path`` is an .npz archive that also contains a label array."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as archive:
        return any(key in archive.files for key in LABEL_KEYS)


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map arbitrary labels (strings, non-contiguous integers) to ``0..C-1``.

    Classes are ordered by ``numpy.unique`` (numeric or lexicographic order).

    Returns
    -------
    codes : ndarray of shape (n_samples,), dtype int64
    class_names : tuple of str
        ``class_names[code]`` is the original label as text.
    """
    labels = np.asarray(labels)
    if labels.dtype == object:
        missing = [i for i, value in enumerate(labels) if value is None or (isinstance(value, float) and np.isnan(value))]
        if missing:
            raise ValueError(f"labels are missing in rows {missing[:10]}; drop those rows or give them a label")
        labels = labels.astype(str)
    if np.issubdtype(labels.dtype, np.floating):
        missing = np.flatnonzero(np.isnan(labels))
        if missing.size:
            raise ValueError(f"labels are missing (NaN) in rows {missing[:10].tolist()}; drop those rows or give them a label")
        if not np.all(labels == np.round(labels)):
            raise ValueError("labels are fractional numbers; pass class labels (integers or strings)")
        labels = labels.astype(np.int64)
    classes, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64), tuple(str(value) for value in classes)
