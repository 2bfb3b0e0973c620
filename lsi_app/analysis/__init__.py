"""Tables, rankings, summaries and pseudo-labels built from features and scores."""

from lsi_app.analysis.clusters import kmeans_pseudo_labels
from lsi_app.analysis.summaries import LSISummary, summarize_lsi
from lsi_app.analysis.tables import build_sample_table, highest_and_lowest

__all__ = ["LSISummary", "kmeans_pseudo_labels", "summarize_lsi", "build_sample_table", "highest_and_lowest"]
