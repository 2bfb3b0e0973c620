"""The 2-D map of the features: UMAP coordinates, the plotly figure and its selections."""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lsi_app.analysis.gallery import as_flag_array
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Below this many samples the map uses PCA. UMAP's fuzzy neighbour graph
#: needs a few neighbours per point, and for a handful of points a linear
#: projection shows the same structure without UMAP's start-up cost.
MIN_UMAP_SAMPLES = 10

#: UMAP's minimum distance between embedded points. 0.1 is the umap-learn
#: default, a compromise between tight clusters and visible local structure.
UMAP_MIN_DIST = 0.1

#: Marker diameters in pixels: LSI ranks map linearly onto this range, so
#: a few extreme values cannot make every other marker the minimum size.
MIN_MARKER_SIZE = 4.0
MAX_MARKER_SIZE = 14.0
#: Marker diameter in pixels when size does not encode LSI.
MARKER_SIZE = 6.0

#: Columns coloured by category, one trace per value; every other colour
#: column must be numeric and gets a continuous scale.
CATEGORICAL_COLOR_COLUMNS = ("class_name", "flagged")
COLOR_SCALE = "Viridis"
#: Colour of points whose colour value is NaN.
MISSING_COLOR = "#9e9e9e"

#: Thumbnails drawn on the map. Each is a layout image carrying its whole
#: data URI in the figure JSON, so a few hundred keep the page responsive.
MAX_MAP_THUMBNAILS = 200
#: Edge of a thumbnail on the map, as a fraction of the larger axis span.
THUMBNAIL_SPAN_FRACTION = 0.04


def _pca_2d(features: np.ndarray, seed: int) -> np.ndarray:
    """Project onto the first two principal components, padding with zeros where there are fewer."""
    n_samples, n_features = features.shape
    coords = np.zeros((n_samples, 2), dtype=np.float64)
    n_components = min(2, n_samples - 1, n_features)
    if n_components < 1:
        return coords
    from sklearn.decomposition import PCA

    # PCA of constant data divides zero variance by zero for the explained
    # variance ratio; the projection itself is all zeros and correct.
    with np.errstate(invalid="ignore", divide="ignore"):
        projected = PCA(n_components=n_components, random_state=seed).fit_transform(features)
    coords[:, :n_components] = projected
    return coords


def _umap_2d(features: np.ndarray, seed: int, n_neighbors: int) -> np.ndarray:
    # Imported here because importing umap compiles numba code, which takes
    # seconds and is not needed by the rest of the app.
    import umap

    # A random_state makes umap-learn single-threaded and deterministic. Passing
    # n_jobs=1 as well avoids its warning that it overrides n_jobs.
    reducer = umap.UMAP(
        n_components=2,
        random_state=seed,
        n_neighbors=min(n_neighbors, features.shape[0] - 1),
        min_dist=UMAP_MIN_DIST,
        metric="euclidean",
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(features), dtype=np.float64)


def umap_embedding(
    features: np.ndarray,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    progress: ProgressCallback = ignore_progress,
) -> np.ndarray:
    """Embed the features in 2-D with UMAP, falling back to PCA where UMAP cannot run.

    Fallbacks:

    - no samples: an empty (0, 2) array;
    - fewer than :data:`MIN_UMAP_SAMPLES` samples: PCA, with zero columns
      where there are fewer than two components (one sample, or one feature);
    - UMAP raises (umap-learn and pynndescent raise assorted errors on
      degenerate inputs): PCA, with a logged warning;
    - NaN or infinite feature values are replaced by 0 before embedding,
      and non-finite coordinates by 0 after it, each with a logged warning.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    seed : int, default=0
        Random state of UMAP and PCA; equal inputs give equal outputs.
    n_neighbors : int, default=15
        UMAP neighbourhood size, clamped to ``n_samples - 1``.
    progress : callable, default=ignore_progress
        Receives 0 at the start and 1 at the end; UMAP reports nothing in between.

    Returns
    -------
    ndarray of shape (n_samples, 2), dtype float32
        Finite coordinates.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {features.shape}")
    if features.dtype.kind not in "biuf":
        raise ValueError(f"features must be numeric, got dtype {features.dtype}")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    n_samples = features.shape[0]
    if n_samples == 0:
        return np.zeros((0, 2), dtype=np.float32)

    features = features.astype(np.float32, copy=False)
    finite = np.isfinite(features)
    if not finite.all():
        logger.warning("features contain %d NaN or infinite values; embedding them as 0", int((~finite).sum()))
        features = np.where(finite, features, np.float32(0.0))

    progress(0.0, "Computing the 2-D map")
    if n_samples < MIN_UMAP_SAMPLES:
        coords = _pca_2d(features, seed)
    else:
        try:
            coords = _umap_2d(features, seed, n_neighbors)
        except Exception as error:  # noqa: BLE001 - umap-learn and pynndescent raise many types
            logger.warning(
                "UMAP failed on %d samples (%s: %s); using PCA instead", n_samples, type(error).__name__, error
            )
            coords = _pca_2d(features, seed)

    finite = np.isfinite(coords)
    if not finite.all():
        logger.warning("the 2-D map has %d non-finite coordinates; setting them to 0", int((~finite).sum()))
        coords = np.where(finite, coords, 0.0)
    progress(1.0, "Computed the 2-D map")
    return coords.astype(np.float32)


def ids_from_selection(selection: Mapping | None) -> list[str]:
    """Return the sample ids of the points selected in a plotly chart.

    Parameters
    ----------
    selection : mapping or None
        What ``st.plotly_chart(..., on_select="rerun")`` returns, as in
        Streamlit 1.67: ``{"selection": {"points": [...], "point_indices":
        [...], "box": [...], "lasso": [...]}}``, or its inner ``selection``
        mapping. Each point carries the ``customdata`` row of its trace.

    Returns
    -------
    list of str
        ``customdata[0]`` of each point, without repeats, in first-seen
        order. Point indices are ignored because they count within one
        trace, so they are ambiguous across traces. Empty for None or an
        empty selection.
    """
    if not selection:
        return []
    inner = selection.get("selection", selection)
    points = (inner or {}).get("points") or []
    ids: dict[str, None] = {}
    for point in points:
        data = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is not None:
            ids.setdefault(str(data), None)
    return list(ids)


def _marker_sizes(table: pd.DataFrame, size_by_lsi: bool) -> np.ndarray:
    if not size_by_lsi or "lsi" not in table.columns:
        return np.full(len(table), MARKER_SIZE)
    ranks = table["lsi"].rank(method="average").to_numpy(dtype=np.float64)
    n_ranked = int(np.isfinite(ranks).sum())
    if n_ranked > 1:
        fraction = (ranks - 1.0) / (n_ranked - 1)
    else:
        fraction = np.full(len(table), 0.5)
    # Points without an LSI get the smallest marker.
    fraction = np.where(np.isfinite(fraction), fraction, 0.0)
    return MIN_MARKER_SIZE + (MAX_MARKER_SIZE - MIN_MARKER_SIZE) * fraction


def _hover_texts(table: pd.DataFrame, color_by: str) -> list[str]:
    """Build hover labels, HTML-escaping ids and class names because plotly renders some tags in them."""
    ids = table["sample_id"].astype(str).map(html.escape)
    labels = table["class_name"].astype(str).map(html.escape)
    if "lsi" in table.columns:
        lsi = table["lsi"].map(lambda value: f"{value:.4g}")
    else:
        lsi = pd.Series("n/a", index=table.index)
    texts = "id: " + ids + "<br>label: " + labels + "<br>LSI: " + lsi
    if color_by not in ("lsi", *CATEGORICAL_COLOR_COLUMNS):
        texts = texts + f"<br>{html.escape(color_by)}: " + table[color_by].map(lambda value: f"{value:.4g}")
    return texts.tolist()


@dataclass(frozen=True)
class _Points:
    """Per-point arrays of the figure, in table order."""

    coords: np.ndarray
    customdata: np.ndarray
    texts: np.ndarray
    sizes: np.ndarray


def _trace(name: str, points: _Points, rows: np.ndarray, marker: dict) -> go.Scattergl:
    """Build one WebGL trace of the points where ``rows`` is True; ``name`` must be HTML-escaped."""
    return go.Scattergl(
        x=points.coords[rows, 0],
        y=points.coords[rows, 1],
        mode="markers",
        name=name,
        customdata=points.customdata[rows],
        text=points.texts[rows],
        hovertemplate="%{text}<extra></extra>",
        marker={"size": points.sizes[rows], **marker},
    )


def _categorical_traces(table: pd.DataFrame, points: _Points, color_by: str) -> list[go.Scattergl]:
    if color_by == "flagged":
        values = pd.Series(as_flag_array(table["flagged"]), index=table.index)
    else:
        values = table[color_by].astype(str)
    traces = []
    for value in _category_order(table, color_by):
        rows = (values == value).to_numpy()
        if color_by == "flagged":
            name = "flagged" if value else "not flagged"
        else:
            # Legends render the same tags as hover labels, so class names are escaped too.
            name = html.escape(str(value))
        traces.append(_trace(name, points, rows, {}))
    return traces


def _numeric_traces(table: pd.DataFrame, points: _Points, color_by: str) -> list[go.Scattergl]:
    values = table[color_by].to_numpy(dtype=np.float64)
    scored = np.isfinite(values)
    title = html.escape(color_by)
    marker = {"color": values[scored], "colorscale": COLOR_SCALE, "showscale": True, "colorbar": {"title": title}}
    traces = [_trace(title, points, scored, marker)]
    if not scored.all():
        traces.append(_trace(f"no {title}", points, ~scored, {"color": MISSING_COLOR}))
    return traces


def _category_order(table: pd.DataFrame, color_by: str) -> list:
    if color_by == "flagged":
        return [False, True]
    mapping = table.attrs.get("label_mapping") or {}
    present = list(dict.fromkeys(table["class_name"].astype(str)))
    known = [name for _, name in sorted(mapping.items(), key=lambda item: int(item[0])) if name in present]
    return known + [name for name in present if name not in known]


def _validate_figure_inputs(table: pd.DataFrame, coords: np.ndarray, color_by: str) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape != (len(table), 2):
        raise ValueError(f"coords must have shape ({len(table)}, 2) to match the table, got {coords.shape}")
    if not np.isfinite(coords).all():
        raise ValueError(
            f"coords contain {int((~np.isfinite(coords)).sum())} NaN or infinite values; "
            "compute them with umap_embedding, which returns finite coordinates"
        )
    for name in ("sample_id", "class_name"):
        if name not in table.columns:
            raise ValueError(f"the score table has no {name!r} column; build it with build_sample_table")
    if color_by == "flagged" and "flagged" not in table.columns:
        raise ValueError("colouring by 'flagged' needs the curation columns; merge them with merge_curation first")
    if color_by not in CATEGORICAL_COLOR_COLUMNS:
        numeric = [name for name in table.columns if pd.api.types.is_numeric_dtype(table[name])]
        if color_by not in numeric:
            raise ValueError(
                f"cannot colour by {color_by!r}; choose one of {list(CATEGORICAL_COLOR_COLUMNS)} or a "
                f"numeric column {numeric}"
            )
    return coords


def _thumbnail_images(table: pd.DataFrame, coords: np.ndarray, thumbnails: dict[str, str]) -> list[dict]:
    # NOTE: the tests check these layout images in the figure object only.
    # How they look over a WebGL trace in a browser is unchecked.
    positions = {sample_id: row for row, sample_id in enumerate(table["sample_id"].astype(str))}
    wanted = [(positions[str(sample_id)], uri) for sample_id, uri in thumbnails.items() if str(sample_id) in positions]
    if len(wanted) > MAX_MAP_THUMBNAILS:
        logger.warning("drawing %d of %d thumbnails on the map", MAX_MAP_THUMBNAILS, len(wanted))
        wanted = wanted[:MAX_MAP_THUMBNAILS]
    span = float(np.ptp(coords, axis=0).max()) if len(coords) else 0.0
    edge = (span or 1.0) * THUMBNAIL_SPAN_FRACTION
    return [
        {
            "source": uri,
            "x": float(coords[row, 0]),
            "y": float(coords[row, 1]),
            "xref": "x",
            "yref": "y",
            "sizex": edge,
            "sizey": edge,
            "xanchor": "center",
            "yanchor": "middle",
            "layer": "above",
        }
        for row, uri in wanted
    ]


def embedding_figure(
    table: pd.DataFrame,
    coords: np.ndarray,
    *,
    color_by: str = "lsi",
    size_by_lsi: bool = True,
    thumbnails: dict[str, str] | None = None,
) -> go.Figure:
    """Draw the 2-D map as WebGL scatter traces with lasso selection.

    Parameters
    ----------
    table : DataFrame
        Score table; row ``i`` is drawn at ``coords[i]``.
    coords : ndarray of shape (n_samples, 2)
        Finite coordinates, for example from :func:`umap_embedding`.
    color_by : str, default="lsi"
        ``"class_name"`` or ``"flagged"`` draws one trace per value with a
        legend. Any numeric column draws one trace on a continuous colour
        scale, plus a grey trace for NaN values.
    size_by_lsi : bool, default=True
        Scale marker diameters from the LSI rank into
        [:data:`MIN_MARKER_SIZE`, :data:`MAX_MARKER_SIZE`] pixels.
    thumbnails : dict of str to str, optional
        Image URIs (``data:`` URIs or URLs) by sample id, drawn as images
        centred on their points; at most :data:`MAX_MAP_THUMBNAILS` are
        drawn. Hover labels show text only, because plotly hover labels
        cannot contain images, so the gallery and detail views show the
        other thumbnails.

    Returns
    -------
    plotly.graph_objects.Figure
        Each point's ``customdata`` is ``[sample_id, class_name, lsi]``, so
        :func:`ids_from_selection` maps a selection back to sample ids.
    """
    coords = _validate_figure_inputs(table, coords, color_by)
    lsi = table["lsi"].to_numpy(dtype=np.float64) if "lsi" in table.columns else np.full(len(table), np.nan)
    customdata = np.empty((len(table), 3), dtype=object)
    customdata[:, 0] = table["sample_id"].astype(str).to_numpy()
    customdata[:, 1] = table["class_name"].astype(str).to_numpy()
    customdata[:, 2] = [None if np.isnan(value) else float(value) for value in lsi]
    points = _Points(
        coords=coords,
        customdata=customdata,
        texts=np.array(_hover_texts(table, color_by), dtype=object),
        sizes=_marker_sizes(table, size_by_lsi),
    )

    if color_by in CATEGORICAL_COLOR_COLUMNS:
        traces = _categorical_traces(table, points, color_by)
    else:
        traces = _numeric_traces(table, points, color_by)
    figure = go.Figure(data=traces)
    figure.update_layout(
        dragmode="lasso",
        # A numeric colouring has a colour bar and needs a legend only for the NaN trace.
        showlegend=len(traces) > 1,
        xaxis={"showticklabels": False, "title": None, "zeroline": False},
        yaxis={"showticklabels": False, "title": None, "zeroline": False},
        legend={"title": {"text": html.escape(color_by)}, "itemsizing": "constant"},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        images=_thumbnail_images(table, coords, thumbnails or {}),
    )
    return figure
