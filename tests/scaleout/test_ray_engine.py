"""Tests of the Ray engine on a local two-CPU cluster shared by the module."""

from __future__ import annotations

import io
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from lsi_app.data.images import open_image_folder
from lsi_app.data.samples import SampleSet, VectorItems, fingerprint_of
from lsi_app.engine import compute_lsi
from lsi_app.engine.api import fit_lsi_posterior, score_rows
from lsi_app.models import open_model
from lsi_app.scaleout import (
    RAY_MISSING_MESSAGE,
    RayOptions,
    ShardFailedError,
    discard_feature_shards,
    extract_features_ray,
    import_ray,
    ray_session,
    read_parquet_partitioned,
    score_ray,
    write_parquet_partitioned,
)
from lsi_app.scaleout.cluster import LOOPBACK_VARIABLE
from lsi_app.store.cache import FeatureCache

# Ray reads this variable when it is imported, so it is set before the
# import. The test cluster then listens on loopback only.
os.environ.setdefault(LOOPBACK_VARIABLE, "0")
ray = pytest.importorskip("ray")

# The shard hooks below run in Ray workers, which may not find this test
# module on their import path, so cloudpickle ships its code by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

SCORE_COLUMNS = ["lsi", "loss", "p_label", "predicted", "margin", "mislabel_score"]

#: 600 samples in shards of 100: six tasks on two workers.
OPTIONS = RayOptions(num_workers=2, shard_size=100, gpus_per_worker=0)


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    with ray_session(RayOptions(num_workers=2, gpus_per_worker=0)) as session:
        yield session
    assert not session.is_initialized()


@dataclass(frozen=True)
class ExitOnce:
    """Kill the worker process the first time shard ``shard`` runs, as a lost node would."""

    marker: str
    shard: int

    def __call__(self, index: int) -> None:
        if index == self.shard and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)


@dataclass(frozen=True)
class RecordShards:
    """Append the index of every computed shard to a file."""

    path: str

    def __call__(self, index: int) -> None:
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(f"{index}\n")


@dataclass(frozen=True)
class FailFrom:
    """Raise in every shard from index ``first`` on, as a bug or bad input would."""

    first: int

    def __call__(self, index: int) -> None:
        if index >= self.first:
            raise RuntimeError(f"injected failure in shard {index}")


def _recorded(path: Path) -> list[int]:
    if not path.exists():
        return []
    return sorted(int(line) for line in path.read_text().split())


def _problem(n_samples=600, n_features=16, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, n_features))
    labels = np.arange(n_samples) % n_classes
    features = centers[labels] + 1.5 * rng.normal(size=(n_samples, n_features))
    return features, labels


def _assert_same_scores(table: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(table.columns) == SCORE_COLUMNS
    assert len(table) == len(reference)
    for column in SCORE_COLUMNS:
        np.testing.assert_allclose(table[column], reference[column], rtol=1e-6, atol=1e-12, err_msg=column)


# --- session and options ------------------------------------------------------


def test_session_reused_and_on_loopback():
    with ray_session(RayOptions(gpus_per_worker=0)) as session:
        assert session.is_initialized()
    assert ray.is_initialized()
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    assert addresses == {"127.0.0.1"}


def test_import_ray_missing_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)

    with pytest.raises(ImportError) as raised:
        import_ray()

    assert str(raised.value) == RAY_MISSING_MESSAGE


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"shard_size": 0}, "shard_size"),
        ({"num_workers": 0}, "num_workers"),
        ({"gpus_per_worker": -1}, "gpus_per_worker"),
        ({"cpus_per_worker": 0}, "cpus_per_worker"),
        ({"max_retries": -1}, "max_retries"),
        ({"address": " "}, "address"),
    ],
)
def test_options_reject_invalid(settings, fragment):
    with pytest.raises(ValueError, match=fragment):
        RayOptions(**settings)


def test_too_many_gpus_rejected_on_local_cluster(tmp_path):
    features, labels = _problem(n_samples=40)

    with pytest.raises(ValueError, match="gpus_per_worker=1"):
        score_ray(
            features,
            labels,
            cache_root=tmp_path,
            result_key="gpu",
            options=RayOptions(shard_size=10, gpus_per_worker=1),
            device="cpu",
        )


# --- scoring ----------------------------------------------------------------


@pytest.mark.parametrize("hessian", ["full", "kron", "diag"])
def test_score_ray_matches_compute_lsi(tmp_path, hessian):
    features, labels = _problem()
    reference = compute_lsi(features, labels, hessian=hessian, device="cpu")

    table = score_ray(
        features, labels, cache_root=tmp_path, result_key=f"scores-{hessian}", hessian=hessian, options=OPTIONS, device="cpu"
    )

    _assert_same_scores(table, reference)
    settings = table.attrs["lsi_settings"]
    expected = reference.attrs["lsi_settings"]
    for name in ("hessian", "method", "prior_precision", "log_evidence", "dtype", "n_samples", "n_parameters"):
        assert settings[name] == expected[name], name
    assert settings["engine"] == "ray"
    assert settings["n_shards"] == 6
    assert settings["workers"] == 2
    assert settings["computed_shards"] == 6


def test_full_posterior_scoring_copy_smaller():
    features, labels = _problem(n_samples=200)
    fitted = fit_lsi_posterior(features, labels, hessian="full", device="cpu")

    copied = fitted.for_scoring().to("cpu")

    assert len(pickle.dumps(copied)) < len(pickle.dumps(fitted.to("cpu"))) / 2
    assert copied.posterior.precision is None
    assert fitted.posterior.precision is not None
    pd.testing.assert_frame_equal(score_rows(copied, features, labels), score_rows(fitted, features, labels))


def test_score_ray_auto_prior_and_weights(tmp_path):
    features, labels = _problem(n_samples=200)
    reference, reference_weights = compute_lsi(
        features, labels, hessian="kron", prior_precision="auto", device="cpu", return_weights=True
    )

    table, weights = score_ray(
        features,
        labels,
        cache_root=tmp_path,
        result_key="auto",
        hessian="kron",
        prior_precision="auto",
        options=OPTIONS,
        device="cpu",
        return_weights=True,
    )

    _assert_same_scores(table, reference)
    np.testing.assert_allclose(weights, reference_weights, rtol=1e-12)
    assert table.attrs["lsi_settings"]["prior_grid"] == reference.attrs["lsi_settings"]["prior_grid"]


def test_score_ray_retries_lost_worker(tmp_path):
    features, labels = _problem()
    reference = compute_lsi(features, labels, hessian="kron", device="cpu")
    marker = tmp_path / "shard-2-killed"

    table = score_ray(
        features,
        labels,
        cache_root=tmp_path / "workspace",
        result_key="lost-worker",
        hessian="kron",
        options=OPTIONS,
        device="cpu",
        shard_hook=ExitOnce(str(marker), shard=2),
    )

    assert marker.exists()
    _assert_same_scores(table, reference)


def test_score_ray_fails_without_retries(tmp_path):
    features, labels = _problem()
    options = RayOptions(num_workers=2, shard_size=100, gpus_per_worker=0, max_retries=0)

    with pytest.raises(ShardFailedError, match="shard 1 \\(rows 100-199\\)"):
        score_ray(
            features,
            labels,
            cache_root=tmp_path / "workspace",
            result_key="no-retry",
            hessian="diag",
            options=options,
            device="cpu",
            shard_hook=ExitOnce(str(tmp_path / "killed"), shard=1),
        )


def test_score_ray_restart_computes_missing_shards(tmp_path):
    features, labels = _problem()
    reference = compute_lsi(features, labels, hessian="kron", device="cpu")
    workspace = tmp_path / "workspace"
    arguments = dict(cache_root=workspace, result_key="restart", hessian="kron", options=OPTIONS, device="cpu")

    with pytest.raises(ShardFailedError, match="computes only the others"):
        score_ray(features, labels, **arguments, shard_hook=FailFrom(2))
    counter = tmp_path / "computed.txt"
    table = score_ray(features, labels, **arguments, shard_hook=RecordShards(str(counter)))

    assert _recorded(counter) == [2, 3, 4, 5]
    assert table.attrs["lsi_settings"]["computed_shards"] == 4
    _assert_same_scores(table, reference)


def test_score_ray_new_settings_new_shards(tmp_path):
    features, labels = _problem(n_samples=200)
    counter = tmp_path / "computed.txt"
    arguments = dict(cache_root=tmp_path / "workspace", result_key="same-key", options=OPTIONS, device="cpu")

    score_ray(features, labels, hessian="diag", **arguments)
    score_ray(features, labels, hessian="diag", prior_precision=3.0, shard_hook=RecordShards(str(counter)), **arguments)

    assert _recorded(counter) == [0, 1]


# --- feature extraction -----------------------------------------------------


class TinyBackbone(nn.Module):
    """One convolution; its 4-D output is average-pooled to 5 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, kernel_size=3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(images))


def _torchscript_model(path: Path) -> Path:
    torch.manual_seed(0)
    torch.jit.script(TinyBackbone()).save(str(path))
    return path


def _png_bytes(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_folder(root: Path) -> Path:
    """Two class folders of 12 PNGs each, and one truncated PNG in each that fails to decode."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        folder = root / name
        folder.mkdir(parents=True)
        for number in range(12):
            (folder / f"{number:02d}.png").write_bytes(_png_bytes(rng))
        broken = _png_bytes(rng)
        (folder / "05b.png").write_bytes(broken[: len(broken) // 2])
    return root


def test_extract_features_ray_matches_extractor(tmp_path):
    samples = open_image_folder(_image_folder(tmp_path / "images"))
    model_path = _torchscript_model(tmp_path / "tiny.pt")
    model_options = {"image_size": 16}
    reference = open_model(str(model_path), samples.kind, **model_options).extract(samples, device=torch.device("cpu"))
    workspace = tmp_path / "workspace"
    arguments = dict(
        cache_root=workspace,
        features_key="images",
        model_options=model_options,
        options=RayOptions(num_workers=2, shard_size=7, gpus_per_worker=0),
        batch_size=4,
    )

    extraction = extract_features_ray(samples, str(model_path), **arguments)

    assert len(samples) == 26
    assert len(reference.skipped) == 2
    np.testing.assert_array_equal(extraction.kept, reference.kept)
    np.testing.assert_allclose(extraction.features, reference.features, rtol=1e-5, atol=1e-6)
    assert extraction.skipped == reference.skipped
    assert extraction.notes == reference.notes

    counter = tmp_path / "computed.txt"
    again = extract_features_ray(samples, str(model_path), **arguments, shard_hook=RecordShards(str(counter)))
    assert _recorded(counter) == []
    np.testing.assert_array_equal(again.features, extraction.features)

    removed = discard_feature_shards(len(samples), cache_root=workspace, features_key="images", shard_size=7)
    assert removed == 4
    assert not any((workspace / "features").iterdir())


def test_extract_features_ray_retries_lost_worker(tmp_path):
    vectors = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    samples = SampleSet(
        name="vectors",
        sample_ids=np.array([f"row {i}" for i in range(50)]),
        labels=np.arange(50) % 2,
        class_names=("a", "b"),
        reader=VectorItems(vectors),
        fingerprint=fingerprint_of(vectors),
    )
    marker = tmp_path / "shard-1-killed"

    extraction = extract_features_ray(
        samples,
        "identity",
        cache_root=tmp_path / "workspace",
        features_key="vectors",
        options=RayOptions(num_workers=2, shard_size=20, gpus_per_worker=0),
        shard_hook=ExitOnce(str(marker), shard=1),
    )

    assert marker.exists()
    np.testing.assert_array_equal(extraction.features, vectors)
    np.testing.assert_array_equal(extraction.kept, np.arange(50))
    assert FeatureCache(tmp_path / "workspace").directory.is_dir()


def test_extract_features_ray_rejects_cnn(tmp_path):
    samples = open_image_folder(_image_folder(tmp_path / "images"))

    with pytest.raises(ValueError, match="trains on the whole dataset"):
        extract_features_ray(samples, "cnn", cache_root=tmp_path, features_key="cnn", options=OPTIONS)


# --- partitioned Parquet ------------------------------------------------------


def test_partitioned_parquet_round_trip(tmp_path):
    table = pd.DataFrame({"sample_id": [f"s{i}" for i in range(25)], "lsi": np.linspace(0.0, 1.0, 25)})
    table.attrs["lsi_settings"] = {"hessian": "kron", "n_samples": 25}

    paths = write_parquet_partitioned(table, tmp_path / "scores", rows_per_file=10)
    loaded = read_parquet_partitioned(tmp_path / "scores")

    assert [path.name for path in paths] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [len(pd.read_parquet(path)) for path in paths] == [10, 10, 5]
    pd.testing.assert_frame_equal(loaded, table)
    assert loaded.attrs["lsi_settings"] == table.attrs["lsi_settings"]


def test_partitioned_parquet_overwrite_rules(tmp_path):
    table = pd.DataFrame({"lsi": np.arange(25, dtype=float)})
    directory = tmp_path / "scores"
    write_parquet_partitioned(table, directory, rows_per_file=10)

    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_parquet_partitioned(table, directory, rows_per_file=10)
    write_parquet_partitioned(table.iloc[:5], directory, rows_per_file=10, overwrite=True)
    assert sorted(path.name for path in directory.iterdir()) == ["part-00000.parquet"]
    pd.testing.assert_frame_equal(read_parquet_partitioned(directory), table.iloc[:5])

    (directory / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="notes.txt"):
        write_parquet_partitioned(table, directory, overwrite=True)
    assert (directory / "notes.txt").exists()
    with pytest.raises(ValueError, match="rows_per_file"):
        write_parquet_partitioned(table, tmp_path / "other", rows_per_file=0)
