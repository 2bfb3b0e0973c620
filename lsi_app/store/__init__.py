"""Workspace storage: caches of features, probe weights and score tables, with locks and maintenance."""

from lsi_app.store.cache import FeatureCache, ProbeCache, ResultCache, cache_key
from lsi_app.store.curation import CURATION_FILE, CurationAction, CurationStore, ReviewVerdict
from lsi_app.store.locks import lock
from lsi_app.store.maintenance import clear, format_size, list_entries, parse_size, prune
from lsi_app.store.workspace import HOME_VARIABLE, EntryKind, workspace_dir

__all__ = [
    "CURATION_FILE",
    "CurationAction",
    "CurationStore",
    "HOME_VARIABLE",
    "EntryKind",
    "FeatureCache",
    "ProbeCache",
    "ResultCache",
    "ReviewVerdict",
    "cache_key",
    "clear",
    "format_size",
    "list_entries",
    "lock",
    "parse_size",
    "prune",
    "workspace_dir",
]
