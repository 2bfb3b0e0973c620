import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from lsi_app.data.samples import SampleSet, TextItems
from lsi_app.models.extraction import imagenet_transform
from lsi_app.models.torchvision_models import TorchvisionExtractor, check_architecture, hub_cache_path

CPU = torch.device("cpu")

#: Small crops keep ResNet-18 fast on a CPU; layer4 is then 1x1.
IMAGE_SIZE = 32


def resnet18_state(seed: int, num_classes: int = 10) -> dict:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=num_classes).state_dict()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet18_10class.pt"
    torch.save(resnet18_state(seed=0), path)
    return path


@pytest.fixture(scope="module")
def extractor(weights_file):
    return TorchvisionExtractor("resnet18", weights_file, image_size=IMAGE_SIZE)


def reference_features(weights_path, samples) -> np.ndarray:
    """fc-input features computed by hand: every ResNet-18 child up to avgpool, then flatten."""
    model = torchvision.models.resnet18(num_classes=10)
    model.load_state_dict(torch.load(weights_path, weights_only=True))
    model.eval()
    transform = imagenet_transform(IMAGE_SIZE)
    batch = torch.stack([transform(samples.reader.load(i)) for i in range(len(samples))])
    body = nn.Sequential(*list(model.children())[:-1])
    with torch.no_grad():
        return torch.flatten(body(batch), 1).numpy()


def test_weights_file_with_ten_classes_loads(extractor, make_images, weights_file):
    samples = make_images(5)

    result = extractor.extract(samples, device=CPU, batch_size=2)

    assert result.features.shape == (5, 512)
    assert result.kept.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(result.features, reference_features(weights_file, samples), rtol=1e-4, atol=1e-5)


def test_extract_skips_failing_item(extractor, make_images):
    samples = make_images(4, failing={2})

    result = extractor.extract(samples, device=CPU)

    assert result.kept.tolist() == [0, 1, 3]
    assert [entry.item for entry in result.skipped] == ["/data/img2.png"]
    assert result.features.shape == (3, 512)


def test_named_layer4_equals_pooled_default(extractor, weights_file, make_images):
    samples = make_images(3)
    layer4 = TorchvisionExtractor("resnet18", weights_file, feature_layer="layer4", image_size=IMAGE_SIZE)

    pooled = layer4.extract(samples, device=CPU).features
    default = extractor.extract(samples, device=CPU).features

    # ResNet's fc input is the global average pool of layer4.
    np.testing.assert_allclose(pooled, default, rtol=1e-5, atol=1e-6)


def test_named_layer3_has_its_channels(weights_file, make_images):
    layer3 = TorchvisionExtractor("resnet18", weights_file, feature_layer="layer3", image_size=IMAGE_SIZE)

    result = layer3.extract(make_images(2), device=CPU)

    assert result.features.shape == (2, 256)


def test_unknown_feature_layer_lists_names(weights_file):
    with pytest.raises(ValueError) as caught:
        TorchvisionExtractor("resnet18", weights_file, feature_layer="layer5", image_size=IMAGE_SIZE)

    message = str(caught.value)
    assert message.startswith("unknown feature layer 'layer5' for resnet18; close matches: ")
    assert "layer4" in message
    assert "top-level modules: conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc" in message


def test_unknown_architecture_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown torchvision architecture 'resnet19'; close matches: .*resnet18"):
        check_architecture("resnet19")


def test_head_of_other_width_names_both_shapes(tmp_path):
    state = resnet18_state(seed=0)
    state["fc.weight"] = torch.zeros(10, 256)
    path = tmp_path / "narrow_head.pt"
    torch.save(state, path)

    with pytest.raises(ValueError) as caught:
        TorchvisionExtractor("resnet18", path, image_size=IMAGE_SIZE)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"weights file {path} does not fit resnet18: ")
    assert "fc.weight has shape (10, 256) in the file but (10, 512) in the model" in message
    assert "pass the architecture the file was saved from" in message


def test_file_of_other_architecture_lists_keys(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "resnet34.pt"
    torch.save(torchvision.models.resnet34(num_classes=10).state_dict(), path)

    with pytest.raises(ValueError) as caught:
        TorchvisionExtractor("resnet18", path, image_size=IMAGE_SIZE)

    message = str(caught.value)
    assert "\n" not in message
    assert "unexpected keys: layer1.2.conv1.weight, " in message
    assert "more)" in message


def test_missing_keys_are_listed(tmp_path):
    state = resnet18_state(seed=0)
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "incomplete.pt"
    torch.save(state, path)

    with pytest.raises(ValueError, match=r"does not fit resnet18: missing keys: layer1\.0\.conv1\.weight;"):
        TorchvisionExtractor("resnet18", path, image_size=IMAGE_SIZE)


def test_file_without_head_loads_for_head_input(tmp_path, make_images):
    state = {key: value for key, value in resnet18_state(seed=0).items() if not key.startswith("fc.")}
    path = tmp_path / "backbone.pt"
    torch.save(state, path)

    extractor = TorchvisionExtractor("resnet18", path, image_size=IMAGE_SIZE)
    result = extractor.extract(make_images(2), device=CPU)

    assert result.features.shape == (2, 512)
    assert f"{path} has no weights for the head fc; features come from its input" in result.notes


def test_file_without_head_fails_for_head_output(tmp_path):
    state = {key: value for key, value in resnet18_state(seed=0).items() if not key.startswith("fc.")}
    path = tmp_path / "backbone.pt"
    torch.save(state, path)

    with pytest.raises(ValueError, match="missing keys: fc.weight, fc.bias"):
        TorchvisionExtractor("resnet18", path, feature_layer="fc", image_size=IMAGE_SIZE)


def test_data_parallel_file_loads_with_note(tmp_path, make_images):
    torch.manual_seed(0)
    path = tmp_path / "parallel.pt"
    torch.save(nn.DataParallel(torchvision.models.resnet18(num_classes=10)).state_dict(), path)

    result = TorchvisionExtractor("resnet18", path, image_size=IMAGE_SIZE).extract(make_images(2), device=CPU)

    assert result.features.shape == (2, 512)
    assert "stripped the 'module.' prefix from 122 state_dict keys" in result.notes


def test_pickled_model_is_rejected(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(torchvision.models.resnet18(num_classes=10), path)

    with pytest.raises(ValueError, match="contains a pickled model object, which is not loaded"):
        TorchvisionExtractor("resnet18", path, image_size=IMAGE_SIZE)


def test_missing_hub_cache_names_path(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"

    with pytest.raises(ValueError) as caught:
        TorchvisionExtractor("resnet18", image_size=IMAGE_SIZE)

    message = str(caught.value)
    assert f"not in the torch hub cache at {expected}" in message
    assert "downloads are disabled; copy the file there or pass a weights file" in message
    assert hub_cache_path("resnet18") == expected
    assert no_network == []


def test_hub_cache_file_is_used(tmp_path, monkeypatch, no_network, make_images):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(resnet18_state(seed=3, num_classes=1000), cached)

    extractor = TorchvisionExtractor("resnet18", image_size=IMAGE_SIZE)
    result = extractor.extract(make_images(2), device=CPU)

    assert extractor.source == "torchvision:resnet18"
    assert result.features.shape == (2, 512)
    # The stand-in file is not torchvision's, and its name promises another hash.
    assert any("does not have the SHA-256 its name promises (f37072fd...)" in note for note in result.notes)
    assert no_network == []


def test_squeezenet_features_come_from_conv_head(tmp_path, make_images):
    torch.manual_seed(0)
    path = tmp_path / "squeezenet.pt"
    torch.save(torchvision.models.squeezenet1_1(num_classes=4).state_dict(), path)

    result = TorchvisionExtractor("squeezenet1_1", path, image_size=64).extract(make_images(2, size=70), device=CPU)

    assert result.features.shape == (2, 512)


def test_text_data_rejected(extractor):
    texts = SampleSet("texts", np.array(["a"]), None, (), TextItems(("hello",)), "fp")

    with pytest.raises(ValueError, match="extracts image features, but dataset 'texts' has text items"):
        extractor.extract(texts, device=CPU)


def test_fingerprint_stable_and_specific(weights_file, tmp_path, extractor):
    other_weights = tmp_path / "other.pt"
    torch.save(resnet18_state(seed=1), other_weights)

    again = TorchvisionExtractor("resnet18", weights_file, image_size=IMAGE_SIZE)
    others = [
        TorchvisionExtractor("resnet18", other_weights, image_size=IMAGE_SIZE),
        TorchvisionExtractor("resnet18", weights_file, feature_layer="layer4", image_size=IMAGE_SIZE),
        TorchvisionExtractor("resnet18", weights_file, feature_layer="layer3", image_size=IMAGE_SIZE),
        TorchvisionExtractor("resnet18", weights_file, image_size=IMAGE_SIZE + 8),
    ]

    assert again.fingerprint() == extractor.fingerprint()
    assert len(extractor.fingerprint()) == 16
    fingerprints = {extractor.fingerprint(), *(other.fingerprint() for other in others)}
    assert len(fingerprints) == 5
