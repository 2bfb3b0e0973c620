import numpy as np
import pytest
import torch

from lsi_app.data import load_digits_samples
from lsi_app.models import CNNConfig, CNNExtractor, SmallCNN, check_model_source, extract_features, train_cnn
from lsi_app.models.cnn import CNN_IMAGE_SIZE

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
    with pytest.raises(ValueError) as caught:
        check_model_source("resnet50")

    assert str(caught.value) == (
        "unknown model source 'resnet50' (for the torchvision model, pass torchvision:resnet50); available: "
        "auto, cnn, minilm, identity, torchvision:ARCH[:WEIGHTS_FILE], or the path of a TorchScript file"
    )


@pytest.fixture(scope="module")
def digits_subset():
    return load_digits_samples().subset(np.arange(300))


def test_cnn_extractor_reproduces_train_and_extract(digits_subset):
    reports = []

    result = CNNExtractor(FAST).extract(
        digits_subset, device=torch.device("cpu"), progress=lambda f, m: reports.append((f, m))
    )

    expected = extract_features(train_cnn(digits_subset.images, digits_subset.labels, 10, FAST), digits_subset.images)
    np.testing.assert_array_equal(result.features, expected)
    assert result.kept.tolist() == list(range(300))
    assert result.skipped == []
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert any("Training CNN: epoch 2/2" in message for _, message in reports)
    assert "Extracting CNN features: 300/300" in reports[-1][1]


def test_cnn_extractor_rgb_images(make_images):
    labels = [0, 1] * 5
    samples = make_images(10, size=20, failing={4}, labels=labels)
    reports = []

    result = CNNExtractor(FAST).extract(
        samples, device=torch.device("cpu"), progress=lambda f, m: reports.append((f, m))
    )

    assert result.features.shape == (9, 16)
    assert result.features.dtype == np.float32
    assert np.isfinite(result.features).all()
    assert result.kept.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [entry.item for entry in result.skipped] == ["/data/img4.png"]
    assert result.notes == [f"the in-app CNN trained on 9 images resized to {CNN_IMAGE_SIZE}x{CNN_IMAGE_SIZE} RGB"]
    assert any(message.startswith("Extracting features: ") for _, message in reports)  # the loading pass
    assert reports[-1][0] == 1.0


def test_cnn_extractor_requires_labels(make_images):
    with pytest.raises(ValueError) as caught:
        CNNExtractor(FAST).extract(make_images(3), device=torch.device("cpu"))

    assert str(caught.value) == (
        "dataset 'test-images' has no labels: the in-app CNN trains on labels; for unlabelled images pass a "
        "pretrained model, --model torchvision:ARCH:WEIGHTS or a TorchScript file"
    )


def test_small_cnn_three_channels():
    model = SmallCNN((32, 32), n_classes=4, feature_dim=8, in_channels=3)

    features = model.features(torch.zeros(5, 3, 32, 32))

    assert features.shape == (5, 8)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 4)


def test_cnn_fingerprint_stable_and_specific():
    assert CNNExtractor(FAST).fingerprint() == CNNExtractor(CNNConfig(epochs=2, feature_dim=16)).fingerprint()
    assert CNNExtractor(FAST).fingerprint() != CNNExtractor(CNNConfig(epochs=3, feature_dim=16)).fingerprint()
    assert CNNExtractor(FAST).fingerprint() != CNNExtractor(CNNConfig(epochs=2, feature_dim=16, seed=1)).fingerprint()
