import numpy as np
import pytest

from lsi_app.data import load_dataset, load_digits_samples


def test_digits_shapes_and_ranges():
    samples = load_digits_samples()

    assert len(samples) == 1797
    assert samples.images.shape == (1797, 8, 8)
    assert samples.images.dtype == np.float32
    assert samples.images.min() == 0.0
    assert samples.images.max() == 1.0
    assert samples.class_names == tuple(str(d) for d in range(10))
    assert set(np.unique(samples.labels)) == set(range(10))


def test_digits_ids_unique_and_fingerprint_stable():
    first = load_digits_samples()
    second = load_digits_samples()

    assert len(set(first.sample_ids)) == len(first)
    assert first.sample_ids[0] == "digits-0000"
    assert first.fingerprint == second.fingerprint


def test_load_dataset_unknown_source_names_choices():
    with pytest.raises(ValueError, match=r"unknown dataset source 'cifar'; available: digits"):
        load_dataset("cifar")
