import hashlib
import zipfile

import pytest
import torch
from torch import nn

from lsi_app.models.weights import file_digest, is_torchscript, load_state_dict

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

#: Appended to by Tripwire.__setstate__, which runs only when a pickled Tripwire is unpickled.
TRIPPED: list[bool] = []


class Tripwire(nn.Module):
    """A model whose unpickling leaves a trace, to prove that nothing unpickles it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def __setstate__(self, state) -> None:
        TRIPPED.append(True)
        super().__setstate__(state)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


@pytest.fixture
def state_dict():
    torch.manual_seed(0)
    return Tiny().state_dict()


def test_is_torchscript_detects_scripted_module_by_content(tmp_path):
    path = tmp_path / "model.pt"
    torch.jit.script(Tiny()).save(str(path))

    assert is_torchscript(path)


def test_is_torchscript_false_for_state_dict(tmp_path, state_dict):
    path = tmp_path / "model.pt"
    torch.save(state_dict, path)

    assert not is_torchscript(path)


def test_is_torchscript_false_for_other_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip file")
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("a/code/readme.txt", "code without constants.pkl")

    assert not is_torchscript(junk)
    assert not is_torchscript(other_zip)
    assert not is_torchscript(tmp_path / "missing.pt")


def test_load_state_dict_raw(tmp_path, state_dict):
    path = tmp_path / "weights.pt"
    torch.save(state_dict, path)

    loaded, notes = load_state_dict(path)

    assert list(loaded) == ["linear.weight", "linear.bias"]
    torch.testing.assert_close(loaded["linear.weight"], state_dict["linear.weight"])
    assert notes == []


@pytest.mark.parametrize("entry", ["state_dict", "model", "model_state_dict"])
def test_load_state_dict_from_checkpoint(tmp_path, state_dict, entry):
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 7, "optimizer_lr": 0.1, entry: state_dict}, path)

    loaded, _ = load_state_dict(path)

    torch.testing.assert_close(loaded["linear.bias"], state_dict["linear.bias"])


def test_load_state_dict_strips_data_parallel_prefix(tmp_path, state_dict):
    path = tmp_path / "parallel.pt"
    torch.save(nn.DataParallel(Tiny()).state_dict(), path)

    loaded, notes = load_state_dict(path)

    assert list(loaded) == ["linear.weight", "linear.bias"]
    assert notes == ["stripped the 'module.' prefix from 2 state_dict keys"]


def test_load_state_dict_keeps_partial_prefix(tmp_path, state_dict):
    path = tmp_path / "mixed.pt"
    torch.save({"module.linear.weight": state_dict["linear.weight"], "linear.bias": state_dict["linear.bias"]}, path)

    loaded, notes = load_state_dict(path)

    assert "module.linear.weight" in loaded
    assert notes == []


def test_load_state_dict_rejects_pickled_model_without_unpickling(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(Tripwire(), path)
    TRIPPED.clear()

    with pytest.raises(ValueError) as caught:
        load_state_dict(path)

    message = str(caught.value)
    assert message.startswith(f"{path} contains a pickled model object, which is not loaded because unpickling")
    assert "torch.save(model.state_dict(), ...)" in message
    assert "--model torchvision:ARCH:FILE" in message
    assert "torch.jit.script(model).save(...)" in message
    assert TRIPPED == []
    # The tripwire works: a full unpickle (which load_state_dict never does) sets it.
    torch.load(path, weights_only=False)
    assert TRIPPED == [True]


def test_load_state_dict_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"weights file .*absent\.pt not found"):
        load_state_dict(tmp_path / "absent.pt")


def test_load_state_dict_unreadable_file(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"hello, not a checkpoint")

    with pytest.raises(ValueError, match="could not be read by torch.load"):
        load_state_dict(path)


def test_load_state_dict_dict_without_tensors(tmp_path):
    path = tmp_path / "metrics.pt"
    torch.save({"epoch": 3, "accuracy": 0.9}, path)

    with pytest.raises(ValueError, match="contains a dict with keys 'epoch', 'accuracy' but no state_dict"):
        load_state_dict(path)


def test_load_state_dict_rejects_torchscript(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.script(Tiny()).save(str(path))

    with pytest.raises(ValueError, match="is a TorchScript archive; pass it as --model"):
        load_state_dict(path)


def test_file_digest_is_sha256(tmp_path):
    path = tmp_path / "bytes.bin"
    path.write_bytes(b"abc" * 1000)

    assert file_digest(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
