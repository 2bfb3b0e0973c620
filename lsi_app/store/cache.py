"""Content-addressed cache of score tables in the workspace directory.

Each entry is one Parquet file named by a hash of everything that determines
its content. Writes go to a temporary file in the same directory and are moved
into place with ``os.replace``, so a reader never sees a partial file and two
concurrent writers of the same key leave one complete copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

#: Environment variable that overrides the workspace directory.
HOME_VARIABLE = "LSI_APP_HOME"


def workspace_dir() -> Path:
    """Return the workspace directory: ``$LSI_APP_HOME`` or ``~/.cache/lsi-app``."""
    configured = os.environ.get(HOME_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "lsi-app"


def cache_key(parts: dict) -> str:
    """Hash a JSON-serialisable description of a computation into a 24-hex-digit key."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class ResultCache:
    """Score tables stored as ``<root>/results/<key>.parquet``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else workspace_dir()
        self.directory = self.root / "results"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.parquet"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str) -> pd.DataFrame:
        """Read a stored table; raise FileNotFoundError when the key is absent."""
        return pd.read_parquet(self.path(key))

    def save(self, key: str, table: pd.DataFrame) -> Path:
        """Write ``table`` (with its ``attrs``) atomically and return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(key)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        os.close(handle)
        try:
            table.to_parquet(temporary, index=False)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target
