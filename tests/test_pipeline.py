import numpy as np
import pytest

from lsi_app import pipeline
from lsi_app.pipeline import PipelineSettings, load_cached, run_pipeline, standardize
from lsi_app.store import ResultCache


def test_digits_result_table(digits_result):
    table = digits_result.table

    assert len(table) == 1797
    assert {"sample_id", "label", "class_name", "lsi", "loss", "p_label", "predicted", "margin"} <= set(table.columns)
    assert np.isfinite(table["lsi"]).all()
    assert (table["lsi"] >= 0).all()
    assert (table["predicted"] == table["label"]).mean() > 0.95
    assert table.attrs["pipeline_settings"]["dataset"] == "digits"
    assert table.attrs["lsi_settings"]["hessian"] == "full"


def test_second_run_uses_cache_without_training(shared_workspace, digits_result, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "train_cnn", lambda *args, **kwargs: calls.append(args))
    reports = []

    again = run_pipeline(cache=ResultCache(shared_workspace), progress=lambda f, m: reports.append(f))

    assert again.from_cache
    assert calls == []
    assert reports[-1] == 1.0
    np.testing.assert_array_equal(again.table["lsi"], digits_result.table["lsi"])


def test_changed_setting_misses_cache(shared_workspace, digits_result):
    settings = PipelineSettings(prior_precision=2.0)

    assert load_cached(settings, ResultCache(shared_workspace)) is None
    assert load_cached(PipelineSettings(), ResultCache(shared_workspace)) is not None


def test_progress_is_monotonic_and_complete(tmp_path):
    reports = []
    run_pipeline(PipelineSettings(prior_precision=3.0), cache=ResultCache(tmp_path), progress=lambda f, m: reports.append(f))

    assert reports[0] == 0.0
    assert reports[-1] == 1.0
    assert reports == sorted(reports)


@pytest.mark.parametrize(
    "settings, message",
    [
        (PipelineSettings(model="vit"), "unknown model source 'vit'"),
        (PipelineSettings(prior_precision=0.0), "prior precision must be"),
        (PipelineSettings(dataset="imagenet"), "unknown dataset source 'imagenet'"),
    ],
)
def test_invalid_settings_raise_before_work(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        run_pipeline(settings, cache=ResultCache(tmp_path))


def test_standardize_handles_constant_columns():
    features = np.array([[1.0, 5.0], [3.0, 5.0]])

    scaled = standardize(features)

    np.testing.assert_allclose(scaled, [[-1.0, 0.0], [1.0, 0.0]])
