"""Listing, clearing and pruning the entries of a workspace (``lsi-app cache``).

Only the entry folders (``features/``, ``probes/``, ``results/``) and
``locks/`` are touched. Files there whose names the caches do not write, and
everything else in the workspace root (such as ``curation.sqlite``), are
never listed or removed.

An entry whose lock is held belongs to a running computation, so
:func:`clear` and :func:`prune` skip it and log that they did. Both take the
entry's lock while they delete it, so a run cannot start computing a key
while its files are removed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd

from lsi_app.store.cache import read_sidecar
from lsi_app.store.locks import lock_path, try_lock
from lsi_app.store.workspace import (
    KEY_PATTERN,
    LOCK_DIRECTORY,
    STORED_KINDS,
    EntryKind,
    is_temporary,
    key_of,
)

logger = logging.getLogger(__name__)

#: Age in seconds after which a temporary file, or an entry whose completing
#: file is missing, counts as left by a killed writer. The files of an entry
#: are written one right after another, and a live writer keeps updating the
#: modification time of the file it writes, so an hour without change leaves a
#: wide margin.
PARTIAL_AGE_SECONDS = 3600.0

#: File name suffixes of each kind, the completing one first.
ENTRY_SUFFIXES = {
    EntryKind.FEATURES: (".json", ".npy", ".kept.npy"),
    EntryKind.PROBES: (".json", ".npy"),
    EntryKind.RESULTS: (".parquet", ".json"),
}

#: Columns of :func:`list_entries`.
ENTRY_COLUMNS = ["kind", "key", "size_bytes", "last_used", "description"]

#: Bytes per unit accepted by :func:`parse_size`. Units without an ``i`` are powers of 1000.
SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

_SIZE_PATTERN = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)

#: Units of :func:`format_size`, each 1000 times the previous.
_DISPLAY_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


@dataclass
class _Entry:
    kind: EntryKind
    key: str
    files: list[Path] = field(default_factory=list)
    size_bytes: int = 0
    last_used: float = 0.0
    description: str = ""


def list_entries(root: Path | str) -> pd.DataFrame:
    """List the cache entries of a workspace.

    Parameters
    ----------
    root : Path or str
        Workspace root. A missing root has no entries.

    Returns
    -------
    DataFrame
        One row per entry, most recently used first. The columns are
        ``kind`` (``features``, ``probes``, ``results`` or ``partial``),
        ``key`` and ``size_bytes`` (all files of the entry). ``last_used`` is
        the UTC timestamp of the newest file. ``description`` is the summary
        stored at save time, or "" when there is none.

    Notes
    -----
    A ``partial`` row groups the files that a killed writer left for one key
    in one folder: temporary files, and entry files without the file that
    completes the entry. Such files count only once they are
    ``PARTIAL_AGE_SECONDS`` old, because younger ones may belong to a
    running write.
    """
    entries = _scan(Path(root))
    last_used = pd.Series([entry.last_used for entry in entries], dtype="float64")
    table = pd.DataFrame(
        {
            "kind": pd.Series([entry.kind.value for entry in entries], dtype=object),
            "key": pd.Series([entry.key for entry in entries], dtype=object),
            "size_bytes": pd.Series([entry.size_bytes for entry in entries], dtype="int64"),
            "last_used": pd.to_datetime(last_used, unit="s", utc=True),
            "description": pd.Series([entry.description for entry in entries], dtype=object),
        },
        columns=ENTRY_COLUMNS,
    )
    table = table.sort_values(["last_used", "kind", "key"], ascending=[False, True, True], kind="stable")
    return table.reset_index(drop=True)


def clear(root: Path | str, kinds: Iterable[EntryKind | str] | None = None) -> tuple[int, int]:
    """Remove every entry of a workspace, or only those of some kinds.

    Parameters
    ----------
    root : Path or str
        Workspace root. It and every file that is not an entry stay.
    kinds : iterable of EntryKind or str, optional
        Kinds to remove, from ``features``, ``probes``, ``results`` and
        ``partial``. All kinds by default, and then also the lock files that
        no run holds.

    Returns
    -------
    n_entries : int
        Entries removed. Entries whose lock is held are skipped.
    n_bytes : int
        Bytes freed.
    """
    root = Path(root)
    selected = _parse_kinds(kinds)
    removed_entries = 0
    removed_bytes = 0
    for entry in _scan(root):
        if entry.kind not in selected:
            continue
        freed = _remove_entry(root, entry)
        if freed is not None:
            removed_entries += 1
            removed_bytes += freed
    if kinds is None:
        _remove_idle_locks(root)
    logger.info("cleared %d entries (%s) from %s", removed_entries, format_size(removed_bytes), root)
    return removed_entries, removed_bytes


def prune(root: Path | str, max_bytes: int) -> tuple[int, int]:
    """Remove least recently used entries until all entries together take at most ``max_bytes``.

    Partial entries go first, then complete entries from the least recently
    used. Entries whose lock is held are skipped, so the total can stay above
    ``max_bytes``, which is logged as a warning.

    Parameters
    ----------
    root : Path or str
        Workspace root.
    max_bytes : int
        Size limit for all entries together, in bytes. Files that are not
        entries do not count.

    Returns
    -------
    n_entries : int
        Entries removed.
    n_bytes : int
        Bytes freed.
    """
    if max_bytes < 0:
        raise ValueError(f"invalid size limit {max_bytes!r} bytes; pass a number >= 0, e.g. parse_size('500MB')")
    root = Path(root)
    entries = _scan(root)
    total = sum(entry.size_bytes for entry in entries)
    # Python's sort is stable and False < True, so partial entries come first.
    entries.sort(key=lambda entry: (entry.kind != EntryKind.PARTIAL, entry.last_used))

    removed_entries = 0
    removed_bytes = 0
    for entry in entries:
        if total <= max_bytes:
            break
        freed = _remove_entry(root, entry)
        if freed is None:
            continue
        removed_entries += 1
        removed_bytes += freed
        total -= entry.size_bytes
    if total > max_bytes:
        logger.warning(
            "entries in %s still take %s after pruning, over the limit of %s, because running "
            "computations hold the locks of the remaining entries",
            root,
            format_size(total),
            format_size(max_bytes),
        )
    logger.info("pruned %d entries (%s) from %s", removed_entries, format_size(removed_bytes), root)
    return removed_entries, removed_bytes


def parse_size(text: str) -> int:
    """Convert a size such as ``"500MB"`` or ``"1.5 GiB"`` to bytes.

    Units are B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
    (powers of 1024), in any letter case. A number without a unit is bytes.
    Fractions of a byte are rounded to the nearest byte.

    Raises
    ------
    ValueError
        When ``text`` is not a non-negative number with one of those units.
    """
    match = _SIZE_PATTERN.fullmatch(text) if isinstance(text, str) else None
    unit = match.group(2).lower() if match else None
    if match is None or (unit and unit not in SIZE_UNITS):
        raise ValueError(
            f"invalid size {text!r}; write a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
            "e.g. '500MB' or '1.5GiB'"
        )
    number = Decimal(match.group(1))
    return int((number * SIZE_UNITS[unit or "b"]).to_integral_value())


def format_size(n_bytes: int) -> str:
    """Format a byte count with one decimal in powers of 1000, e.g. ``"1.2 MB"``.

    Counts below 1000 are whole bytes, e.g. ``"512 B"``.
    """
    if n_bytes < 0:
        raise ValueError(f"invalid byte count {n_bytes!r}; pass a number >= 0")
    if n_bytes < 1000:
        return f"{int(n_bytes)} B"
    value = n_bytes / 1000
    for unit in _DISPLAY_UNITS[1:-1]:
        # Move up when rounding to one decimal would print 1000.0.
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} {_DISPLAY_UNITS[-1]}"


def _parse_kinds(kinds: Iterable[EntryKind | str] | None) -> set[EntryKind]:
    if kinds is None:
        return set(EntryKind)
    if isinstance(kinds, (str, EntryKind)):
        kinds = [kinds]
    selected = set()
    for kind in kinds:
        try:
            selected.add(EntryKind(kind))
        except ValueError:
            names = ", ".join(member.value for member in EntryKind)
            raise ValueError(f"unknown entry kind {kind!r}; use one of {names}") from None
    return selected


def _scan(root: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    now = time.time()
    for kind in STORED_KINDS:
        directory = root / kind.value
        if not directory.is_dir():
            continue
        complete: dict[str, _Entry] = {}
        partial: dict[str, _Entry] = {}
        for path in directory.iterdir():
            try:
                status = path.stat()
            except FileNotFoundError:  # Removed by a concurrent writer or clear.
                continue
            if not path.is_file():
                continue
            name = path.name
            if is_temporary(name):
                if now - status.st_mtime > PARTIAL_AGE_SECONDS:
                    _add_file(partial, EntryKind.PARTIAL, key_of(name), path, status)
                continue
            key = key_of(name)
            if KEY_PATTERN.fullmatch(key) is None or name[len(key) :] not in ENTRY_SUFFIXES[kind]:
                continue  # Not written by the caches, so not ours to list or remove.
            _add_file(complete, kind, key, path, status)

        for key, entry in complete.items():
            marker = directory / f"{key}{ENTRY_SUFFIXES[kind][0]}"
            if marker in entry.files:
                entry.description = _read_summary(directory / f"{key}.json")
                entries.append(entry)
            elif now - entry.last_used > PARTIAL_AGE_SECONDS:
                _merge_partial(partial, entry)
        for entry in partial.values():
            names = ", ".join(sorted(path.name for path in entry.files))
            entry.description = f"unfinished write in {kind.value}/: {names}"
            entries.append(entry)
    return entries


def _add_file(entries: dict[str, _Entry], kind: EntryKind, key: str, path: Path, status: os.stat_result) -> None:
    entry = entries.setdefault(key, _Entry(kind, key))
    entry.files.append(path)
    entry.size_bytes += status.st_size
    entry.last_used = max(entry.last_used, status.st_mtime)


def _merge_partial(partial: dict[str, _Entry], entry: _Entry) -> None:
    """Add the files of an incomplete entry to the partial entry of its key."""
    merged = partial.setdefault(entry.key, _Entry(EntryKind.PARTIAL, entry.key))
    merged.files.extend(entry.files)
    merged.size_bytes += entry.size_bytes
    merged.last_used = max(merged.last_used, entry.last_used)


def _read_summary(path: Path) -> str:
    if not path.is_file():
        return ""
    try:
        return str(read_sidecar(path).get("summary", ""))
    except (OSError, ValueError) as error:
        logger.warning("cannot read the description in %s: %s", path, error)
        return ""


def _remove_entry(root: Path, entry: _Entry) -> int | None:
    """Delete an entry's files under its lock and return the bytes freed, or None when the lock is held."""
    if KEY_PATTERN.fullmatch(entry.key) is None:
        # A temporary file whose name does not start with a valid key has no lock to check.
        return _remove_files(entry.files)
    with try_lock(root, entry.key) as acquired:
        if not acquired:
            logger.info(
                "skipped %s entry %s because a running computation has locked %s",
                entry.kind.value,
                entry.key,
                lock_path(root, entry.key),
            )
            return None
        freed = _remove_files(entry.files)
        # Safe while held, because a run waiting on this file detects the deletion and retries.
        lock_path(root, entry.key).unlink(missing_ok=True)
    return freed


def _remove_files(paths: list[Path]) -> int:
    freed = 0
    for path in paths:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            # For example, Windows cannot delete a file while a reader has it memory-mapped.
            logger.warning("failed to remove cache file %s: %s; remove it by hand or run again later", path, error)
            continue
        freed += size
    return freed


def _remove_idle_locks(root: Path) -> None:
    directory = root / LOCK_DIRECTORY
    if not directory.is_dir():
        return
    for path in directory.glob("*.lock"):
        key = path.name[: -len(".lock")]
        if KEY_PATTERN.fullmatch(key) is None:
            continue
        with try_lock(root, key) as acquired:
            if acquired:
                path.unlink(missing_ok=True)
