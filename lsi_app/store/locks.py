"""Inter-process locks per cache key, built on ``fcntl.flock``.

Two runs that would compute the same entry wrap "check the cache, compute,
save" in :func:`lock`. The second run waits, then finds the entry and skips
the computation. Readers never need the lock, because every cache file is
moved into place whole (see :mod:`lsi_app.store.workspace`).

The lock file is ``<root>/locks/<key>.lock``. The operating system releases a
``flock`` when the holding process exits or is killed, so a lock file left
behind blocks no later run. The exception is a child forked inside the
``with`` block, which shares the descriptor and keeps the lock until it
exits. Maintenance deletes lock files only while it holds them, and
:func:`lock` checks after locking that its file still has the lock path's
name, so deleting a lock file never lets two holders in.

Where :mod:`fcntl` is unavailable (Windows) both functions here are no-ops.
Two runs may then compute the same entry twice, and atomic replacement still
keeps every entry whole.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lsi_app.store.workspace import LOCK_DIRECTORY, validate_key

try:
    import fcntl
except ImportError:  # Windows has no flock.
    fcntl = None

logger = logging.getLogger(__name__)

#: Default maximum wait for a lock, in seconds. The holder may be extracting
#: features of a large dataset on CPU, which by estimate takes tens of
#: minutes, so the wait covers one long computation and still ends a run that
#: is stuck.
DEFAULT_LOCK_TIMEOUT_SECONDS = 3600.0

#: Interval between attempts to take a held lock, in seconds. A waiting run
#: starts within this time of the release, and polling this often costs no
#: measurable CPU.
LOCK_POLL_SECONDS = 0.05

#: Returned by ``_try_acquire`` when the locked file was deleted or replaced under its name.
_RENAMED = -1


def lock_path(root: Path | str, key: str) -> Path:
    """Return the lock file path of ``key`` in the workspace ``root``."""
    return Path(root) / LOCK_DIRECTORY / f"{validate_key(key)}.lock"


@contextmanager
def lock(root: Path | str, key: str, timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Iterator[Path]:
    """Hold the exclusive lock of ``key`` for the duration of the ``with`` block.

    Parameters
    ----------
    root : Path or str
        Workspace root. Its ``locks/`` folder is created if missing.
    key : str
        Cache key of the entry being computed.
    timeout : float, default 3600.0
        Maximum wait in seconds for another holder to release the lock.

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    TimeoutError
        When the lock is still held after ``timeout`` seconds. The message
        names the lock file.

    Notes
    -----
    The lock is not re-entrant. A second ``lock(root, key)`` inside the block,
    even in the same thread, waits for the first and times out.
    """
    if timeout < 0:
        raise ValueError(f"invalid lock timeout {timeout!r} s; pass a number of seconds >= 0")
    path = lock_path(root, key)
    if fcntl is None:
        # NOTE: the tests run only where fcntl exists, so this branch has not been run.
        logger.debug("no fcntl on this platform, so %s is not locked", path)
        yield path
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        handle = _try_acquire(path)
        if handle is not None and handle != _RENAMED:
            break
        if handle is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"timed out after {timeout:g} s waiting for lock file {path}; another lsi-app run is "
                    "computing the same entry. Wait for it to finish, or stop it and run again"
                )
            if not waited:
                logger.info("waiting for %s, held by another run computing the same entry", path)
                waited = True
            time.sleep(LOCK_POLL_SECONDS)

    try:
        yield path
    finally:
        _release(handle)


@contextmanager
def try_lock(root: Path | str, key: str) -> Iterator[bool]:
    """Take the lock of ``key`` without waiting, for the duration of the ``with`` block.

    Yields
    ------
    bool
        True when the lock was taken and is held until the block ends; False
        when another holder has it. Always True where fcntl is unavailable.
    """
    path = lock_path(root, key)
    if fcntl is None:
        yield True
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _RENAMED
    while handle == _RENAMED:
        handle = _try_acquire(path)
    if handle is None:
        yield False
        return
    try:
        yield True
    finally:
        _release(handle)


def _try_acquire(path: Path) -> int | None:
    """Return a locked descriptor of ``path``, None when it is held, or _RENAMED to retry."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    except BaseException:
        os.close(handle)
        raise

    # Maintenance may have deleted the file between our open and flock. A lock
    # on the deleted file would exclude no other process, so start over on the new file.
    opened = os.fstat(handle)
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    if current is None or (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
        _release(handle)
        return _RENAMED
    return handle


def _release(handle: int) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)
