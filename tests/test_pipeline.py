from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lsi_app import pipeline
from lsi_app.pipeline import PipelineSettings, load_cached, run_pipeline, standardize
from lsi_app.store import list_entries


def test_digits_result_table(digits_result):
    table = digits_result.table

    assert len(table) == 1797
    assert {"sample_id", "label", "class_name", "lsi", "loss", "p_label", "predicted", "margin"} <= set(table.columns)
    assert np.isfinite(table["lsi"]).all()
    assert (table["lsi"] >= 0).all()
    assert (table["predicted"] == table["label"]).mean() > 0.95
    assert table.attrs["pipeline_settings"]["dataset"] == "digits"
    assert table.attrs["pipeline_settings"]["model_resolved"] == "cnn"
    assert table.attrs["lsi_settings"]["hessian"] == "full"
    assert table.attrs["label_mapping"]["3"] == "3"


class _Counter:
    """Wraps a function and counts its calls."""

    def __init__(self, function):
        self.function = function
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def _count_work(monkeypatch):
    from lsi_app.models import cnn

    training = _Counter(cnn.train_cnn)
    scoring = _Counter(pipeline.compute_lsi)
    monkeypatch.setattr(cnn, "train_cnn", training)
    monkeypatch.setattr(pipeline, "compute_lsi", scoring)
    return training, scoring


def test_second_run_extracts_and_fits_nothing(shared_workspace, digits_result, monkeypatch):
    training, scoring = _count_work(monkeypatch)
    reports = []

    again = run_pipeline(workspace=shared_workspace, progress=lambda f, m: reports.append(f))

    assert again.from_cache
    assert training.calls == 0
    assert scoring.calls == 0
    assert reports[-1] == 1.0
    np.testing.assert_array_equal(again.table["lsi"], digits_result.table["lsi"])


def test_changed_engine_setting_reuses_features(shared_workspace, digits_result, monkeypatch):
    training, scoring = _count_work(monkeypatch)

    result = run_pipeline(PipelineSettings(hessian="diag"), workspace=shared_workspace)

    assert not result.from_cache
    assert result.features_from_cache
    assert training.calls == 0
    assert scoring.calls == 1


def test_changed_setting_misses_cache(shared_workspace, digits_result):
    assert load_cached(PipelineSettings(prior_precision=2.0), shared_workspace) is None
    assert load_cached(PipelineSettings(), shared_workspace) is not None


def test_cache_entries_listed(shared_workspace, digits_result):
    kinds = set(list_entries(shared_workspace)["kind"])

    assert {"features", "probes", "results"} <= kinds


def test_progress_is_monotonic_and_complete(tmp_path):
    reports = []
    run_pipeline(PipelineSettings(prior_precision=3.0), workspace=tmp_path, progress=lambda f, m: reports.append(f))

    assert reports[0] == 0.0
    assert reports[-1] == 1.0
    assert reports == sorted(reports)


@pytest.mark.parametrize(
    "settings, message",
    [
        (PipelineSettings(model="vit"), "vit"),
        (PipelineSettings(prior_precision=0.0), "prior precision must be"),
        (PipelineSettings(dataset="imagenet"), "dataset source 'imagenet' not found"),
        (PipelineSettings(clusters=1), "clusters must be 0"),
    ],
)
def test_invalid_settings_raise_before_work(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        run_pipeline(settings, workspace=tmp_path)

    assert not (tmp_path / "features").exists()


def test_standardize_handles_constant_columns():
    features = np.array([[1.0, 5.0], [3.0, 5.0]])

    scaled = standardize(features)

    np.testing.assert_allclose(scaled, [[-1.0, 0.0], [1.0, 0.0]])


def _image_folder(root, per_class=12):
    """Three colour classes of small noisy images, plus dirt: a 0-byte file, a fake JPEG, .DS_Store."""
    rng = np.random.default_rng(0)
    colours = {"rouge": (200, 30, 30), "vert": (30, 200, 30), "bleu é": (30, 30, 200)}
    for name, colour in colours.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, size=(12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{i:02d}.png")
    (root / "rouge" / "empty.png").write_bytes(b"")
    (root / "vert" / "fake.jpg").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\1")
    (root / "vide").mkdir()
    return root


def test_image_folder_end_to_end_with_dirt(tmp_path):
    root = _image_folder(tmp_path / "images")

    result = run_pipeline(PipelineSettings(dataset=str(root), prior_precision=1.0), workspace=tmp_path / "ws")

    table = result.table
    assert len(table) == 36
    assert set(table["class_name"]) == {"rouge", "vert", "bleu é"}
    assert "vide" in result.samples.class_names
    assert table["path"].map(lambda path: Path(path).is_file()).all()
    reasons = dict(zip(result.skipped["item"].map(lambda item: item.rsplit("/", 1)[-1]), result.skipped["reason"]))
    assert "empty.png" in reasons
    assert "fake.jpg" in reasons
    assert ".DS_Store" in reasons
    assert "vide" in reasons


def test_image_folder_second_run_is_cached(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "images", per_class=8)
    settings = PipelineSettings(dataset=str(root))
    first = run_pipeline(settings, workspace=tmp_path / "ws")
    training, scoring = _count_work(monkeypatch)

    second = run_pipeline(settings, workspace=tmp_path / "ws")

    assert second.from_cache
    assert (training.calls, scoring.calls) == (0, 0)
    pd.testing.assert_frame_equal(second.table, first.table)
    assert list(second.skipped["item"]) == list(first.skipped["item"])


def test_unlabelled_embeddings_use_clusters(tmp_path):
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    features = np.concatenate([centre + rng.normal(size=(20, 2)) for centre in centres])
    features[5] = np.nan
    path = tmp_path / "vectors.npy"
    np.save(path, features)

    with pytest.raises(ValueError, match="--clusters"):
        run_pipeline(PipelineSettings(dataset=str(path)), workspace=tmp_path / "ws")
    result = run_pipeline(PipelineSettings(dataset=str(path), clusters=3), workspace=tmp_path / "ws")

    assert len(result.table) == 59
    assert result.samples.pseudo_labels
    assert result.table.attrs["pseudo_labels"] is True
    assert set(result.table["class_name"]) == {"cluster 0", "cluster 1", "cluster 2"}
    assert "non-finite" in result.skipped["reason"].iloc[0]
    cached = load_cached(PipelineSettings(dataset=str(path), clusters=3), tmp_path / "ws")
    assert cached is not None and cached.samples.pseudo_labels


def test_text_csv_end_to_end(tmp_path):
    rows = ["text,label"]
    for i in range(10):
        rows.append(f"the cat sat on mat number {i},animal")
        rows.append(f"stock prices fell on day {i},finance")
    rows.append(",finance")
    path = tmp_path / "texts.csv"
    path.write_text("\n".join(rows), encoding="utf-8-sig")

    result = run_pipeline(PipelineSettings(dataset=str(path)), workspace=tmp_path / "ws")

    assert len(result.table) == 20
    assert result.table.attrs["pipeline_settings"]["model_resolved"] == "minilm"
    assert (result.table["predicted"] == result.table["label"]).all()
    assert list(result.skipped["reason"]) == ["empty text"]


def test_unlabelled_images_with_cnn_fail_before_extraction(tmp_path, monkeypatch):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / f"{i}.png")
    training, _ = _count_work(monkeypatch)

    with pytest.raises(ValueError, match="in-app CNN trains on labels"):
        run_pipeline(PipelineSettings(dataset=str(root), clusters=2), workspace=tmp_path / "ws")

    assert training.calls == 0


def test_clusters_on_labelled_data_fail_before_extraction(tmp_path, monkeypatch):
    training, _ = _count_work(monkeypatch)

    with pytest.raises(ValueError, match="does not apply"):
        run_pipeline(PipelineSettings(clusters=3), workspace=tmp_path)

    assert training.calls == 0
