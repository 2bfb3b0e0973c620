import numpy as np
import pytest
import torch

from lsi_app.data import load_digits_samples
from lsi_app.models import CNNConfig, check_model_source, extract_features, train_cnn

FAST = CNNConfig(epochs=2, feature_dim=16)


@pytest.fixture(scope="module")
def subset():
    samples = load_digits_samples()
    return samples.images[:300], samples.labels[:300]


def test_train_cnn_reports_progress_and_learns(subset):
    images, labels = subset
    reports = []

    model = train_cnn(images, labels, 10, CNNConfig(epochs=10), progress=lambda f, m: reports.append((f, m)))

    assert [f for f, _ in reports] == pytest.approx([(epoch + 1) / 10 for epoch in range(10)])
    assert "epoch 10/10" in reports[-1][1]
    assert not model.training
    with torch.no_grad():
        predictions = model(torch.as_tensor(images)).argmax(1).numpy()
    assert (predictions == labels).mean() > 0.8


def test_train_cnn_is_seeded(subset):
    images, labels = subset

    first = extract_features(train_cnn(images, labels, 10, FAST), images)
    second = extract_features(train_cnn(images, labels, 10, FAST), images)
    other_seed = extract_features(train_cnn(images, labels, 10, CNNConfig(epochs=2, feature_dim=16, seed=1)), images)

    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other_seed)


def test_extract_features_shape_and_batching(subset):
    images, labels = subset
    model = train_cnn(images, labels, 10, FAST)

    whole = extract_features(model, images, batch_size=512)
    batched = extract_features(model, images, batch_size=7)

    assert whole.shape == (300, 16)
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)


def test_check_model_source_names_choices():
    with pytest.raises(ValueError, match="unknown model source 'resnet50'; available: cnn"):
        check_model_source("resnet50")
