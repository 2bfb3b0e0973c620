"""Content-addressed caches of features, probe weights and score tables.

Each entry is named by :func:`cache_key`, a hash of everything that
determines its content, so two writers of the same key store the same data.
The three kinds share one workspace root:

- ``features/<key>.npy`` (float32, shape (n, D)), ``features/<key>.kept.npy``
  (int64 indices of the kept items) and ``features/<key>.json``;
- ``probes/<key>.npy`` (probe weights) and ``probes/<key>.json``;
- ``results/<key>.parquet`` and, when a description is given,
  ``results/<key>.json``.

Each file is written atomically (see :mod:`lsi_app.store.workspace`). The
file that marks an entry as complete is written last: the ``.json`` for
features and probes, the ``.parquet`` for results. ``has(key)`` checks only
that file, so it never reports an entry whose other files are still being
written. Loading an entry sets the marker's modification time, which
:func:`lsi_app.store.maintenance.prune` uses to delete the least recently
used entries first.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsi_app.store.workspace import (
    HOME_VARIABLE,
    EntryKind,
    mark_used,
    validate_key,
    workspace_dir,
    write_atomically,
)

__all__ = [
    "HOME_VARIABLE",
    "FeatureCache",
    "ProbeCache",
    "ResultCache",
    "cache_key",
    "read_sidecar",
    "workspace_dir",
]

logger = logging.getLogger(__name__)

#: Version of the ``.json`` sidecar layout. Loading a sidecar of another version raises ValueError.
FORMAT_VERSION = 1

#: Maximum length of the one-line summary shown by ``lsi-app cache list``.
#: Longer summaries are cut so that the table fits a terminal line.
SUMMARY_MAX_CHARS = 120


def cache_key(parts: dict) -> str:
    """Hash a JSON-serialisable description of a computation into a 24-hex-digit key."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def summarize(metadata: Mapping[str, Any]) -> str:
    """Return a one-line summary of a metadata dict.

    A string under ``"description"`` is used as is. Otherwise the summary lists
    the scalar values as ``name=value``, with nested dicts flattened to
    dotted names (``cnn.epochs=5``) and lists left out. The result is cut to
    ``SUMMARY_MAX_CHARS`` characters.
    """
    text = metadata.get("description")
    if not isinstance(text, str):
        text = ", ".join(f"{name}={value}" for name, value in _scalar_items(metadata, ""))
    text = " ".join(text.split())
    if len(text) > SUMMARY_MAX_CHARS:
        text = text[: SUMMARY_MAX_CHARS - 1] + "…"
    return text


def _scalar_items(metadata: Mapping[str, Any], prefix: str):
    for name, value in metadata.items():
        if isinstance(value, Mapping):
            yield from _scalar_items(value, f"{prefix}{name}.")
        elif isinstance(value, (str, int, float, bool)) or value is None:
            yield f"{prefix}{name}", value


def read_sidecar(path: Path) -> dict:
    """Read an entry's ``.json`` sidecar and check its format version.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not valid JSON or has another format version.
    """
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"cache metadata {path} is not valid JSON ({error}); remove the entry with "
            "`lsi-app cache clear` and compute it again"
        ) from error
    version = sidecar.get("format_version") if isinstance(sidecar, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"cache metadata {path} has format version {version!r}, but this lsi-app reads version "
            f"{FORMAT_VERSION}; remove the entry with `lsi-app cache clear` and compute it again"
        )
    return sidecar


def _sidecar_bytes(kind: EntryKind, key: str, metadata: Mapping[str, Any], summary: str | None, **fields) -> bytes:
    """Serialise an entry's sidecar, raising TypeError that names the entry when metadata is not JSON."""
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata of {kind.value} entry {key!r} is a {type(metadata).__name__}; pass a dict")
    sidecar = {
        "format_version": FORMAT_VERSION,
        "kind": kind.value,
        "key": key,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "summary": summarize(metadata) if summary is None else summary,
        **fields,
        "metadata": dict(metadata),
    }
    try:
        text = json.dumps(sidecar, ensure_ascii=False, indent=1)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"metadata of {kind.value} entry {key!r} is not JSON-serialisable ({error}); "
            "convert arrays with .tolist() and paths with str()"
        ) from error
    return text.encode("utf-8")


def _write_bytes(path: Path, content: bytes) -> None:
    write_atomically(path, lambda stream: stream.write(content))


def _write_array(path: Path, array: np.ndarray) -> None:
    write_atomically(path, lambda stream: np.save(stream, array, allow_pickle=False))


class _ArrayEntryCache:
    """Entries made of ``.npy`` arrays and a ``.json`` sidecar that is written last."""

    kind: EntryKind

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else workspace_dir()
        self.directory = self.root / self.kind.value

    def metadata_path(self, key: str) -> Path:
        """Return the path of the sidecar that marks the entry ``key`` as complete."""
        return self.directory / f"{validate_key(key)}.json"

    def has(self, key: str) -> bool:
        """Return whether the entry ``key`` is complete."""
        return self.metadata_path(key).is_file()

    def _save_entry(self, key: str, arrays: dict[Path, np.ndarray], sidecar: bytes) -> None:
        written: list[Path] = []
        try:
            for path, array in arrays.items():
                _write_array(path, array)
                written.append(path)
            _write_bytes(self.metadata_path(key), sidecar)
        except BaseException:
            # Arrays without a sidecar are invisible to has() but take disk space.
            # NOTE: a concurrent unlocked writer of the same key may lose its arrays
            # here if it already wrote them and has not yet written its sidecar.
            if not self.has(key):
                for path in written:
                    path.unlink(missing_ok=True)
            raise

    def _load_sidecar(self, key: str) -> dict:
        path = self.metadata_path(key)
        if not path.is_file():
            raise FileNotFoundError(
                f"no {self.kind.value} entry {key!r} in {self.directory}; check has(key) before load(key)"
            )
        return read_sidecar(path)

    def _load_array(self, path: Path, expected_shape: list[int], mmap_mode: str | None) -> np.ndarray:
        try:
            array = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"cache file {path} is missing although its entry is marked complete; remove the entry "
                "with `lsi-app cache clear` and compute it again"
            ) from error
        if list(array.shape) != list(expected_shape):
            raise ValueError(
                f"cache file {path} has shape {array.shape}, but its metadata records {tuple(expected_shape)}; "
                "remove the entry with `lsi-app cache clear` and compute it again"
            )
        return array


class FeatureCache(_ArrayEntryCache):
    """Feature matrices stored as ``<root>/features/<key>.npy`` with kept indices and metadata.

    Parameters
    ----------
    root : Path or str, optional
        Workspace root. Defaults to :func:`workspace_dir`.
    """

    kind = EntryKind.FEATURES

    def path(self, key: str) -> Path:
        """Return the path of the features array of ``key``."""
        return self.directory / f"{validate_key(key)}.npy"

    def kept_path(self, key: str) -> Path:
        """Return the path of the kept-indices array of ``key``."""
        return self.directory / f"{validate_key(key)}.kept.npy"

    def save(
        self,
        key: str,
        features: np.ndarray,
        kept: np.ndarray,
        metadata: Mapping[str, Any],
        description: str | None = None,
    ) -> Path:
        """Store a feature matrix, the indices of the items it covers and its metadata.

        Parameters
        ----------
        key : str
            Cache key, for example from :func:`cache_key`.
        features : ndarray of shape (n_kept, n_features)
            Stored as float32.
        kept : ndarray of shape (n_kept,)
            Integer positions in the source sample set of the rows of
            ``features``. Stored as int64.
        metadata : dict
            JSON-serialisable facts about the entry, returned by :meth:`load`
            as given: for example skipped items as ``[[item, reason], ...]``,
            notes and source descriptions. Non-ASCII text is kept.
        description : str, optional
            One-line summary for ``lsi-app cache list``. Defaults to
            ``metadata["description"]`` or a summary of the scalar values of
            ``metadata``.

        Returns
        -------
        Path
            The features ``.npy`` file.

        Raises
        ------
        ValueError
            When ``features`` is not 2-D and numeric, or ``kept`` is not 1-D
            integers of length ``n_kept``.
        TypeError
            When ``metadata`` is not a JSON-serialisable dict. Nothing is
            written in that case.
        """
        features = np.asarray(features)
        if features.ndim != 2 or not _is_real_number(features.dtype):
            raise ValueError(
                f"features for entry {key!r} have shape {features.shape} and dtype {features.dtype}; "
                "pass a numeric array of shape (n_samples, n_features)"
            )
        kept = np.asarray(kept)
        # np.asarray([]) is float64, so an empty index array of any dtype is accepted.
        integer_kept = kept.size == 0 or np.issubdtype(kept.dtype, np.integer)
        if kept.ndim != 1 or len(kept) != len(features) or not integer_kept:
            raise ValueError(
                f"kept indices for entry {key!r} have shape {kept.shape} and dtype {kept.dtype}; pass one "
                f"integer index per feature row, shape ({len(features)},)"
            )
        features = np.ascontiguousarray(features, dtype=np.float32)
        kept = kept.astype(np.int64)
        sidecar = _sidecar_bytes(
            self.kind, key, metadata, description, shape=list(features.shape), dtype=str(features.dtype)
        )
        self._save_entry(key, {self.path(key): features, self.kept_path(key): kept}, sidecar)
        logger.debug("stored features %s of shape %s in %s", key, features.shape, self.directory)
        return self.path(key)

    def load(self, key: str, mmap_mode: str | None = "r") -> tuple[np.ndarray, np.ndarray, dict]:
        """Read a stored entry and record its use.

        Parameters
        ----------
        key : str
        mmap_mode : {"r", "c", None}, default "r"
            Passed to :func:`numpy.load`. The default maps the features
            read-only instead of reading them into memory. Copy the array
            before changing it, or pass ``"c"`` for a copy-on-write map.

        Returns
        -------
        features : ndarray of shape (n_kept, n_features)
            float32.
        kept : ndarray of shape (n_kept,)
            int64 positions of the rows in the source sample set.
        metadata : dict
            The ``metadata`` given to :meth:`save`.

        Raises
        ------
        FileNotFoundError
            When the entry is absent or one of its files is missing.
        ValueError
            When the files disagree with the shape recorded in the metadata.
        """
        sidecar = self._load_sidecar(key)
        shape = sidecar["shape"]
        features = self._load_array(self.path(key), shape, mmap_mode)
        kept = self._load_array(self.kept_path(key), shape[:1], None)
        mark_used(self.metadata_path(key))
        return features, kept, sidecar["metadata"]


class ProbeCache(_ArrayEntryCache):
    """Probe weights stored as ``<root>/probes/<key>.npy`` with metadata.

    Parameters
    ----------
    root : Path or str, optional
        Workspace root. Defaults to :func:`workspace_dir`.
    """

    kind = EntryKind.PROBES

    def path(self, key: str) -> Path:
        """Return the path of the weights array of ``key``."""
        return self.directory / f"{validate_key(key)}.npy"

    def save(
        self, key: str, weights: np.ndarray, metadata: Mapping[str, Any], description: str | None = None
    ) -> Path:
        """Store probe weights and their metadata.

        Parameters
        ----------
        key : str
        weights : ndarray
            Numeric array of any shape, stored with its dtype.
        metadata : dict
            JSON-serialisable facts about the probe, returned by :meth:`load`.
        description : str, optional
            One-line summary for ``lsi-app cache list``. The default is
            that of :meth:`FeatureCache.save`.

        Returns
        -------
        Path
            The weights ``.npy`` file.

        Raises
        ------
        ValueError
            When ``weights`` is not numeric.
        TypeError
            When ``metadata`` is not a JSON-serialisable dict. Nothing is
            written in that case.
        """
        weights = np.asarray(weights)
        if not _is_real_number(weights.dtype):
            raise ValueError(f"probe weights for entry {key!r} have dtype {weights.dtype}; pass a numeric array")
        sidecar = _sidecar_bytes(
            self.kind, key, metadata, description, shape=list(weights.shape), dtype=str(weights.dtype)
        )
        self._save_entry(key, {self.path(key): weights}, sidecar)
        return self.path(key)

    def load(self, key: str, mmap_mode: str | None = None) -> tuple[np.ndarray, dict]:
        """Read stored weights and metadata and record their use.

        Parameters
        ----------
        key : str
        mmap_mode : {"r", "c", None}, default None
            Passed to :func:`numpy.load`. Probes are small, so the default
            reads them into memory.

        Returns
        -------
        weights : ndarray
        metadata : dict

        Raises
        ------
        FileNotFoundError, ValueError
            As :meth:`FeatureCache.load`.
        """
        sidecar = self._load_sidecar(key)
        weights = self._load_array(self.path(key), sidecar["shape"], mmap_mode)
        mark_used(self.metadata_path(key))
        return weights, sidecar["metadata"]


class ResultCache:
    """Score tables stored as ``<root>/results/<key>.parquet`` with an optional ``.json`` description.

    Parameters
    ----------
    root : Path or str, optional
        Workspace root. Defaults to :func:`workspace_dir`. Nothing is created
        until the first :meth:`save`.
    """

    kind = EntryKind.RESULTS

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else workspace_dir()
        self.directory = self.root / self.kind.value

    def path(self, key: str) -> Path:
        """Return the Parquet path of ``key``. The entry is complete once this file exists."""
        return self.directory / f"{validate_key(key)}.parquet"

    def metadata_path(self, key: str) -> Path:
        """Return the path of the optional description sidecar of ``key``."""
        return self.directory / f"{validate_key(key)}.json"

    def has(self, key: str) -> bool:
        """Return whether the table of ``key`` is stored."""
        return self.path(key).is_file()

    def load(self, key: str) -> pd.DataFrame:
        """Read a stored table, with its ``attrs``, and record its use.

        Raises
        ------
        FileNotFoundError
            When the key is absent.
        """
        table = pd.read_parquet(self.path(key))
        mark_used(self.path(key))
        return table

    def load_description(self, key: str) -> dict | None:
        """Return the description given to :meth:`save`, or None when none was given."""
        path = self.metadata_path(key)
        if not path.is_file():
            return None
        return read_sidecar(path)["metadata"]

    def save(self, key: str, table: pd.DataFrame, description: Mapping[str, Any] | None = None) -> Path:
        """Write ``table`` (with its ``attrs``) atomically and return its path.

        Parameters
        ----------
        key : str
        table : DataFrame
        description : dict, optional
            JSON-serialisable settings that produced the table, stored as
            ``<key>.json`` and summarised by ``lsi-app cache list``. When
            None, an existing sidecar of the key is kept: the key fixes the
            content, so the old description still applies.

        Raises
        ------
        TypeError
            When ``description`` is not JSON-serialisable. Nothing is written
            in that case.
        """
        target = self.path(key)
        sidecar = None if description is None else _sidecar_bytes(self.kind, key, description, None)
        wrote_sidecar = False
        try:
            # The sidecar goes first, because the Parquet file marks the entry as complete.
            if sidecar is not None:
                _write_bytes(self.metadata_path(key), sidecar)
                wrote_sidecar = True
            write_atomically(target, lambda stream: table.to_parquet(stream, index=False))
        except BaseException:
            if wrote_sidecar and not self.has(key):
                self.metadata_path(key).unlink(missing_ok=True)
            raise
        return target


def _is_real_number(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
