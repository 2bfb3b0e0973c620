import logging

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import umap

from lsi_app.analysis.embedding import (
    MAX_MARKER_SIZE,
    MIN_MARKER_SIZE,
    embedding_figure,
    ids_from_selection,
    umap_embedding,
)


def blobs(n_samples: int, n_features: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(3, n_features))
    return (centres[np.arange(n_samples) % 3] + rng.normal(size=(n_samples, n_features))).astype(np.float32)


def make_table(n_samples: int = 9) -> pd.DataFrame:
    labels = np.arange(n_samples) % 3
    names = np.array(["cat", "<b>x</b>", "dog"])
    table = pd.DataFrame(
        {
            "index": range(n_samples),
            "sample_id": [f"img_{i}.png" for i in range(n_samples)],
            "label": labels,
            "class_name": names[labels],
            "lsi": np.linspace(0.1, 2.0, n_samples),
            "loss": np.linspace(1.0, 0.0, n_samples),
        }
    )
    table.attrs["label_mapping"] = {"0": "cat", "1": "<b>x</b>", "2": "dog"}
    return table


def trace_ids(figure: go.Figure) -> list[str]:
    return [row[0] for trace in figure.data for row in trace.customdata]


def test_umap_is_seeded_and_finite():
    features = blobs(300)
    progress = []

    first = umap_embedding(features, seed=3, progress=lambda fraction, message: progress.append(fraction))
    second = umap_embedding(features, seed=3)

    assert first.shape == (300, 2)
    assert first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert progress == [0.0, 1.0]
    # UMAP keeps the three blobs apart: points of one blob are closer to
    # their own centroid than to the others'.
    groups = np.arange(300) % 3
    centroids = np.stack([first[groups == g].mean(axis=0) for g in range(3)])
    nearest = np.argmin(((first[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == groups).mean() > 0.95


def test_umap_empty_and_single_sample():
    empty = umap_embedding(np.zeros((0, 4)))
    single = umap_embedding(np.ones((1, 4)))

    assert empty.shape == (0, 2)
    assert empty.dtype == np.float32
    np.testing.assert_array_equal(single, np.zeros((1, 2), dtype=np.float32))


def test_umap_few_samples_use_pca():
    features = blobs(5, n_features=6)

    coords = umap_embedding(features)

    assert coords.shape == (5, 2)
    centred = features - features.mean(axis=0)
    # PCA preserves the distances within the span of the first two components,
    # so the squared norms cannot exceed those of the centred data.
    assert (np.linalg.norm(coords, axis=1) <= np.linalg.norm(centred, axis=1) + 1e-4).all()
    assert np.var(coords[:, 0]) >= np.var(coords[:, 1])
    assert np.var(coords[:, 0]) > 0


def test_umap_single_feature_pads_zeros():
    coords = umap_embedding(np.array([[1.0], [2.0], [4.0]]))

    assert coords.shape == (3, 2)
    np.testing.assert_array_equal(coords[:, 1], 0.0)
    assert np.ptp(coords[:, 0]) == pytest.approx(3.0)


def test_umap_duplicate_rows_are_finite():
    few = umap_embedding(np.ones((5, 4)))
    many = umap_embedding(np.ones((40, 4)), seed=1)

    np.testing.assert_array_equal(few, 0.0)
    assert many.shape == (40, 2)
    assert np.isfinite(many).all()


def test_umap_replaces_non_finite_features(caplog):
    features = blobs(6)
    features[2, 1] = np.nan
    features[4, 0] = np.inf

    with caplog.at_level(logging.WARNING):
        coords = umap_embedding(features)

    assert np.isfinite(coords).all()
    assert "2 NaN or infinite values" in caplog.text


class FailingUMAP:
    def __init__(self, **options):
        pass

    def fit_transform(self, features):
        raise ValueError("eigengap too small")


class NaNUMAP:
    def __init__(self, **options):
        pass

    def fit_transform(self, features):
        coords = np.ones((len(features), 2))
        coords[0] = np.nan
        return coords


def test_umap_failure_falls_back_to_pca(monkeypatch, caplog):
    features = blobs(30)
    monkeypatch.setattr(umap, "UMAP", FailingUMAP)

    with caplog.at_level(logging.WARNING):
        coords = umap_embedding(features)

    assert coords.shape == (30, 2)
    assert np.isfinite(coords).all()
    assert "UMAP failed on 30 samples (ValueError: eigengap too small); using PCA" in caplog.text
    assert np.var(coords[:, 0]) > 0


def test_umap_non_finite_output_is_zeroed(monkeypatch, caplog):
    monkeypatch.setattr(umap, "UMAP", NaNUMAP)

    with caplog.at_level(logging.WARNING):
        coords = umap_embedding(blobs(12))

    np.testing.assert_array_equal(coords[0], 0.0)
    np.testing.assert_array_equal(coords[1:], 1.0)
    assert "2 non-finite coordinates" in caplog.text


@pytest.mark.parametrize(
    "features, options, message",
    [
        (np.zeros(5), {}, "must be 2-D"),
        (np.array([["a"]]), {}, "must be numeric"),
        (np.zeros((20, 2)), {"n_neighbors": 1}, "n_neighbors must be an integer >= 2"),
    ],
)
def test_umap_rejects_bad_input(features, options, message):
    with pytest.raises(ValueError, match=message):
        umap_embedding(features, **options)


def test_ids_from_selection_box_and_lasso_across_traces():
    # The shape Streamlit 1.67 returns from st.plotly_chart(..., on_select="rerun").
    event = {
        "selection": {
            "points": [
                {
                    "curve_number": 0,
                    "point_number": 3,
                    "point_index": 3,
                    "x": 1.5,
                    "y": -0.2,
                    "customdata": ["cat/a.png", "cat", 0.7],
                    "marker_size": 9.1,
                    "legendgroup": "",
                },
                {
                    "curve_number": 1,
                    "point_number": 3,
                    "point_index": 3,
                    "x": 4.0,
                    "y": 2.0,
                    "customdata": ["dog/b.png", "dog", 1.2],
                },
                {"curve_number": 1, "point_number": 0, "point_index": 0, "customdata": ["cat/a.png", "cat", 0.7]},
                {"curve_number": 1, "point_number": 5, "point_index": 5, "customdata": [17, "dog", None]},
                {"curve_number": 2, "point_number": 1, "point_index": 1},
            ],
            "point_indices": [3, 0, 5, 1],
            "box": [{"xref": "x", "yref": "y", "x": [0.0, 2.0], "y": [-1.0, 1.0]}],
            "lasso": [{"xref": "x", "yref": "y", "x": [3.0, 5.0, 4.0], "y": [1.0, 1.0, 3.0]}],
        }
    }

    assert ids_from_selection(event) == ["cat/a.png", "dog/b.png", "17"]
    assert ids_from_selection(event["selection"]) == ["cat/a.png", "dog/b.png", "17"]


@pytest.mark.parametrize(
    "event",
    [None, {}, {"selection": {}}, {"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}],
)
def test_ids_from_selection_empty(event):
    assert ids_from_selection(event) == []


def test_figure_one_trace_per_class():
    table = make_table()
    coords = np.arange(18, dtype=np.float32).reshape(9, 2)

    figure = embedding_figure(table, coords, color_by="class_name")

    assert len(figure.data) == 3
    assert all(isinstance(trace, go.Scattergl) for trace in figure.data)
    assert [trace.name for trace in figure.data] == ["cat", "&lt;b&gt;x&lt;/b&gt;", "dog"]
    assert figure.layout.dragmode == "lasso"
    assert figure.layout.showlegend is True


def test_figure_customdata_matches_rows_and_coordinates():
    table = make_table()
    coords = np.random.default_rng(0).normal(size=(9, 2))

    figure = embedding_figure(table, coords, color_by="class_name")

    assert sorted(trace_ids(figure)) == sorted(table["sample_id"])
    rows = {sample_id: position for position, sample_id in enumerate(table["sample_id"])}
    for trace in figure.data:
        for x, y, data in zip(trace.x, trace.y, trace.customdata):
            row = rows[data[0]]
            assert (x, y) == pytest.approx(tuple(coords[row]))
            assert data[1] == table["class_name"].iloc[row]
            assert data[2] == pytest.approx(table["lsi"].iloc[row])


def test_figure_round_trips_selection():
    table = make_table()
    figure = embedding_figure(table, np.zeros((9, 2)), color_by="class_name")
    points = [
        {"curve_number": curve, "point_index": 0, "customdata": list(figure.data[curve].customdata[0])}
        for curve in (2, 0)
    ]

    assert ids_from_selection({"selection": {"points": points}}) == ["img_2.png", "img_0.png"]


def test_figure_hover_text_is_escaped():
    figure = embedding_figure(make_table(), np.zeros((9, 2)), color_by="class_name")

    texts = [text for trace in figure.data for text in trace.text]
    assert any("label: &lt;b&gt;x&lt;/b&gt;" in text for text in texts)
    assert not any("<b>x</b>" in text for text in texts)
    assert all(text.startswith("id: img_") and "<br>LSI: " in text for text in texts)
    assert figure.data[0].hovertemplate == "%{text}<extra></extra>"


def test_figure_numeric_colour_is_finite_with_rank_sizes():
    table = make_table(4)
    table["lsi"] = [1.0, 1000.0, 2.0, 3.0]
    coords = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])

    figure = embedding_figure(table, coords)

    assert len(figure.data) == 1
    trace = figure.data[0]
    assert list(trace.marker.color) == [1.0, 1000.0, 2.0, 3.0]
    assert np.isfinite(np.asarray(trace.x, dtype=float)).all()
    assert np.isfinite(np.asarray(trace.y, dtype=float)).all()
    sizes = np.asarray(trace.marker.size, dtype=float)
    step = (MAX_MARKER_SIZE - MIN_MARKER_SIZE) / 3
    expected = [MIN_MARKER_SIZE, MAX_MARKER_SIZE, MIN_MARKER_SIZE + step, MIN_MARKER_SIZE + 2 * step]
    np.testing.assert_allclose(sizes, expected)


def test_figure_nan_colour_gets_own_trace():
    table = make_table(4)
    table.loc[2, "loss"] = np.nan
    table.loc[3, "lsi"] = np.nan

    figure = embedding_figure(table, np.zeros((4, 2)), color_by="loss")

    assert [trace.name for trace in figure.data] == ["loss", "no loss"]
    assert [row[0] for row in figure.data[1].customdata] == ["img_2.png"]
    assert np.isfinite(np.asarray(figure.data[0].marker.color, dtype=float)).all()
    sizes = [size for trace in figure.data for size in trace.marker.size]
    assert np.isfinite(sizes).all()
    assert list(figure.data[0].customdata[2]) == ["img_3.png", "cat", None]
    assert "<br>loss: " in figure.data[0].text[0]


def test_figure_constant_size_and_flag_colouring():
    table = make_table(4)
    table["flagged"] = [True, False, False, True]

    figure = embedding_figure(table, np.zeros((4, 2)), color_by="flagged", size_by_lsi=False)

    assert [trace.name for trace in figure.data] == ["not flagged", "flagged"]
    assert [row[0] for row in figure.data[1].customdata] == ["img_0.png", "img_3.png"]
    assert len({size for trace in figure.data for size in trace.marker.size}) == 1


def test_figure_draws_thumbnails_at_points():
    table = make_table(3)
    coords = np.array([[0.0, 0.0], [10.0, 5.0], [-10.0, 0.0]])
    thumbnails = {"img_1.png": "data:image/png;base64,AAAA", "unknown.png": "data:image/png;base64,BBBB"}

    figure = embedding_figure(table, coords, thumbnails=thumbnails)

    assert len(figure.layout.images) == 1
    image = figure.layout.images[0]
    assert image.source == "data:image/png;base64,AAAA"
    assert (image.x, image.y) == (10.0, 5.0)
    assert image.sizex == pytest.approx(0.8)


@pytest.mark.parametrize(
    "coords, options, message",
    [
        (np.zeros((8, 2)), {}, r"coords must have shape \(9, 2\)"),
        (np.full((9, 2), np.nan), {}, "18 NaN or infinite values"),
        (np.zeros((9, 2)), {"color_by": "sample_id"}, "cannot colour by 'sample_id'"),
        (np.zeros((9, 2)), {"color_by": "flagged"}, "merge them with merge_curation"),
    ],
)
def test_figure_rejects_bad_input(coords, options, message):
    with pytest.raises(ValueError, match=message):
        embedding_figure(make_table(), coords, **options)
