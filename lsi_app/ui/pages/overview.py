"""Overview page: how hard the dataset is, the LSI distribution and the self-check."""

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from lsi_app.analysis import highest_and_lowest
from lsi_app.ui.state import curation_store, current_settings, require_result
from lsi_app.ui.widgets import item_caption, show_item

#: Samples in each strip of highest and lowest LSI.
STRIP_SIZE = 8
HISTOGRAM_BINS = 60
#: Self-check agreement below which the page warns. On digits every structure
#: reaches a Spearman of about 0.99 and a median relative error under 0.25
#: (benchmarks/RESULTS.md), so these bounds leave room before warning.
SELF_CHECK_MIN_SPEARMAN = 0.95
SELF_CHECK_MAX_ERROR = 0.5

st.title("Laplace Sample Information")
st.caption(
    "LSI is the KL divergence, in nats, between the probe's posterior fit on all samples and the "
    "one fit without a sample. High LSI marks atypical or mislabeled samples; low LSI marks "
    "typical, redundant ones."
)
result = require_result()
settings = current_settings()
table = result.table
counts = curation_store().counts(result.samples.fingerprint)
lsi_settings = table.attrs.get("lsi_settings", {})

metrics = st.columns(6)
metrics[0].metric("Samples", f"{len(table):,}")
metrics[1].metric("Classes", f"{result.samples.n_classes}")
metrics[2].metric("Probe accuracy", f"{(table['predicted'] == table['label']).mean():.1%}")
metrics[3].metric("Mean LSI (nats)", f"{table['lsi'].mean():.3g}")
metrics[4].metric("Median LSI (nats)", f"{table['lsi'].median():.3g}")
metrics[5].metric("Flagged", f"{counts['flagged']:,}")

if result.samples.pseudo_labels:
    st.info(f"Unlabelled data: the classes are {result.samples.n_classes} k-means clusters of the features.")
skipped = result.skipped
if len(skipped):
    noun = "item" if len(skipped) == 1 else "items"
    with st.expander(f"{len(skipped)} {noun} skipped while opening the dataset"):
        st.dataframe(skipped, hide_index=True, width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("LSI distribution")
    positive = table["lsi"].clip(lower=np.finfo(float).tiny)
    log_scale = st.toggle("Log scale", value=bool(positive.max() / positive.median() > 100))
    values = np.log10(positive) if log_scale else table["lsi"]
    histogram = px.histogram(
        pd.DataFrame({"LSI": values}),
        x="LSI",
        nbins=HISTOGRAM_BINS,
        labels={"LSI": "log10 LSI (nats)" if log_scale else "LSI (nats)"},
    )
    histogram.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(histogram, width="stretch")
with right:
    st.subheader("Samples per class")
    per_class = table["class_name"].value_counts().reindex(list(result.samples.class_names), fill_value=0)
    bars = px.bar(x=per_class.index.astype(str), y=per_class.to_numpy(), labels={"x": "class", "y": "samples"})
    bars.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), xaxis_type="category")
    st.plotly_chart(bars, width="stretch")

st.subheader("Self-check: fast against exact LSI")
check = lsi_settings.get("self_check")
if check:
    exact = np.asarray(check["exact_lsi"])
    fast = table["lsi_fast"].to_numpy() if "lsi_fast" in table else table["lsi"].to_numpy()
    fast = fast[np.asarray(check["indices"], dtype=int)]
    st.write(
        f"{check['n_samples']} random samples refitted without themselves: Spearman "
        f"{check['spearman']:.4f}, median relative error {check['median_relative_error']:.3g}."
    )
    if check["spearman"] < SELF_CHECK_MIN_SPEARMAN or check["median_relative_error"] > SELF_CHECK_MAX_ERROR:
        st.warning(
            "The fast values disagree with exact refits on this dataset, so read LSI as a ranking only. "
            "Small datasets and weak priors make the one-step approximation worse; a larger prior "
            "precision, more samples or the exact method (lsi-app compute --method exact) help."
        )
    figure = go.Figure(go.Scatter(x=exact, y=fast, mode="markers", name="samples"))
    limit = float(max(exact.max(), fast.max())) * 1.05
    figure.add_trace(go.Scatter(x=[0, limit], y=[0, limit], mode="lines", name="fast = exact", line=dict(dash="dot")))
    figure.update_layout(
        height=320, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="exact LSI (nats)", yaxis_title="fast LSI (nats)"
    )
    st.plotly_chart(figure, width="stretch")
else:
    st.write("No self-check in this run: the fast values were not compared with exact refits.")

highest, lowest = highest_and_lowest(table, min(STRIP_SIZE, len(table)))
for title, rows in (("Highest LSI", highest), ("Lowest LSI", lowest)):
    st.subheader(title)
    columns = st.columns(STRIP_SIZE)
    for column, (_, row) in zip(columns, rows.iterrows()):
        show_item(column, result.samples, int(row["index"]), item_caption(row), alt=str(row["sample_id"]))

st.caption(
    f"Posterior {lsi_settings.get('hessian', settings.hessian)}, prior precision "
    f"{lsi_settings.get('prior_precision', settings.prior_precision):g}, {lsi_settings.get('device', '')}, "
    f"{lsi_settings.get('dtype', '')}."
)
