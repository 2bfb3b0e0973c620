"""Dataset sources: each returns a :class:`SampleSet`."""

from lsi_app.data.arrays import encode_labels, labels_in_npz, load_features, load_labels
from lsi_app.data.digits import load_digits_samples
from lsi_app.data.samples import SampleSet

#: Dataset sources that ``--dataset`` accepts, by name.
DATASETS = {"digits": load_digits_samples}


def check_dataset_source(source: str) -> None:
    """Raise ValueError naming the choices when ``source`` is not a known dataset source."""
    if source not in DATASETS:
        raise ValueError(f"unknown dataset source {source!r}; available: {', '.join(sorted(DATASETS))}")


def load_dataset(source: str) -> SampleSet:
    """Load a dataset by source name; raise ValueError naming the choices when unknown."""
    check_dataset_source(source)
    return DATASETS[source]()


__all__ = ["check_dataset_source", "encode_labels", "labels_in_npz", "load_features", "load_labels", "DATASETS", "SampleSet", "load_dataset", "load_digits_samples"]
