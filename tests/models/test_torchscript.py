import numpy as np
import pytest
import torch
from torch import nn

from lsi_app.data.samples import SampleSet, VectorItems
from lsi_app.models.extraction import imagenet_transform
from lsi_app.models.torchscript import TorchScriptExtractor

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

CPU = torch.device("cpu")
IMAGE_SIZE = 16


class WithFeatures(nn.Module):
    """A classifier that exports its backbone as ``features``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, kernel_size=3, padding=1)
        self.head = nn.Linear(5, 2)

    @torch.jit.export
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(images)).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class Backbone(nn.Module):
    """A backbone without a head whose forward returns a 4-D feature map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, stride=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


def transformed(samples) -> torch.Tensor:
    transform = imagenet_transform(IMAGE_SIZE)
    return torch.stack([transform(samples.reader.load(i)) for i in range(len(samples))])


@pytest.fixture
def scripted_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "classifier.pt"
    torch.jit.script(WithFeatures()).save(str(path))
    return path


def test_scripted_module_uses_features_method(scripted_path, make_images):
    samples = make_images(5, failing={3})
    extractor = TorchScriptExtractor(scripted_path, image_size=IMAGE_SIZE)

    result = extractor.extract(samples, device=CPU, batch_size=2)

    assert extractor.method == "features"
    assert result.kept.tolist() == [0, 1, 2, 4]
    assert [entry.item for entry in result.skipped] == ["/data/img3.png"]
    module = torch.jit.load(str(scripted_path))
    with torch.no_grad():
        expected = module.features(transformed(samples.subset(np.array([0, 1, 2, 4])))).numpy()
    np.testing.assert_allclose(result.features, expected, rtol=1e-5, atol=1e-6)


def test_forward_output_pooled_without_features(tmp_path, make_images):
    path = tmp_path / "backbone.pth"
    torch.jit.script(Backbone()).save(str(path))
    samples = make_images(3)

    extractor = TorchScriptExtractor(path, image_size=IMAGE_SIZE)
    result = extractor.extract(samples, device=CPU)

    assert extractor.method == "forward"
    assert result.features.shape == (3, 4)
    with torch.no_grad():
        expected = torch.jit.load(str(path))(transformed(samples)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(result.features, expected, rtol=1e-5, atol=1e-6)


def test_traced_module_extracts(tmp_path, make_images):
    path = tmp_path / "traced.pt"
    torch.jit.trace(Backbone(), torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)).save(str(path))

    result = TorchScriptExtractor(path, image_size=IMAGE_SIZE).extract(make_images(2), device=CPU)

    assert result.features.shape == (2, 4)


def test_feature_layer_rejected(scripted_path):
    with pytest.raises(ValueError, match="cannot be cut at a named layer; export the sub-module"):
        TorchScriptExtractor(scripted_path, feature_layer="conv")


def test_hooks_unsupported_on_loaded_scripted_module(scripted_path):
    # The reason feature_layer is rejected: the installed torch refuses hooks on ScriptModules.
    module = torch.jit.load(str(scripted_path))

    with pytest.raises(RuntimeError, match="register_forward_hook is not supported on ScriptModules"):
        module.conv.register_forward_hook(lambda *args: None)
    with pytest.raises(RuntimeError, match="not supported on ScriptModules"):
        module.conv.register_forward_pre_hook(lambda *args: None)


def test_state_dict_file_rejected(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(WithFeatures().state_dict(), path)

    with pytest.raises(ValueError, match="is not a TorchScript archive"):
        TorchScriptExtractor(path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"TorchScript file .*absent\.pt not found"):
        TorchScriptExtractor(tmp_path / "absent.pt")


def test_vector_data_rejected(scripted_path):
    vectors = SampleSet("vectors", np.array(["a"]), None, (), VectorItems(np.zeros((1, 3))), "fp")

    with pytest.raises(ValueError, match="has vector items"):
        TorchScriptExtractor(scripted_path).extract(vectors, device=CPU)


def test_fingerprint_stable_and_specific(scripted_path, tmp_path):
    torch.manual_seed(1)
    other_path = tmp_path / "other.pt"
    torch.jit.script(WithFeatures()).save(str(other_path))

    first = TorchScriptExtractor(scripted_path).fingerprint()
    again = TorchScriptExtractor(scripted_path).fingerprint()
    other_weights = TorchScriptExtractor(other_path).fingerprint()
    other_size = TorchScriptExtractor(scripted_path, image_size=112).fingerprint()

    assert first == again
    assert len({first, other_weights, other_size}) == 3
