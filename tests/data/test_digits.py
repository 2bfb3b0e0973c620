import numpy as np
import pytest

from lsi_app.data import open_dataset, load_digits_samples


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


def test_open_dataset_unknown_source_names_choices():
    with pytest.raises(ValueError, match=r"dataset source 'cifar' not found: no such file or folder; built-in datasets: digits"):
        open_dataset("cifar")


def test_digits_thumbnail_is_sharp_rgb():
    samples = load_digits_samples()

    thumbnail = samples.reader.thumbnail(0)

    assert thumbnail.shape == (64, 64, 3)
    assert thumbnail.dtype == np.uint8
    np.testing.assert_array_equal(thumbnail[:8, :8, 0], np.full((8, 8), thumbnail[0, 0, 0]))
