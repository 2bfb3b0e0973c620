import pickle

import numpy as np
import pytest

from lsi_app.data import ArrayImages, ItemKind, SampleSet, SkippedItem, TextItems, VectorItems, fingerprint_of


def _sample_set(labels=(0, 1, 0)):
    return SampleSet(
        name="toy",
        sample_ids=np.array(["a", "b", "c"]),
        labels=np.array(labels),
        class_names=("x", "y"),
        reader=ArrayImages(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 2, 2)),
        fingerprint=fingerprint_of("toy", np.array(labels)),
        paths=np.array(["/p/a.png", "/p/b.png", "/p/c.png"]),
        columns={"split": np.array(["train", "val", "train"])},
    )


def test_fingerprint_changes_with_labels():
    assert fingerprint_of("toy", np.array([0, 1, 0])) != fingerprint_of("toy", np.array([0, 1, 1]))


def test_fingerprint_of_strings_and_numbers():
    first = fingerprint_of(np.array(["é", "b"]), 3)

    assert first == fingerprint_of(np.array(["é", "b"]), 3)
    assert first != fingerprint_of(np.array(["é", "c"]), 3)
    assert len(first) == 16


def test_len_kind_and_class_count():
    samples = _sample_set()

    assert len(samples) == 3
    assert samples.n_classes == 2
    assert samples.kind is ItemKind.IMAGE
    assert samples.labelled


def test_subset_keeps_columns_and_adds_skipped():
    samples = _sample_set()

    subset = samples.subset(np.array([2, 0]), [SkippedItem("/p/b.png", "truncated")])

    assert subset.sample_ids.tolist() == ["c", "a"]
    assert subset.labels.tolist() == [0, 0]
    assert subset.paths.tolist() == ["/p/c.png", "/p/a.png"]
    assert subset.columns["split"].tolist() == ["train", "train"]
    assert subset.skipped == (SkippedItem("/p/b.png", "truncated"),)
    assert subset.fingerprint == samples.fingerprint
    np.testing.assert_array_equal(subset.images[1], samples.images[0])


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        _sample_set(labels=(0, 1))


def test_with_labels_marks_pseudo_labels():
    samples = _sample_set().with_labels(np.array([1, 1, 0]), ("cluster 0", "cluster 1"), pseudo=True)

    assert samples.pseudo_labels
    assert samples.labels.dtype == np.int64


def test_array_images_gray_and_rgb():
    gray = ArrayImages(np.ones((1, 8, 8), dtype=np.float32))
    rgb = ArrayImages(np.full((1, 32, 32, 3), 7, dtype=np.uint8))

    assert gray.load(0).mode == "RGB"
    assert gray.thumbnail(0).shape == (64, 64, 3)
    assert gray.thumbnail(0).max() == 255
    assert rgb.thumbnail(0).shape == (64, 64, 3)
    assert rgb.load(0).getpixel((0, 0)) == (7, 7, 7)
    with pytest.raises(ValueError, match="expected images of shape"):
        ArrayImages(np.zeros((2, 4, 4, 2), dtype=np.uint8))


def test_text_and_vector_previews():
    texts = TextItems(("short", "word " * 100))
    vectors = VectorItems(np.arange(12, dtype=np.float32).reshape(2, 6))

    assert texts.thumbnail(0) == "short"
    assert texts.thumbnail(1).endswith("…")
    assert len(texts.thumbnail(1)) <= 160
    assert vectors.thumbnail(1) == "[6, 7, 8, 9, …] (6 features)"
    assert vectors.subset(np.array([1])).load(0).tolist() == [6, 7, 8, 9, 10, 11]


def test_readers_pickle():
    samples = _sample_set()

    restored = pickle.loads(pickle.dumps(samples))

    assert restored.sample_ids.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(restored.images, samples.images)
