import numpy as np
import pytest

from lsi_app.analysis import summarize_lsi


def test_summary_dataset_and_class_statistics():
    lsi = np.array([1.0, 2.0, 3.0, 10.0, 20.0])
    labels = np.array([0, 0, 0, 1, 1])

    summary = summarize_lsi(lsi, labels, ["cat", "dog", "bird"])

    assert summary.mean == pytest.approx(7.2)
    assert summary.median == 3.0
    assert summary.n_samples == 5
    per_class = summary.per_class
    assert per_class["count"].tolist() == [3, 2, 0]
    assert per_class.loc[0, "mean_lsi"] == pytest.approx(2.0)
    assert per_class.loc[1, "median_lsi"] == pytest.approx(15.0)
    assert per_class.loc[2, "class_name"] == "bird"
    assert np.isnan(per_class.loc[2, "mean_lsi"])


def test_summary_intervals_cover_estimate_and_shrink_with_data():
    rng = np.random.default_rng(0)
    small = rng.exponential(size=20)
    large = rng.exponential(size=2000)

    few = summarize_lsi(small, np.zeros(20, dtype=int)).per_class.loc[0]
    many = summarize_lsi(large, np.zeros(2000, dtype=int)).per_class.loc[0]

    assert few["mean_lsi_low"] <= few["mean_lsi"] <= few["mean_lsi_high"]
    assert few["median_lsi_low"] <= few["median_lsi"] <= few["median_lsi_high"]
    assert many["mean_lsi_high"] - many["mean_lsi_low"] < few["mean_lsi_high"] - few["mean_lsi_low"]
    assert many["mean_lsi_low"] < 1.0 < many["mean_lsi_high"]


def test_summary_is_seeded():
    lsi = np.random.default_rng(1).exponential(size=50)
    labels = np.arange(50) % 2

    first = summarize_lsi(lsi, labels, seed=3).per_class
    second = summarize_lsi(lsi, labels, seed=3).per_class

    assert first.equals(second)


@pytest.mark.parametrize(
    "lsi, labels, options, message",
    [
        (np.ones(3), np.zeros(2, dtype=int), {}, "one length"),
        (np.ones(3), np.zeros(3, dtype=int), {"confidence": 1.5}, "confidence must lie in"),
        (np.ones(3), np.zeros(3, dtype=int), {"n_bootstrap": 0}, "n_bootstrap must be >= 1"),
    ],
)
def test_summary_rejects_bad_input(lsi, labels, options, message):
    with pytest.raises(ValueError, match=message):
        summarize_lsi(lsi, labels, **options)
