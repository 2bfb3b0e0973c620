from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lsi_app.data.samples import SkippedItem
from lsi_app.models.extraction import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    extract_batches,
    imagenet_transform,
    iter_loaded_batches,
    pool_features,
)

CPU = torch.device("cpu")


def small_transform(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32).transpose(2, 0, 1) / 255.0)


class ColourMeans(nn.Module):
    """Per-channel means, with a dropout that would make train-mode outputs random."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.dropout(images.mean(dim=(2, 3)))


def expected_means(samples, indices) -> np.ndarray:
    return np.stack([small_transform(samples.reader.load(i)).mean(dim=(1, 2)).numpy() for i in indices])


def test_extract_batches_skips_failing_items(make_images):
    samples = make_images(7, failing={1, 4})

    result = extract_batches(ColourMeans(), samples, small_transform, device=CPU, batch_size=3)

    assert result.kept.tolist() == [0, 2, 3, 5, 6]
    assert result.kept.dtype == np.int64
    assert [entry.item for entry in result.skipped] == ["/data/img1.png", "/data/img4.png"]
    assert all(isinstance(entry, SkippedItem) for entry in result.skipped)
    assert "cannot identify image file (item 1)" == result.skipped[0].reason
    assert result.features.shape == (5, 3)
    assert result.features.dtype == np.float32
    np.testing.assert_allclose(result.features, expected_means(samples, [0, 2, 3, 5, 6]), rtol=1e-6)


def test_extract_batches_uses_sample_id_without_paths(make_images):
    samples = make_images(3, failing={2})
    samples = replace(samples, paths=None)

    result = extract_batches(ColourMeans(), samples, small_transform, device=CPU)

    assert result.skipped == [SkippedItem("img2.png", "cannot identify image file (item 2)")]


def test_extract_batches_puts_module_in_eval_mode(make_images):
    samples = make_images(4)
    model = ColourMeans().train()

    first = extract_batches(model, samples, small_transform, device=CPU)
    second = extract_batches(model, samples, small_transform, device=CPU)

    assert not model.training
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_allclose(first.features, expected_means(samples, range(4)), rtol=1e-6)


def test_extract_batches_order_independent_of_batch_size(make_images):
    samples = make_images(11, failing={5})

    one_batch = extract_batches(ColourMeans(), samples, small_transform, device=CPU, batch_size=64)
    small_batches = extract_batches(ColourMeans(), samples, small_transform, device=CPU, batch_size=2)

    np.testing.assert_array_equal(small_batches.kept, one_batch.kept)
    np.testing.assert_array_equal(small_batches.features, one_batch.features)


def test_extract_batches_reports_progress_per_batch(make_images):
    samples = make_images(7)
    reports = []

    extract_batches(
        ColourMeans(), samples, small_transform, device=CPU, batch_size=3, progress=lambda f, m: reports.append((f, m))
    )

    assert [message for _, message in reports] == [
        "Extracting features: 3/7",
        "Extracting features: 6/7",
        "Extracting features: 7/7",
    ]
    assert [fraction for fraction, _ in reports] == pytest.approx([3 / 7, 6 / 7, 1.0])


def test_extract_batches_all_items_failing(make_images):
    samples = make_images(3, failing={0, 1, 2})

    result = extract_batches(ColourMeans(), samples, small_transform, device=CPU)

    assert result.features.shape == (0, 0)
    assert result.kept.shape == (0,)
    assert len(result.skipped) == 3


def test_extract_batches_accepts_plain_function(make_images):
    samples = make_images(3)

    result = extract_batches(lambda batch: batch[:, 0, :2, :2], samples, small_transform, device=CPU)

    assert result.features.shape == (3, 4)  # (3, 2, 2) flattened to one row per item


def test_iter_loaded_batches_rejects_zero_batch_size(make_images):
    with pytest.raises(ValueError, match="batch size must be >= 1, got 0"):
        next(iter_loaded_batches(make_images(2), batch_size=0))


def test_imagenet_transform_shape_and_normalisation():
    image = Image.new("RGB", (48, 30), color=(255, 0, 128))

    tensor = imagenet_transform(16)(image)

    assert tensor.shape == (3, 16, 16)
    assert tensor.dtype == torch.float32
    expected = [(value / 255 - mean) / std for value, mean, std in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD)]
    np.testing.assert_allclose(tensor.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)


def test_imagenet_transform_crops_centre():
    # Left third black, middle white, right third black: the centre crop of the resized image is all white.
    pixels = np.zeros((60, 180, 3), dtype=np.uint8)
    pixels[:, 60:120] = 255
    image = Image.fromarray(pixels)

    tensor = imagenet_transform(32)(image)

    white = [(1 - mean) / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD)]
    np.testing.assert_allclose(tensor[:, 8:24, 8:24].mean(dim=(1, 2)).numpy(), white, atol=1e-4)


def test_pool_features_averages_4d_outputs():
    outputs = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)

    pooled = pool_features(outputs)

    assert pooled.shape == (2, 3)
    np.testing.assert_allclose(pooled.numpy(), outputs.mean(dim=(2, 3)).numpy())


def test_pool_features_flattens_other_shapes():
    assert pool_features(torch.zeros(2, 5)).shape == (2, 5)
    assert pool_features(torch.zeros(2, 4, 6)).shape == (2, 24)


def test_pool_features_rejects_tuples():
    with pytest.raises(ValueError, match="returned tuple"):
        pool_features((torch.zeros(2, 5),))
