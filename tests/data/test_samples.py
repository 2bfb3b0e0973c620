import numpy as np

from lsi_app.data import SampleSet


def _sample_set(labels):
    return SampleSet(
        name="toy",
        sample_ids=np.array(["a", "b", "c"]),
        images=np.zeros((3, 2, 2), dtype=np.float32),
        labels=np.array(labels),
        class_names=("x", "y"),
    )


def test_fingerprint_changes_with_labels():
    assert _sample_set([0, 1, 0]).fingerprint != _sample_set([0, 1, 1]).fingerprint


def test_len_and_class_count():
    samples = _sample_set([0, 1, 0])

    assert len(samples) == 3
    assert samples.n_classes == 2
