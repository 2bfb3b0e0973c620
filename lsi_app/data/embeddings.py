"""Dataset source: precomputed embeddings from .npy, .npz or .parquet files, with optional labels.

Each row of the features array is one sample, used as its feature vector
without a model. Labels come from a separate file, from a label array
inside the .npz archive, or from a label column of the Parquet table (see
:mod:`lsi_app.data.arrays` for the accepted names). Without any of these,
the set is unlabelled.

Rows are numbered from 1 in the skipped-item list and in the default ids
``row-00001``, ....
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lsi_app.data.arrays import LABEL_KEYS, encode_labels, labels_in_npz, load_features, load_labels
from lsi_app.data.samples import SampleSet, SkippedItem, VectorItems, fingerprint_of

logger = logging.getLogger(__name__)

#: Parquet columns read as sample ids, in order of preference; they are never features.
ID_COLUMNS = ("sample_id", "id")

#: Digits in default ids such as ``row-00001``; wider numbers still work, they only sort less neatly.
ROW_ID_DIGITS = 5

NON_FINITE_REASON = "non-finite feature values (NaN or inf)"


def _is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def _id_text(value) -> str:
    """Return an id cell as stripped text; missing cells become ``""``, and ``7.0`` becomes ``"7"``."""
    if _is_missing(value):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _as_float_vectors(features: np.ndarray, path: Path) -> np.ndarray:
    """Keep float32 and float64 as given; widen other numeric types to a float type."""
    if features.dtype in (np.float32, np.float64):
        return features
    if features.dtype.kind == "f":
        return features.astype(np.float32)
    if features.dtype.kind in "biu":
        return features.astype(np.float64)
    raise ValueError(f"features in {path} have dtype {features.dtype}; save numeric feature vectors (float32 or float64)")


def _read_parquet(path: Path, with_labels: bool) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read features, the label column (when ``with_labels``) and the id column of a Parquet table."""
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        # pyarrow's ArrowInvalid, raised for a damaged file, is a ValueError.
        raise ValueError(f"features file {path} could not be read as Parquet ({error}); write it again") from error
    id_column = next((column for column in ID_COLUMNS if column in table.columns), None)
    ids = None if id_column is None else [_id_text(value) for value in table[id_column].to_numpy()]

    # The column rules of load_features, minus the id columns: every numeric column in file order.
    not_features = set(LABEL_KEYS) | set(ID_COLUMNS)
    numeric = table.select_dtypes("number")
    feature_columns = [column for column in numeric.columns if column not in not_features]
    if not feature_columns:
        raise ValueError(f"features file {path} has no numeric feature columns (columns: {list(table.columns)}); add them")
    features = numeric[feature_columns].to_numpy()

    label_column = next((column for column in LABEL_KEYS if column in table.columns), None)
    labels = table[label_column].to_numpy() if with_labels and label_column is not None else None
    return features, labels, ids


def _load(features_path: Path, labels_path: Path | None) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, str]:
    """Load features, raw labels, ids and a description of where the labels came from."""
    is_parquet = features_path.suffix.lower() == ".parquet" and features_path.is_file()
    if is_parquet:
        features, labels, ids = _read_parquet(features_path, with_labels=labels_path is None)
    else:
        features, labels, ids = load_features(features_path), None, None
    features = _as_float_vectors(features, features_path)

    if labels_path is not None:
        labels, label_source = load_labels(labels_path), f"labels file {labels_path}"
    elif labels_in_npz(features_path):
        labels, label_source = load_labels(features_path), f"the label array in {features_path}"
    else:
        label_source = f"the label column of {features_path}"
    if labels is not None and len(labels) != len(features):
        raise ValueError(
            f"features file {features_path} has {len(features)} rows but {label_source} has {len(labels)} labels; "
            "pass labels with one entry per feature row, in the same order"
        )
    return features, labels, ids, label_source


def _missing_labels(labels: np.ndarray) -> np.ndarray:
    """Return a boolean mask of missing labels: None, NaN or an empty string."""
    if labels.dtype.kind == "f":
        return np.isnan(labels)
    if labels.dtype.kind in "OUS":
        return np.array([_is_missing(value) for value in labels], dtype=bool)
    return np.zeros(len(labels), dtype=bool)


def _encode_present(labels: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    if labels.dtype.kind in "OU":
        # Surrounding spaces would otherwise make "cat" and "cat " two classes.
        labels = np.array([value.strip() if isinstance(value, str) else value for value in labels], dtype=object)
    return encode_labels(labels)


def _check_unique_ids(ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    for sample_id in ids:
        if sample_id in seen:
            raise ValueError(f"features file {path} repeats sample id {sample_id!r}; make the ids unique or remove the id column")
        if sample_id:
            seen.add(sample_id)


def open_embeddings(features_path: Path, labels_path: Path | None = None) -> SampleSet:
    """Open precomputed feature vectors as a :class:`SampleSet` of :class:`VectorItems`.

    Parameters
    ----------
    features_path : Path
        A .npy, .npz or .parquet file read with
        :func:`lsi_app.data.arrays.load_features`. A Parquet table may also
        have a label column and a ``sample_id`` or ``id`` column.
    labels_path : Path, optional
        A labels file read with :func:`lsi_app.data.arrays.load_labels`. When
        None, labels come from the .npz archive or the Parquet table if they
        contain them, else the set is unlabelled.

    Returns
    -------
    SampleSet
        Vectors as float32 or float64 as stored (other numeric types are
        converted). Ids come from the Parquet id column, else ``row-00001``,
        .... These rows are skipped and listed in ``skipped``: rows with NaN
        or inf values, rows with a missing label (None, NaN or empty string)
        while other rows have one ("missing label"), and rows with an empty id
        ("missing id").

    Raises
    ------
    ValueError
        If a file is missing or unreadable, the label count differs from the
        row count, the labels file contains no label, an id repeats, or no row
        is usable. The message names the file.
    """
    features_path = Path(features_path)
    labels_path = None if labels_path is None else Path(labels_path)
    features, labels, ids, label_source = _load(features_path, labels_path)
    n_rows = len(features)

    missing_label = np.zeros(n_rows, dtype=bool)
    if labels is not None:
        missing_label = _missing_labels(labels)
        if missing_label.all():
            if labels_path is not None:
                raise ValueError(f"labels file {labels_path} contains no label (all entries are empty); pass a file with labels")
            logger.warning("%s has no non-empty label; opening %s as unlabelled", label_source, features_path)
            labels, missing_label = None, np.zeros(n_rows, dtype=bool)
    if ids is not None:
        _check_unique_ids(ids, features_path)

    finite = np.isfinite(features).all(axis=1)
    skipped: list[SkippedItem] = []
    kept_rows: list[int] = []
    for position in range(n_rows):
        row = f"row {position + 1}"
        if not finite[position]:
            skipped.append(SkippedItem(row, NON_FINITE_REASON))
        elif missing_label[position]:
            skipped.append(SkippedItem(row, "missing label"))
        elif ids is not None and not ids[position]:
            skipped.append(SkippedItem(row, "missing id"))
        else:
            kept_rows.append(position)
    if not kept_rows:
        reason = skipped[0].reason if skipped else "the file has no rows"
        raise ValueError(f"features file {features_path} has no usable row ({n_rows} rows; first reason: {reason}); fix or replace the file")

    kept_index = np.asarray(kept_rows, dtype=np.int64)
    vectors = features if len(kept_rows) == n_rows else features[kept_index]
    codes, class_names = None, ()
    if labels is not None:
        codes, class_names = _encode_present(labels[kept_index])
    if ids is not None:
        sample_ids = np.array([ids[i] for i in kept_rows])
    else:
        sample_ids = np.array([f"row-{i + 1:0{ROW_ID_DIGITS}d}" for i in kept_rows])

    name = str(features_path) if labels_path is None else f"{features_path} (labels: {labels_path})"
    logger.info("opened %s: %d vectors of %d features, %d skipped", name, len(kept_rows), vectors.shape[1], len(skipped))
    return SampleSet(
        name=name,
        sample_ids=sample_ids,
        labels=codes,
        class_names=class_names,
        reader=VectorItems(vectors),
        fingerprint=fingerprint_of("embeddings", vectors, codes, class_names, sample_ids),
        skipped=tuple(skipped),
    )
