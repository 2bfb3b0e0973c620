"""Dataset sources: each opens a :class:`SampleSet`; :func:`open_dataset` dispatches on the source string."""

from lsi_app.data.arrays import encode_labels, labels_in_npz, load_features, load_labels
from lsi_app.data.digits import load_digits_samples
from lsi_app.data.samples import (
    THUMBNAIL_SIZE,
    ArrayImages,
    ItemError,
    ItemKind,
    SampleSet,
    SkippedItem,
    TextItems,
    VectorItems,
    fingerprint_of,
)
from lsi_app.data.sources import BUILTIN_DATASETS, DatasetSource, SourceKind, open_dataset, parse_dataset_source


def check_dataset_source(source: str) -> None:
    """Raise ValueError naming the problem when ``source`` is not a valid dataset source."""
    parse_dataset_source(source)


__all__ = [
    "BUILTIN_DATASETS",
    "THUMBNAIL_SIZE",
    "ArrayImages",
    "DatasetSource",
    "ItemError",
    "ItemKind",
    "SampleSet",
    "SkippedItem",
    "SourceKind",
    "TextItems",
    "VectorItems",
    "check_dataset_source",
    "encode_labels",
    "fingerprint_of",
    "labels_in_npz",
    "load_digits_samples",
    "load_features",
    "load_labels",
    "open_dataset",
    "parse_dataset_source",
]
