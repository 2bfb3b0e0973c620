"""Workspace storage: on-disk result cache."""

from lsi_app.store.cache import ResultCache, cache_key, workspace_dir

__all__ = ["ResultCache", "cache_key", "workspace_dir"]
