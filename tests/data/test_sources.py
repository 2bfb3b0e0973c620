import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lsi_app.data import ItemKind, SourceKind, open_dataset, parse_dataset_source


@pytest.fixture
def files(tmp_path):
    Image.new("RGB", (4, 4), "red").save(tmp_path / "a.png")
    (tmp_path / "folder" / "cls").mkdir(parents=True)
    Image.new("RGB", (4, 4), "blue").save(tmp_path / "folder" / "cls" / "b.png")
    pd.DataFrame({"path": ["a.png"], "label": ["x"]}).to_csv(tmp_path / "manifest.csv", index=False)
    pd.DataFrame({"text": ["hello"], "label": ["x"]}).to_csv(tmp_path / "texts.csv", index=False)
    pd.DataFrame({"f0": [1.0], "f1": [2.0]}).to_parquet(tmp_path / "vectors.parquet")
    pd.DataFrame({"name": ["a"]}).to_csv(tmp_path / "other.csv", index=False)
    np.save(tmp_path / "vectors.npy", np.ones((2, 3)))
    (tmp_path / "notes.txt").write_text("x")
    return tmp_path


@pytest.mark.parametrize(
    "relative, kind",
    [
        ("folder", SourceKind.FOLDER),
        ("manifest.csv", SourceKind.MANIFEST),
        ("texts.csv", SourceKind.TEXT),
        ("vectors.parquet", SourceKind.EMBEDDINGS),
        ("vectors.npy", SourceKind.EMBEDDINGS),
    ],
)
def test_detects_kind_from_path(files, relative, kind):
    assert parse_dataset_source(str(files / relative)).kind is kind


def test_explicit_prefix_wins(files):
    assert parse_dataset_source(f"manifest:{files / 'manifest.csv'}").kind is SourceKind.MANIFEST
    assert parse_dataset_source(f"folder:{files / 'folder'}").kind is SourceKind.FOLDER


def test_torchvision_source_and_split(files):
    train = parse_dataset_source(f"torchvision:cifar10:{files}")
    test = parse_dataset_source(f"torchvision:fashion-mnist-test:{files}")

    assert (train.dataset_name, train.train) == ("cifar10", True)
    assert (test.dataset_name, test.train) == ("fashion-mnist", False)


@pytest.mark.parametrize(
    "source, message",
    [
        ("imagenet", "built-in datasets: digits"),
        ("/no/such/dir", "not found: no such file or folder"),
        ("torchvision:cifar10", "torchvision:NAME:ROOT"),
        ("torchvision:cifar10:/no/such/root", "torchvision root folder /no/such/root not found"),
    ],
)
def test_invalid_sources_name_the_fix(source, message):
    with pytest.raises(ValueError, match=message):
        parse_dataset_source(source)


def test_unknown_table_and_type_name_the_file(files):
    with pytest.raises(ValueError, match="needs a 'path' column"):
        parse_dataset_source(str(files / "other.csv"))
    with pytest.raises(ValueError, match="unsupported type .txt"):
        parse_dataset_source(str(files / "notes.txt"))
    with pytest.raises(ValueError, match="must be a file"):
        parse_dataset_source(f"manifest:{files / 'folder'}")


def test_open_dataset_dispatches(files):
    assert open_dataset(str(files / "folder")).kind is ItemKind.IMAGE
    assert open_dataset(str(files / "texts.csv")).kind is ItemKind.TEXT
    assert open_dataset(str(files / "vectors.npy")).kind is ItemKind.VECTOR
    assert len(open_dataset(str(files / "manifest.csv"))) == 1


def test_labels_option_only_for_embeddings(files):
    with pytest.raises(ValueError, match="--labels applies to embeddings sources only"):
        open_dataset(str(files / "folder"), labels=files / "vectors.npy")
