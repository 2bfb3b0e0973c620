"""Layout of the workspace directory and the atomic file writes that fill it.

A workspace root contains one folder per entry kind (``features/``,
``probes/``, ``results/``) and ``locks/``. Every other file or folder in the
root belongs to someone else (for example a curation database) and is never
touched by the store.

Every cache file is written to a temporary file in its final folder and moved
into place with ``os.replace``. A reader therefore sees either no file or a
whole one. A writer killed mid-write leaves, for the file it was writing, at
most a temporary file named ``.<final name>.<random>.tmp``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

#: Environment variable that overrides the workspace directory.
HOME_VARIABLE = "LSI_APP_HOME"

#: Workspace used when neither an override nor ``$LSI_APP_HOME`` is given.
DEFAULT_WORKSPACE = Path("~") / ".cache" / "lsi-app"

#: Folder of the lock files, next to the entry folders.
LOCK_DIRECTORY = "locks"

#: Keys become file names, so they are restricted to characters that are safe
#: on every file system. Dots are excluded because the part of a file name
#: before the first dot is the key. 128 characters leave room for the longest
#: suffix within the common 255-byte name limit.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: Suffix of the temporary files that atomic writes create.
TEMPORARY_SUFFIX = ".tmp"


class EntryKind(str, Enum):
    """Kind of a workspace entry. Each stored kind has a folder of that name."""

    FEATURES = "features"
    PROBES = "probes"
    RESULTS = "results"
    #: Files left by an interrupted write. This kind has no folder of its own.
    PARTIAL = "partial"


#: Kinds that have a folder in the workspace root.
STORED_KINDS = (EntryKind.FEATURES, EntryKind.PROBES, EntryKind.RESULTS)


def workspace_dir(override: Path | str | None = None) -> Path:
    """Return the workspace directory.

    Parameters
    ----------
    override : Path or str, optional
        Directory given on the command line (``--workspace``). It takes
        precedence over ``$LSI_APP_HOME``, which takes precedence over
        ``~/.cache/lsi-app``. An empty string counts as not given.

    Returns
    -------
    Path
        The directory with ``~`` expanded. It is not created here.
    """
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    configured = os.environ.get(HOME_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return DEFAULT_WORKSPACE.expanduser()


def validate_key(key: str) -> str:
    """Return ``key`` unchanged, or raise ValueError if it is not a valid file-name key."""
    if not isinstance(key, str) or KEY_PATTERN.fullmatch(key) is None:
        raise ValueError(
            f"invalid cache key {key!r}; use 1 to 128 letters, digits, '_' or '-', "
            "for example a key from lsi_app.store.cache_key(...)"
        )
    return key


def is_temporary(name: str) -> bool:
    """Return whether a file name is that of an atomic write's temporary file."""
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def key_of(name: str) -> str:
    """Return the key part of an entry file name or of a temporary file name."""
    return name.lstrip(".").split(".", 1)[0]


def write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file through a temporary file in the same folder and move it into place.

    Parameters
    ----------
    target : Path
        Final path. Its folder is created if missing.
    write : callable
        Receives the temporary file, opened for binary writing, and writes the
        whole content.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    Exception
        Whatever ``write`` or the file system raises. The temporary file is
        removed first, and ``target`` keeps its previous content.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            # Without fsync a crash soon after the rename can leave an empty file under the final name.
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def mark_used(path: Path) -> None:
    """Set the modification time of ``path`` to now, so that pruning treats the entry as recently used.

    A read-only workspace or a concurrent deletion only loses the usage
    record, so OSError is logged and not raised.
    """
    try:
        os.utime(path)
    except OSError as error:
        logger.debug("could not record the use of %s: %s", path, error)
