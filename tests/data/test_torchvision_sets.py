import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets.cifar

from lsi_app.data.samples import ArrayImages, ItemKind
from lsi_app.data.torchvision_sets import canonical_dataset_name, open_torchvision_dataset

MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the MNIST files (big-endian header)."""
    magic = 0x0800 + array.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_fake_mnist(root: Path, class_folder: str, n_train: int = 20, n_test: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    raw = root / class_folder / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


def make_fake_cifar(root: Path, hundred: bool, n_per_batch: int = 10) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write pickled batches in the layout of the CIFAR python version.

    Returns the (CHW rows, labels) written to each batch file, by file name.
    """
    rng = np.random.default_rng(1)
    if hundred:
        folder, batch_names, label_key = root / "cifar-100-python", ["train", "test"], "fine_labels"
        meta_name, meta = "meta", {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": []}
        n_classes = 100
    else:
        folder, label_key = root / "cifar-10-batches-py", "labels"
        batch_names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        meta_name, meta = "batches.meta", {"label_names": [f"class{i}" for i in range(10)]}
        n_classes = 10
    folder.mkdir(parents=True)
    batches = {}
    for name in batch_names:
        data = rng.integers(0, 256, size=(n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, n_classes, size=n_per_batch).tolist()
        with open(folder / name, "wb") as file:
            pickle.dump({"data": data, label_key: labels}, file)
        batches[name] = (data, labels)
    with open(folder / meta_name, "wb") as file:
        pickle.dump(meta, file)
    return batches


@pytest.fixture
def skip_cifar_md5(monkeypatch):
    """Replace torchvision's MD5 check of the CIFAR files by an existence check.

    torchvision.datasets.cifar.check_integrity compares each file with the MD5
    sum of the real CIFAR release, which fake files cannot match. Only
    torchvision's check is patched, and the code under test runs unchanged.
    """
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.mark.parametrize("folder, name", [("MNIST", "mnist"), ("FashionMNIST", "Fashion-MNIST")])
def test_mnist_train_split(tmp_path, folder, name):
    arrays = make_fake_mnist(tmp_path, folder)

    samples = open_torchvision_dataset(name, tmp_path)

    assert isinstance(samples.reader, ArrayImages)
    assert samples.kind is ItemKind.IMAGE
    assert samples.images.dtype == np.uint8
    assert samples.images.shape == (20, 28, 28)
    np.testing.assert_array_equal(samples.images, arrays["train-images-idx3-ubyte"])
    assert samples.labels.dtype == np.int64
    np.testing.assert_array_equal(samples.labels, arrays["train-labels-idx1-ubyte"])
    assert len(samples.class_names) == 10
    key = canonical_dataset_name(name)
    assert samples.sample_ids[3] == f"{key}-train-00003"
    assert samples.name == f"torchvision:{key}:{tmp_path}"
    assert set(samples.columns["split"]) == {"train"}
    assert samples.reader.load(0).mode == "RGB"


def test_mnist_class_names_from_torchvision(tmp_path):
    make_fake_mnist(tmp_path, "FashionMNIST")

    samples = open_torchvision_dataset("fashion_mnist", tmp_path)

    assert samples.class_names[0] == "T-shirt/top"
    assert samples.class_names[9] == "Ankle boot"


def test_mnist_test_split(tmp_path):
    arrays = make_fake_mnist(tmp_path, "MNIST")

    train = open_torchvision_dataset("mnist", tmp_path)
    test = open_torchvision_dataset("MNIST", tmp_path, train=False)

    assert len(test) == 6
    np.testing.assert_array_equal(test.images, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert test.sample_ids[0] == "mnist-test-00000"
    assert set(test.columns["split"]) == {"test"}
    assert test.fingerprint != train.fingerprint


def test_cifar10_train_and_test(tmp_path, skip_cifar_md5):
    batches = make_fake_cifar(tmp_path, hundred=False)

    train = open_torchvision_dataset("CIFAR10", tmp_path)
    test = open_torchvision_dataset("cifar-10", tmp_path, train=False)

    assert train.images.shape == (50, 32, 32, 3)
    assert train.images.dtype == np.uint8
    first_data, first_labels = batches["data_batch_1"]
    # CIFAR rows store the red, green and blue planes one after another.
    np.testing.assert_array_equal(train.images[0], first_data[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert train.labels[:10].tolist() == first_labels
    assert train.labels.dtype == np.int64
    assert train.class_names == tuple(f"class{i}" for i in range(10))
    assert train.sample_ids[42] == "cifar10-train-00042"
    assert len(test) == 10
    assert test.labels.tolist() == batches["test_batch"][1]
    assert test.sample_ids[0] == "cifar10-test-00000"


def test_cifar100_fine_labels(tmp_path, skip_cifar_md5):
    batches = make_fake_cifar(tmp_path, hundred=True)

    samples = open_torchvision_dataset("cifar_100", tmp_path)

    assert samples.images.shape == (10, 32, 32, 3)
    assert samples.labels.tolist() == batches["train"][1]
    assert len(samples.class_names) == 100
    assert samples.class_names[7] == "fine7"
    assert samples.name == f"torchvision:cifar100:{tmp_path}"


def test_fingerprint_stable_across_opens(tmp_path):
    make_fake_mnist(tmp_path, "MNIST")

    first = open_torchvision_dataset("mnist", tmp_path)
    second = open_torchvision_dataset("mnist", tmp_path)

    assert first.fingerprint == second.fingerprint


def test_cifar10_absent_names_folder_and_files(tmp_path):
    with pytest.raises(ValueError) as raised:
        open_torchvision_dataset("cifar10", tmp_path)

    message = str(raised.value)
    assert f"{tmp_path / 'cifar-10-batches-py'}/" in message
    for name in ["data_batch_1", "data_batch_5", "test_batch", "batches.meta"]:
        assert name in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "Downloads are disabled" in message


def test_mnist_absent_names_folder_and_files(tmp_path):
    with pytest.raises(ValueError) as raised:
        open_torchvision_dataset("fashionmnist", tmp_path)

    message = str(raised.value)
    assert f"{tmp_path / 'FashionMNIST' / 'raw'}/" in message
    for name in MNIST_FILES:
        assert name in message


def test_mnist_one_file_missing_listed(tmp_path):
    make_fake_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()

    with pytest.raises(ValueError, match=r"missing t10k-labels-idx1-ubyte\."):
        open_torchvision_dataset("mnist", tmp_path)


def test_cifar_fake_files_fail_md5_check(tmp_path):
    make_fake_cifar(tmp_path, hundred=False)

    with pytest.raises(ValueError, match="could not be read by torchvision.*unmodified copies"):
        open_torchvision_dataset("cifar10", tmp_path)


def test_mnist_corrupt_file_rejected(tmp_path):
    make_fake_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"not an idx file")

    with pytest.raises(ValueError, match="could not be read by torchvision"):
        open_torchvision_dataset("mnist", tmp_path)


@pytest.mark.parametrize("name", ["imagenet", "cifar", ""])
def test_unknown_name_lists_choices(tmp_path, name):
    with pytest.raises(ValueError) as raised:
        open_torchvision_dataset(name, tmp_path)

    message = str(raised.value)
    assert repr(name) in message
    for choice in ["cifar10", "cifar100", "mnist", "fashionmnist"]:
        assert choice in message
