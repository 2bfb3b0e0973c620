import pytest
import torch
import torchvision
from torch import nn

from lsi_app.data.samples import ItemKind
from lsi_app.models import (
    MODELS,
    CNNConfig,
    CNNExtractor,
    IdentityExtractor,
    check_model_source,
    open_model,
    resolve_model_source,
)
from lsi_app.models.text import MiniLMExtractor
from lsi_app.models.torchscript import TorchScriptExtractor
from lsi_app.models.torchvision_models import TorchvisionExtractor

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_models_names_the_named_sources():
    assert MODELS == ("auto", "cnn", "minilm", "identity")


@pytest.mark.parametrize(
    ("kind", "expected"), [(ItemKind.IMAGE, "cnn"), (ItemKind.TEXT, "minilm"), (ItemKind.VECTOR, "identity")]
)
def test_resolve_auto_by_kind(kind, expected):
    assert resolve_model_source("auto", kind) == expected


def test_resolve_keeps_explicit_source():
    assert resolve_model_source("torchvision:resnet18", ItemKind.IMAGE) == "torchvision:resnet18"


def test_open_auto_for_each_kind():
    image = open_model("auto", ItemKind.IMAGE, cnn_config=CNNConfig(epochs=1))

    assert isinstance(image, CNNExtractor)
    assert image.config == CNNConfig(epochs=1)
    assert image.source == "auto"
    assert isinstance(open_model("auto", ItemKind.TEXT), MiniLMExtractor)
    assert isinstance(open_model("auto", ItemKind.VECTOR), IdentityExtractor)


@pytest.mark.parametrize(
    ("source", "kind", "fitting"),
    [
        ("minilm", ItemKind.IMAGE, "use cnn, torchvision:ARCH[:WEIGHTS_FILE] or a TorchScript file (or auto)"),
        ("identity", ItemKind.IMAGE, "use cnn, torchvision:ARCH[:WEIGHTS_FILE] or a TorchScript file (or auto)"),
        ("cnn", ItemKind.TEXT, "use minilm (or auto)"),
        ("torchvision:resnet18", ItemKind.VECTOR, "use identity (or auto)"),
    ],
)
def test_kind_mismatch_names_fitting_choice(source, kind, fitting):
    message = f"model source {source!r} does not fit {kind.value} data; {fitting}"

    with pytest.raises(ValueError) as opened:
        open_model(source, kind)
    with pytest.raises(ValueError) as checked:
        check_model_source(source, kind)

    assert str(opened.value) == message
    assert str(checked.value) == message


def test_torchvision_weights_path_may_contain_colons(tmp_path):
    folder = tmp_path / "run:3"
    folder.mkdir()
    path = folder / "weights:best.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    source = f"torchvision:resnet18:{path}"

    check_model_source(source, ItemKind.IMAGE)
    extractor = open_model(source, ItemKind.IMAGE, feature_layer="layer3", image_size=32)

    assert isinstance(extractor, TorchvisionExtractor)
    assert extractor.weights_path == path
    assert extractor.source == source
    assert extractor.image_size == 32


def test_torchscript_named_pth_detected(tmp_path):
    path = tmp_path / "model.pth"
    torch.jit.script(Tiny()).save(str(path))

    check_model_source(str(path), ItemKind.IMAGE)
    extractor = open_model(str(path), ItemKind.IMAGE, image_size=64)

    assert isinstance(extractor, TorchScriptExtractor)
    assert extractor.image_size == 64


def test_state_dict_path_needs_architecture(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(Tiny().state_dict(), path)

    with pytest.raises(ValueError) as caught:
        open_model(str(path), ItemKind.IMAGE)

    assert str(caught.value) == f"{path} contains a state_dict without an architecture; pass --model torchvision:ARCH:{path}"


def test_pickled_model_path_rejected(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(Tiny(), path)

    with pytest.raises(ValueError, match="contains a pickled model object, which is not loaded because unpickling"):
        check_model_source(str(path))


def test_unknown_source_lists_choices(tmp_path):
    with pytest.raises(ValueError, match=r"unknown model source '.*nothing\.pt'; available: auto, cnn"):
        check_model_source(str(tmp_path / "nothing.pt"))


def test_missing_torchvision_weights_file(tmp_path):
    missing = tmp_path / "missing.pt"

    with pytest.raises(ValueError, match=r"weights file .*missing\.pt in model source .* not found"):
        check_model_source(f"torchvision:resnet18:{missing}")


def test_unknown_torchvision_architecture():
    with pytest.raises(ValueError, match="unknown torchvision architecture 'resnet19'"):
        check_model_source("torchvision:resnet19")


def test_torchvision_source_without_architecture():
    with pytest.raises(ValueError, match="names no architecture; pass torchvision:ARCH"):
        check_model_source("torchvision:")


def test_feature_layer_rejected_for_named_models():
    with pytest.raises(ValueError, match=r"a feature layer \('layer4'\) applies to torchvision and TorchScript"):
        open_model("auto", ItemKind.IMAGE, feature_layer="layer4")
