"""Classes page: informativeness per class, LSI distributions and label-prediction confusion."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from lsi_app.analysis.classes import class_table, confusion_matrix, lsi_distributions
from lsi_app.ui.state import curated_table, require_result

#: Results whose class statistics stay in memory.
MAX_CACHED_TABLES = 8

SORT_CHOICES = {
    "mean LSI, highest first": ("mean_lsi", False),
    "mean LSI, lowest first": ("mean_lsi", True),
    "sample count": ("count", False),
    "probe accuracy": ("accuracy", True),
    "class name": ("class_name", True),
}

st.title("Classes")
st.caption(
    "A class with high mean LSI has samples the posterior depends on: hard, diverse or noisy. "
    "Bars show the mean LSI with a 95% bootstrap interval."
)


@st.cache_data(max_entries=MAX_CACHED_TABLES, show_spinner="Bootstrapping class intervals")
def _class_statistics(result_key: str, _table, class_names: tuple[str, ...]):
    # The bootstrap costs seconds at 50,000 samples and depends on the scores only, so it
    # is cached per result. Flag counts change with every action, so they are added afterwards.
    return class_table(_table, list(class_names))


result = require_result()
table = curated_table(result)
class_names = list(result.samples.class_names)
per_class = _class_statistics(result.key, result.table, tuple(class_names)).copy()
per_class["flagged"] = table.groupby("label")["flagged"].sum().reindex(per_class.index, fill_value=0).to_numpy()

order = st.selectbox("Sort classes by", list(SORT_CHOICES), key="classes-sort")
column, ascending = SORT_CHOICES[order]
per_class = per_class.sort_values(column, ascending=ascending, kind="stable", na_position="last")
names = per_class["class_name"].astype(str)

bars = go.Figure(
    go.Bar(
        x=names,
        y=per_class["mean_lsi"],
        error_y=dict(
            type="data",
            symmetric=False,
            array=(per_class["mean_lsi_high"] - per_class["mean_lsi"]).fillna(0),
            arrayminus=(per_class["mean_lsi"] - per_class["mean_lsi_low"]).fillna(0),
        ),
        customdata=per_class[["count"]],
        hovertemplate="class %{x}<br>mean LSI %{y:.3g}<br>%{customdata[0]} samples<extra></extra>",
    )
)
bars.update_layout(
    height=380, margin=dict(l=10, r=10, t=10, b=10), xaxis_type="category", xaxis_title="class",
    yaxis_title="mean LSI (nats)",
)
st.plotly_chart(bars, width="stretch")

st.dataframe(per_class, hide_index=True, width="stretch")

st.subheader("LSI distribution per class")
distributions = lsi_distributions(table)
box = px.box(distributions, x="class_name", y="lsi", points=False, category_orders={"class_name": names.tolist()})
box.update_layout(
    height=380, margin=dict(l=10, r=10, t=10, b=10), xaxis_type="category", xaxis_title="class",
    yaxis_title="LSI (nats)", yaxis_type="log",
)
st.plotly_chart(box, width="stretch")

st.subheader("Given label against the probe's prediction")
confusion = confusion_matrix(table, class_names)
heatmap = px.imshow(
    confusion.to_numpy(),
    x=[str(name) for name in confusion.columns],
    y=[str(name) for name in confusion.index],
    labels=dict(x="predicted", y="given label", color="samples"),
    text_auto=len(class_names) <= 20,
    color_continuous_scale="Blues",
    aspect="auto",
)
heatmap.update_layout(height=max(300, 28 * len(class_names)), margin=dict(l=10, r=10, t=10, b=10))
heatmap.update_xaxes(type="category")
heatmap.update_yaxes(type="category")
st.plotly_chart(heatmap, width="stretch")
