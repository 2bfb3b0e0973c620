import numpy as np
import pandas as pd
import pytest

from lsi_app.analysis.classes import MAX_POINTS_PER_CLASS, class_table, confusion_matrix, lsi_distributions

CLASS_NAMES = ["cat", "dog", "bird"]


def make_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 20)
    lsi = np.concatenate([rng.exponential(1.0, 30), rng.exponential(5.0, 20)])
    lsi[3] = np.nan
    predicted = labels.copy()
    predicted[:6] = 1  # six cats predicted as dogs
    predicted[30:32] = 0  # two dogs predicted as cats
    return pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(50)],
            "label": labels,
            "class_name": np.array(CLASS_NAMES)[labels],
            "lsi": lsi,
            "predicted": predicted,
        }
    )


def test_class_table_counts_and_statistics():
    table = make_table()

    result = class_table(table, CLASS_NAMES, n_bootstrap=500)

    assert result["class_name"].tolist() == CLASS_NAMES
    assert result.index.name == "label"
    assert result["count"].tolist() == [30, 20, 0]
    cats = table["lsi"].to_numpy()[:30]
    assert result.loc[0, "mean_lsi"] == pytest.approx(np.nanmean(cats))
    assert result.loc[0, "median_lsi"] == pytest.approx(np.nanmedian(cats))
    assert result.loc[0, "accuracy"] == pytest.approx(24 / 30)
    assert result.loc[1, "accuracy"] == pytest.approx(18 / 20)
    assert "flagged" not in result.columns


def test_class_table_intervals_bracket_mean():
    result = class_table(make_table(), CLASS_NAMES, n_bootstrap=500)

    for code in (0, 1):
        row = result.loc[code]
        assert row["mean_lsi_low"] <= row["mean_lsi"] <= row["mean_lsi_high"]
        assert row["mean_lsi_low"] < row["mean_lsi_high"]


def test_class_table_empty_class_is_nan():
    row = class_table(make_table(), CLASS_NAMES, n_bootstrap=50).loc[2]

    assert row["count"] == 0
    for column in ("mean_lsi", "mean_lsi_low", "mean_lsi_high", "median_lsi", "accuracy"):
        assert np.isnan(row[column]), column


def test_class_table_counts_flags_and_is_seeded():
    table = make_table()
    table["flagged"] = False
    table.loc[[0, 1, 40], "flagged"] = True

    first = class_table(table, CLASS_NAMES, n_bootstrap=200, seed=4)
    second = class_table(table, CLASS_NAMES, n_bootstrap=200, seed=4)

    assert first["flagged"].tolist() == [2, 1, 0]
    assert first.equals(second)


def test_class_table_rejects_codes_outside_names():
    with pytest.raises(ValueError, match=r"class code 1, outside 0..0"):
        class_table(make_table(), ["cat"])


def test_confusion_matrix_counts():
    matrix = confusion_matrix(make_table(), CLASS_NAMES)

    assert matrix.shape == (3, 3)
    assert matrix.index.tolist() == CLASS_NAMES
    assert matrix.columns.tolist() == CLASS_NAMES
    assert matrix.loc["cat", "cat"] == 24
    assert matrix.loc["cat", "dog"] == 6
    assert matrix.loc["dog", "cat"] == 2
    assert matrix.loc["dog", "dog"] == 18
    assert matrix.loc["bird"].sum() == 0
    assert matrix["bird"].sum() == 0
    assert matrix.to_numpy().sum() == 50


def test_confusion_matrix_rejects_unknown_prediction():
    table = make_table()
    table.loc[0, "predicted"] = 7

    with pytest.raises(ValueError, match="column 'predicted' contains class code 7"):
        confusion_matrix(table, CLASS_NAMES)


def test_lsi_distributions_long_format_without_nan():
    table = make_table()

    points = lsi_distributions(table)

    assert points.columns.tolist() == ["sample_id", "class_name", "lsi"]
    assert len(points) == 49
    assert "s3" not in points["sample_id"].tolist()
    assert points["sample_id"].tolist() == [f"s{i}" for i in range(50) if i != 3]


def test_lsi_distributions_subsample_per_class():
    n_rows = 3 * MAX_POINTS_PER_CLASS
    labels = np.array([0] * (n_rows - 10) + [1] * 10)
    table = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n_rows)],
            "class_name": np.array(CLASS_NAMES)[labels],
            "lsi": np.arange(n_rows, dtype=float),
        }
    )

    points = lsi_distributions(table, seed=1)
    again = lsi_distributions(table, seed=1)
    other_seed = lsi_distributions(table, seed=2)

    counts = points["class_name"].value_counts()
    assert counts["cat"] == MAX_POINTS_PER_CLASS
    assert counts["dog"] == 10
    assert points["sample_id"].is_unique
    assert points["lsi"].is_monotonic_increasing
    assert points.equals(again)
    assert not points.equals(other_seed)
    # A uniform subsample of 0..5989 has a mean near the middle.
    assert abs(points.loc[points["class_name"] == "cat", "lsi"].mean() - (n_rows - 10) / 2) < 300
