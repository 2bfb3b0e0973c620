import numpy as np
import pandas as pd
import pytest

from lsi_app.data import encode_labels, labels_in_npz, load_features, load_labels


def test_load_features_each_format(tmp_path):
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "f.npy", features)
    np.savez(tmp_path / "f.npz", embeddings=features, labels=np.arange(4))
    table = pd.DataFrame(features, columns=["a", "b", "c"])
    table["label"] = [0, 1, 0, 1]
    table.to_parquet(tmp_path / "f.parquet")

    for name in ["f.npy", "f.npz", "f.parquet"]:
        np.testing.assert_array_equal(load_features(tmp_path / name), features)


def test_load_labels_each_format(tmp_path):
    labels = np.array(["cat", "dog", "cat"])
    np.save(tmp_path / "l.npy", labels)
    np.savez(tmp_path / "l.npz", y=labels)
    pd.DataFrame({"label": labels, "other": [1, 2, 3]}).to_parquet(tmp_path / "l.parquet")
    pd.DataFrame({"whatever": labels}).to_parquet(tmp_path / "single.parquet")

    for name in ["l.npy", "l.npz", "l.parquet", "single.parquet"]:
        assert load_labels(tmp_path / name).tolist() == ["cat", "dog", "cat"]


def test_labels_in_npz(tmp_path):
    np.savez(tmp_path / "both.npz", features=np.zeros((2, 2)), labels=np.array([0, 1]))
    np.savez(tmp_path / "only.npz", features=np.zeros((2, 2)))

    assert labels_in_npz(tmp_path / "both.npz")
    assert not labels_in_npz(tmp_path / "only.npz")
    assert not labels_in_npz(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "labels, codes, names",
    [
        (np.array(["dog", "cat", "dog"]), [1, 0, 1], ("cat", "dog")),
        (np.array([10, 3, 10, 7]), [2, 0, 2, 1], ("3", "7", "10")),
        (np.array([2.0, 5.0, 2.0]), [0, 1, 0], ("2", "5")),
        (np.array(["a", "b"], dtype=object), [0, 1], ("a", "b")),
    ],
)
def test_encode_labels_maps_to_contiguous_codes(labels, codes, names):
    encoded, class_names = encode_labels(labels)

    assert encoded.tolist() == codes
    assert class_names == names


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([1.0, np.nan, 2.0]), r"missing \(NaN\) in rows \[1\]"),
        (np.array([1.5, 2.0]), "fractional"),
        (np.array(["a", None], dtype=object), r"missing in rows \[1\]"),
    ],
)
def test_encode_labels_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        encode_labels(labels)


def test_load_errors_name_file_and_fix(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(5))
    np.savez(tmp_path / "many.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2)))
    (tmp_path / "f.csv").write_text("1,2\n")

    with pytest.raises(ValueError, match=r"features file .*absent.npy not found"):
        load_features(tmp_path / "absent.npy")
    with pytest.raises(ValueError, match=r"unsupported type; use one of .npy, .npz, .parquet"):
        load_features(tmp_path / "f.csv")
    with pytest.raises(ValueError, match=r"must be 2-D"):
        load_features(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match=r"contains arrays \['a', 'b'\]; name the features array"):
        load_features(tmp_path / "many.npz")
