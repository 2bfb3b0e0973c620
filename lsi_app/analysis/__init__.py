"""Tables, rankings and thumbnails built from scores."""

from lsi_app.analysis.tables import build_sample_table, highest_and_lowest
from lsi_app.analysis.thumbnails import thumbnail

__all__ = ["build_sample_table", "highest_and_lowest", "thumbnail"]
