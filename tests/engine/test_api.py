import numpy as np
import pytest
import torch

from lsi_app.engine import compute_lsi

from tests.engine.helpers import blobs


def _data(n_samples=40, n_features=3, n_classes=3, seed=0):
    x, y = blobs(n_samples, n_features, n_classes, seed=seed, spread=1.2)
    return x[:, :-1].numpy(), y.numpy()


def test_compute_lsi_columns_and_order():
    features, labels = _data()

    table = compute_lsi(features, labels, device="cpu")

    assert list(table.columns) == ["lsi", "loss", "p_label", "predicted", "margin", "mislabel_score"]
    assert len(table) == len(labels)
    assert (table["lsi"] >= 0).all()
    np.testing.assert_allclose(table["loss"], -np.log(table["p_label"]), rtol=1e-12)
    np.testing.assert_allclose(table["mislabel_score"], table["lsi"] * table["loss"], rtol=1e-12)
    correct = table["predicted"] == labels
    assert (table.loc[correct, "margin"] > 0).all()
    assert (table.loc[~correct, "margin"] <= 0).all()


def test_compute_lsi_rows_follow_input_order():
    features, labels = _data()
    order = np.random.default_rng(1).permutation(len(labels))

    table = compute_lsi(features, labels)
    shuffled = compute_lsi(features[order], labels[order])

    np.testing.assert_allclose(shuffled["lsi"].to_numpy(), table["lsi"].to_numpy()[order], rtol=1e-6)


def test_compute_lsi_records_settings():
    features, labels = _data()

    settings = compute_lsi(features, labels, prior_precision=2.5, device="cpu").attrs["lsi_settings"]

    assert settings["prior_precision"] == 2.5
    assert settings["hessian"] == "full"
    assert settings["method"] == "fast"
    assert settings["device"] == "cpu"
    assert settings["dtype"] == "float64"
    assert settings["n_parameters"] == 3 * 4
    assert settings["gradient_norm"] <= 1e-10
    assert settings["solver"] == "newton"
    assert settings["converged"] is True
    assert settings["refine_top"] == 0
    assert np.isfinite(settings["log_evidence"])
    assert settings["torch_version"]


def test_compute_lsi_exact_close_to_fast():
    features, labels = _data(n_samples=30)

    fast = compute_lsi(features, labels)["lsi"].to_numpy()
    exact = compute_lsi(features, labels, method="exact")["lsi"].to_numpy()

    assert np.median(np.abs(fast - exact) / exact) < 0.1


def test_compute_lsi_without_bias_has_fewer_parameters():
    features, labels = _data()

    settings = compute_lsi(features, labels, bias=False).attrs["lsi_settings"]

    assert settings["n_parameters"] == 3 * 3


def test_compute_lsi_float32_close_to_float64():
    features, labels = _data()

    single = compute_lsi(features, labels, dtype=torch.float32)["lsi"].to_numpy()
    double = compute_lsi(features, labels)["lsi"].to_numpy()

    np.testing.assert_allclose(single, double, rtol=1e-2, atol=1e-5)


@pytest.mark.parametrize("hessian", ["kron", "diag"])
def test_compute_lsi_structured_hessians(hessian):
    features, labels = _data()

    table = compute_lsi(features, labels, hessian=hessian, self_check=40)

    settings = table.attrs["lsi_settings"]
    assert settings["hessian"] == hessian
    assert np.isfinite(table["lsi"]).all()
    assert (table["lsi"] >= 0).all()
    assert settings["self_check"]["spearman"] > 0.85


def test_compute_lsi_self_check_reports_agreement():
    features, labels = _data(n_samples=60)

    check = compute_lsi(features, labels, self_check=15).attrs["lsi_settings"]["self_check"]

    assert check["n_samples"] == 15
    assert len(check["indices"]) == 15
    assert check["spearman"] > 0.95
    assert check["median_relative_error"] < 0.15


def test_compute_lsi_refine_top_replaces_highest_with_exact():
    features, labels = _data(n_samples=50)
    fast = compute_lsi(features, labels)

    refined = compute_lsi(features, labels, refine_top=5)

    top = fast["lsi"].nlargest(5).index
    assert refined["lsi_refined"].sum() == 5
    assert set(refined.index[refined["lsi_refined"]]) == set(top)
    np.testing.assert_allclose(refined["lsi_fast"], fast["lsi"])
    exact = compute_lsi(features, labels, method="exact")["lsi"]
    np.testing.assert_allclose(refined.loc[top, "lsi"], exact[top], rtol=1e-6)
    untouched = ~refined["lsi_refined"]
    np.testing.assert_array_equal(refined.loc[untouched, "lsi"], fast.loc[untouched, "lsi"])


def test_compute_lsi_auto_prior_reports_evidence():
    features, labels = _data(n_samples=60)

    table = compute_lsi(features, labels, prior_precision="auto")

    settings = table.attrs["lsi_settings"]
    grid = np.array(settings["prior_grid"])
    evidence = np.array(settings["prior_grid_log_evidence"])
    assert settings["prior_precision"] in grid
    assert settings["log_evidence"] == pytest.approx(np.nanmax(evidence), rel=1e-9)
    assert settings["prior_precision"] == grid[np.nanargmax(evidence)]


def test_compute_lsi_warm_start_from_given_weights():
    features, labels = _data()
    cold = compute_lsi(features, labels)
    start = np.full((3, 4), 0.1)

    warm = compute_lsi(features, labels, initial_weights=start)

    np.testing.assert_allclose(warm["lsi"], cold["lsi"], rtol=1e-6)
    with pytest.raises(ValueError, match=r"initial_weights have shape \(3, 3\) but the probe needs \(3, 4\)"):
        compute_lsi(features, labels, initial_weights=np.zeros((3, 3)))


def test_compute_lsi_progress_reaches_one():
    features, labels = _data()
    reports = []

    compute_lsi(features, labels, self_check=3, progress=lambda f, m: reports.append(f))

    assert reports[-1] == 1.0
    assert reports == sorted(reports)


@pytest.mark.parametrize(
    "features, labels, options, message",
    [
        (np.zeros((4, 2)), np.array([0, 1, 0]), {}, "4 rows but labels have 3"),
        (np.zeros(4), np.array([0, 1, 0, 1]), {}, "2-D array"),
        (np.zeros((4, 2)), np.zeros((4, 1), dtype=int), {}, "1-D array"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), {}, "empty"),
        (np.array([[0.0], [np.nan], [1.0], [np.inf]]), np.array([0, 1, 0, 1]), {}, "rows 1, 3"),
        (np.zeros((4, 2)), np.zeros(4, dtype=int), {}, "at least 2 classes"),
        (np.zeros((4, 2)), np.array([0.5, 1, 0, 1]), {}, "must be integers"),
        (np.zeros((4, 2)), np.array([-1, 1, 0, 1]), {}, "must be >= 0"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"prior_precision": 0.0}, "prior_precision must be"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"prior_precision": -1.0}, "prior_precision must be"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"prior_precision": "best"}, "prior_precision='best'"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"self_check": -1}, "self_check must be >= 0"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"refine_top": -2}, "refine_top must be >= 0"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"hessian": "block"}, "hessian='block' is not supported"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"method": "slow"}, "method='slow' is not supported"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"device": "tpu"}, "device='tpu' is not supported"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 1]), {"n_classes": 1}, "n_classes=1"),
    ],
)
def test_compute_lsi_rejects_bad_input(features, labels, options, message):
    with pytest.raises(ValueError, match=message):
        compute_lsi(features, labels, **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_compute_lsi_cuda_missing_is_clear():
    features, labels = _data()

    with pytest.raises(ValueError, match="CUDA is not available"):
        compute_lsi(features, labels, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compute_lsi_cuda_matches_cpu():
    features, labels = _data()

    gpu = compute_lsi(features, labels, device="cuda")["lsi"].to_numpy()
    cpu = compute_lsi(features, labels, device="cpu")["lsi"].to_numpy()

    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=1e-12)


def test_compute_lsi_rejects_posterior_too_large(monkeypatch):
    monkeypatch.setattr("lsi_app.engine.api.available_bytes", lambda device: 1000)
    features, labels = _data()

    with pytest.raises(ValueError, match=r"full posterior over 12 parameters needs about .* GiB.*use hessian='kron'"):
        compute_lsi(features, labels)


def test_compute_lsi_warns_about_empty_classes(caplog):
    features, labels = _data()

    with caplog.at_level("WARNING"):
        compute_lsi(features, labels + 5)

    assert "classes [0, 1, 2, 3, 4] have no samples" in caplog.text
