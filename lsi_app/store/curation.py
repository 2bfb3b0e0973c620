"""Curation state (flags, relabels, notes, reviews) in an SQLite database.

The dashboard records what users decide about samples in
``<workspace>/curation.sqlite``. The database has two tables:

- ``samples`` contains the current state of each sample that has any,
  keyed by ``(dataset, sample_id)``. ``dataset`` is the dataset fingerprint
  (:func:`lsi_app.data.samples.fingerprint_of`), so the same files opened
  from another path keep their flags.
- ``actions`` logs every change, with a JSON snapshot of the sample's row
  before it, so that :meth:`CurationStore.undo` can revert it.

Every change is one ``BEGIN IMMEDIATE`` transaction that updates ``samples``
and appends to ``actions`` together. The database runs in WAL mode, and a
writer that finds the database locked waits up to ``BUSY_TIMEOUT_MS``, so
two browser tabs, threads or processes that write at once lose nothing.

Each operation opens its own connection and closes it before returning. No
connection is shared between threads, so one :class:`CurationStore` can be
used from any number of Streamlit sessions at once.

User strings only ever reach SQL as bound parameters.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

from lsi_app.store.workspace import workspace_dir

logger = logging.getLogger(__name__)

#: File name of the curation database in the workspace root. Workspace
#: maintenance (:mod:`lsi_app.store.maintenance`) never lists or removes it.
CURATION_FILE = "curation.sqlite"

#: Maximum wait, in milliseconds, for another connection's write transaction
#: to end. Each write here is one short transaction of a few milliseconds, so
#: 10 s covers many queued writers and a slow disk. A longer wait would only
#: hide a process that keeps a write transaction open.
BUSY_TIMEOUT_MS = 10_000

#: Interval, in seconds, between attempts to switch a new database to WAL
#: mode while another connection uses it. The other connection's
#: transaction takes a few milliseconds, so 10 ms retries soon after it ends.
WAL_RETRY_SECONDS = 0.01

#: Schema version stored in ``PRAGMA user_version``. A database with a newer
#: version was written by a newer lsi_app and is rejected, not misread.
SCHEMA_VERSION = 1

#: Maximum length of a note. Notes are free text typed into the dashboard.
#: 10,000 characters is several pages, and the limit keeps one paste of a
#: whole file from bloating every history table the dashboard shows.
NOTE_MAX_CHARS = 10_000

#: Maximum length of a dataset key, sample id, class name, flag reason or
#: actor. Sample ids can be relative file paths, and every Linux path fits,
#: because ``PATH_MAX`` there is 4096 bytes.
NAME_MAX_CHARS = 4_096

#: Flag reason used when none is given.
DEFAULT_FLAG_REASON = "flagged"


class CurationAction(str, Enum):
    """Kind of change to a sample's curation state.

    The value of each action, as passed to :meth:`CurationStore.apply_many`
    and stored in the history, is:

    - ``FLAG``: the flag reason (None means ``DEFAULT_FLAG_REASON``);
    - ``UNFLAG``: None;
    - ``RELABEL``: the new class name, or None to clear the relabel;
    - ``NOTE``: the note text, where "" clears the note;
    - ``REVIEW``: a :class:`ReviewVerdict`, or None to clear the review.
    """

    FLAG = "flag"
    UNFLAG = "unflag"
    RELABEL = "relabel"
    NOTE = "note"
    REVIEW = "review"


class ReviewVerdict(str, Enum):
    """Outcome of a user's review of a sample."""

    #: The sample and its label are correct.
    KEPT = "kept"
    #: The sample's label is wrong.
    MISLABELED = "mislabeled"


#: Columns of ``samples`` that hold curation state, with their values for a sample without state.
DEFAULT_STATE: dict[str, Any] = {
    "flagged": 0,
    "flag_reason": None,
    "relabel": None,
    "note": "",
    "review": None,
}

#: Columns of ``samples`` that each action sets.
ACTION_COLUMNS: dict[CurationAction, frozenset[str]] = {
    CurationAction.FLAG: frozenset({"flagged", "flag_reason"}),
    CurationAction.UNFLAG: frozenset({"flagged", "flag_reason"}),
    CurationAction.RELABEL: frozenset({"relabel"}),
    CurationAction.NOTE: frozenset({"note"}),
    CurationAction.REVIEW: frozenset({"review"}),
}

#: Columns of :meth:`CurationStore.state`.
STATE_COLUMNS = ["sample_id", "flagged", "flag_reason", "relabel", "note", "review", "updated_at"]

#: Columns of :meth:`CurationStore.history`.
HISTORY_COLUMNS = ["id", "sample_id", "action", "value", "actor", "created_at", "undone"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    dataset TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    flagged INTEGER NOT NULL DEFAULT 0,
    flag_reason TEXT,
    relabel TEXT,
    note TEXT NOT NULL DEFAULT '',
    review TEXT,
    updated_at TEXT,
    PRIMARY KEY (dataset, sample_id)
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    action TEXT NOT NULL,
    value TEXT,
    previous TEXT,  -- JSON of the sample's samples row before the action, NULL when there was none
    actor TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS actions_by_dataset ON actions (dataset, undone, id);
CREATE INDEX IF NOT EXISTS actions_by_sample ON actions (dataset, sample_id, id);
"""

_SELECT_ACTION = "SELECT id, sample_id, action, value, previous, actor, created_at, undone FROM actions"


class CurationStore:
    """Curation state of samples, stored in one SQLite file that survives restarts.

    Parameters
    ----------
    path : Path or str, optional
        Database file. Default ``workspace_dir() / CURATION_FILE``. The file
        and its folder are created if missing.

    Raises
    ------
    ValueError
        When ``path`` cannot be opened as an SQLite database, or was written
        by a newer lsi_app (schema version above ``SCHEMA_VERSION``).
    TimeoutError
        When another connection kept the database locked for
        ``BUSY_TIMEOUT_MS``. Every method that writes can raise it.

    Notes
    -----
    The object stores only the path, and every method opens and closes its
    own connection. Any number of objects, threads and processes can use
    the same file at once.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else workspace_dir() / CURATION_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._initialize()
        except sqlite3.OperationalError as error:
            if _is_lock_error(error):
                raise self._timeout_error(error) from error
            raise self._open_error(error) from error
        except sqlite3.DatabaseError as error:
            raise self._open_error(error) from error

    def __repr__(self) -> str:
        return f"CurationStore({str(self.path)!r})"

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """Open a connection configured like the store's own, and close it on exit.

        The connection has the busy timeout, foreign keys on, rows as
        :class:`sqlite3.Row` and no implicit transactions. Use it for
        read-only queries, because writes made through it bypass the action
        log that :meth:`undo` relies on.
        """
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            # PRAGMA takes no bound parameters, and both values here are constants of this module.
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
            connection.execute("PRAGMA foreign_keys = ON")
            yield connection
        finally:
            connection.close()

    # Changes -----------------------------------------------------------------

    def flag(self, dataset: str, sample_id: str, reason: str = DEFAULT_FLAG_REASON, actor: str = "") -> int:
        """Flag a sample and return the action id.

        Parameters
        ----------
        dataset : str
            Dataset fingerprint.
        sample_id : str
            Sample id, non-empty.
        reason : str, default "flagged"
            Why the sample is flagged, shown next to it.
        actor : str, default ""
            Who made the change, for example a browser session id.
        """
        return self.apply_many(dataset, [sample_id], CurationAction.FLAG, reason, actor)[0]

    def unflag(self, dataset: str, sample_id: str, actor: str = "") -> int:
        """Remove a sample's flag and its reason, and return the action id."""
        return self.apply_many(dataset, [sample_id], CurationAction.UNFLAG, None, actor)[0]

    def relabel(self, dataset: str, sample_id: str, class_name: str | None, actor: str = "") -> int:
        """Set the class a sample should have, or clear it with None, and return the action id."""
        return self.apply_many(dataset, [sample_id], CurationAction.RELABEL, class_name, actor)[0]

    def note(self, dataset: str, sample_id: str, text: str, actor: str = "") -> int:
        """Set a sample's note, or clear it with "", and return the action id.

        Raises
        ------
        ValueError
            When ``text`` has more than ``NOTE_MAX_CHARS`` characters.
        """
        return self.apply_many(dataset, [sample_id], CurationAction.NOTE, text, actor)[0]

    def review(self, dataset: str, sample_id: str, verdict: ReviewVerdict | str | None, actor: str = "") -> int:
        """Record a review verdict ("kept" or "mislabeled"), or clear it with None, and return the action id.

        Raises
        ------
        ValueError
            When ``verdict`` is not a :class:`ReviewVerdict` value or None.
        """
        return self.apply_many(dataset, [sample_id], CurationAction.REVIEW, verdict, actor)[0]

    def apply_many(
        self,
        dataset: str,
        sample_ids: Iterable[str],
        action: CurationAction | str,
        value: str | None = None,
        actor: str = "",
    ) -> list[int]:
        """Apply one action to many samples in a single transaction.

        Parameters
        ----------
        dataset : str
            Dataset fingerprint.
        sample_ids : iterable of str
            Samples to change. An id listed more than once is changed once.
        action : CurationAction or str
            The change to make.
        value : str, optional
            The action's value, as described in :class:`CurationAction`.
        actor : str, default ""
            Who made the change.

        Returns
        -------
        list of int
            The action id of each distinct sample, in the order of its first
            appearance in ``sample_ids``. Each action can be undone on its own.
            NOTE: :meth:`undo` reverts one of these actions per call, so
            undoing a bulk change of n samples takes n calls.

        Raises
        ------
        ValueError
            When the dataset, an id, the action or the value is invalid.
            Every input is checked before anything is written, so either all
            samples change or none does.
        """
        dataset = _validate_name(dataset, "dataset key")
        action = _validate_action(action)
        changes, stored_value = _validate_value(action, value)
        actor = _validate_name(actor, "actor", allow_empty=True)
        if isinstance(sample_ids, str):
            raise TypeError(f"sample_ids is the string {sample_ids!r}; pass a list of ids, e.g. [{sample_ids!r}]")
        ids = list(dict.fromkeys(_validate_name(sample_id, "sample id") for sample_id in sample_ids))
        if not ids:
            return []

        now = _now()
        action_ids = []
        with self._transaction() as connection:
            for sample_id in ids:
                before = _read_row(connection, dataset, sample_id)
                after = {**(before or DEFAULT_STATE), **changes}
                _write_row(connection, dataset, sample_id, after, now)
                cursor = connection.execute(
                    "INSERT INTO actions (dataset, sample_id, action, value, previous, actor, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (dataset, sample_id, action.value, stored_value, _to_json(before), actor, now),
                )
                action_ids.append(int(cursor.lastrowid))
        logger.debug("%s %d samples of dataset %s (actor %r)", action.value, len(ids), dataset, actor)
        return action_ids

    def undo(self, dataset: str, actor: str | None = None) -> dict | None:
        """Revert the most recent action on a dataset that is not undone yet.

        Calling it again reverts the action before that one. The undone
        action stays in :meth:`history` with ``undone`` set.

        Parameters
        ----------
        dataset : str
            Dataset fingerprint.
        actor : str, optional
            Revert only this actor's actions, so that one browser tab does
            not undo another's work. Default: any actor's.

        Returns
        -------
        dict or None
            The undone action, with keys ``id``, ``sample_id``, ``action``
            (a :class:`CurationAction`), ``value``, ``actor`` and
            ``created_at``. None when there is nothing to undo.

        Notes
        -----
        Undo restores only the columns the action set. When no later action
        changed the sample, the row becomes exactly what it was before,
        and is deleted when it did not exist. With ``actor`` given, a later
        action by someone else may have set the same column. That newer
        value then stays, and the later action's snapshot is updated so
        that undoing it restores the value from before both actions.
        """
        dataset = _validate_name(dataset, "dataset key")
        if actor is not None:
            actor = _validate_name(actor, "actor", allow_empty=True)

        with self._transaction() as connection:
            row = _latest_action(connection, dataset, actor)
            if row is None:
                return None
            _revert(connection, dataset, row)
            connection.execute("UPDATE actions SET undone = 1 WHERE id = ?", (row["id"],))
        undone = _action_dict(row)
        logger.info(
            "undid action %d (%s of sample %r in dataset %s)", undone["id"], row["action"], row["sample_id"], dataset
        )
        return undone

    # Queries -----------------------------------------------------------------

    def state(self, dataset: str) -> pd.DataFrame:
        """Return the current curation state of a dataset.

        Returns
        -------
        DataFrame
            One row per sample that has, or had, any state, sorted by
            ``sample_id``. Columns: ``sample_id``, ``flagged`` (bool),
            ``flag_reason``, ``relabel`` and ``review`` (str or None),
            ``note`` (str, "" when none) and ``updated_at`` (UTC timestamp).
            A sample whose changes were all cleared may keep a row.
        """
        dataset = _validate_name(dataset, "dataset key")
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT sample_id, flagged, flag_reason, relabel, note, review, updated_at"
                " FROM samples WHERE dataset = ? ORDER BY sample_id",
                (dataset,),
            ).fetchall()
        table = pd.DataFrame(
            {
                "sample_id": pd.Series([row["sample_id"] for row in rows], dtype=object),
                "flagged": pd.Series([bool(row["flagged"]) for row in rows], dtype=bool),
                "flag_reason": pd.Series([row["flag_reason"] for row in rows], dtype=object),
                "relabel": pd.Series([row["relabel"] for row in rows], dtype=object),
                "note": pd.Series([row["note"] for row in rows], dtype=object),
                "review": pd.Series([row["review"] for row in rows], dtype=object),
                "updated_at": _timestamps([row["updated_at"] for row in rows]),
            },
            columns=STATE_COLUMNS,
        )
        return table

    def history(self, dataset: str, limit: int | None = None) -> pd.DataFrame:
        """Return the actions on a dataset, newest first, undone ones included.

        Parameters
        ----------
        dataset : str
            Dataset fingerprint.
        limit : int, optional
            Maximum number of rows, from the newest. Default: all.

        Returns
        -------
        DataFrame
            Columns ``id`` (int), ``sample_id``, ``action`` (str), ``value``
            (str or None), ``actor``, ``created_at`` (UTC timestamp) and
            ``undone`` (bool).
        """
        dataset = _validate_name(dataset, "dataset key")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"invalid history limit {limit!r}; pass a whole number >= 1, or None for all actions")
        # SQLite reads LIMIT -1 as no limit.
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT id, sample_id, action, value, actor, created_at, undone FROM actions"
                " WHERE dataset = ? ORDER BY id DESC LIMIT ?",
                (dataset, -1 if limit is None else limit),
            ).fetchall()
        return pd.DataFrame(
            {
                "id": pd.Series([row["id"] for row in rows], dtype="int64"),
                "sample_id": pd.Series([row["sample_id"] for row in rows], dtype=object),
                "action": pd.Series([row["action"] for row in rows], dtype=object),
                "value": pd.Series([row["value"] for row in rows], dtype=object),
                "actor": pd.Series([row["actor"] for row in rows], dtype=object),
                "created_at": _timestamps([row["created_at"] for row in rows]),
                "undone": pd.Series([bool(row["undone"]) for row in rows], dtype=bool),
            },
            columns=HISTORY_COLUMNS,
        )

    def counts(self, dataset: str) -> dict[str, int]:
        """Count a dataset's samples that are flagged, relabelled, noted and reviewed.

        Returns
        -------
        dict
            Keys ``flagged``, ``relabelled``, ``noted`` (non-empty note) and
            ``reviewed``, each an int.
        """
        dataset = _validate_name(dataset, "dataset key")
        with self.connect() as connection:
            row = connection.execute(
                "SELECT COALESCE(SUM(flagged != 0), 0) AS flagged,"
                " COALESCE(SUM(relabel IS NOT NULL), 0) AS relabelled,"
                " COALESCE(SUM(note != ''), 0) AS noted,"
                " COALESCE(SUM(review IS NOT NULL), 0) AS reviewed"
                " FROM samples WHERE dataset = ?",
                (dataset,),
            ).fetchone()
        return {name: int(row[name]) for name in ("flagged", "relabelled", "noted", "reviewed")}

    def last_action(self, dataset: str, actor: str | None = None) -> dict | None:
        """Return the action that :meth:`undo` would revert, or None when there is none.

        The dict has the keys described in :meth:`undo`. ``actor``, when
        given, restricts the search to that actor's actions.
        """
        dataset = _validate_name(dataset, "dataset key")
        if actor is not None:
            actor = _validate_name(actor, "actor", allow_empty=True)
        with self.connect() as connection:
            row = _latest_action(connection, dataset, actor)
        return None if row is None else _action_dict(row)

    # Opening -----------------------------------------------------------------

    def _initialize(self) -> None:
        """Create the tables if absent, switch to WAL mode and check the schema version."""
        created = False
        with self.connect() as connection:
            mode = _enable_wal(connection)
            if mode != "wal":
                # For example, some network file systems cannot hold the shared memory WAL needs.
                logger.warning(
                    "curation database %s runs in journal mode %r instead of WAL, so readers may wait for writers",
                    self.path,
                    mode,
                )
            connection.execute("BEGIN IMMEDIATE")
            try:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise ValueError(
                        f"curation database {self.path} has schema version {version}, but this lsi_app reads "
                        f"versions up to {SCHEMA_VERSION}; upgrade lsi_app, or pass another path to CurationStore"
                    )
                if version < SCHEMA_VERSION:
                    # Version 0 is a new, empty file. There is no older schema to migrate yet.
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
                    created = True
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        if created:
            logger.info("created curation database %s", self.path)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one ``BEGIN IMMEDIATE`` transaction, committed on success and rolled back on error."""
        try:
            with self.connect() as connection:
                # IMMEDIATE takes the write lock at the start, so the busy timeout applies here
                # instead of failing at the first write of a transaction that already read.
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as error:
            if _is_lock_error(error):
                raise self._timeout_error(error) from error
            raise

    def _timeout_error(self, error: sqlite3.Error) -> TimeoutError:
        return TimeoutError(
            f"timed out after {BUSY_TIMEOUT_MS} ms waiting for the write lock of curation database {self.path} "
            f"({error}); another process keeps a write transaction open, so close it or try again"
        )

    def _open_error(self, error: sqlite3.Error) -> ValueError:
        return ValueError(
            f"failed to open curation database {self.path} ({error}); move the file away if it is not an "
            "lsi_app curation database, or pass another path to CurationStore"
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _timestamps(values: list[str | None]) -> pd.Series:
    # The unit is fixed because pandas infers seconds for an empty column and microseconds otherwise.
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601").dt.as_unit("us")


def _enable_wal(connection: sqlite3.Connection) -> str:
    """Switch the database to WAL mode, which is stored in the file, and return the journal mode now in effect.

    WAL lets readers run while one connection writes. SQLite rejects the
    switch with "database is locked" at once, without waiting for the busy
    timeout, while another connection uses the file. That happens when
    several threads open a new database together (seen with SQLite 3.40.1),
    so the switch is retried until ``BUSY_TIMEOUT_MS`` has passed.
    """
    mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode == "wal":
        return mode
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as error:
            if not _is_lock_error(error) or time.monotonic() >= deadline:
                raise
            time.sleep(WAL_RETRY_SECONDS)


def _is_lock_error(error: sqlite3.Error) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message


def _validate_name(value: object, field: str, allow_empty: bool = False) -> str:
    """Return ``value`` as str, or raise when it is not a string of allowed length."""
    if not isinstance(value, str):
        raise TypeError(f"{field} {value!r} has type {type(value).__name__}; pass a str")
    if not value and not allow_empty:
        raise ValueError(f"invalid {field} {value!r}: it must not be empty")
    if len(value) > NAME_MAX_CHARS:
        raise ValueError(
            f"invalid {field} {value[:40]!r}...: it has {len(value)} characters, more than the maximum "
            f"{NAME_MAX_CHARS}; shorten it"
        )
    return str(value)


def _validate_action(action: CurationAction | str) -> CurationAction:
    try:
        return CurationAction(action)
    except ValueError:
        choices = ", ".join(member.value for member in CurationAction)
        raise ValueError(f"unknown curation action {action!r}; use one of {choices}") from None


def _validate_value(action: CurationAction, value: object) -> tuple[dict[str, Any], str | None]:
    """Check an action's value and return the column changes and the value to log."""
    if action is CurationAction.FLAG:
        reason = DEFAULT_FLAG_REASON if value is None else _validate_name(value, "flag reason")
        return {"flagged": 1, "flag_reason": reason}, reason
    if action is CurationAction.UNFLAG:
        if value is not None:
            raise ValueError(f"unflag takes no value, got {value!r}; pass value=None")
        return {"flagged": 0, "flag_reason": None}, None
    if action is CurationAction.RELABEL:
        if value is not None:
            value = _validate_name(value, "class name")
        return {"relabel": value}, value
    if action is CurationAction.NOTE:
        if not isinstance(value, str):
            raise TypeError(
                f"note text {value!r} has type {type(value).__name__}; pass a str, or \"\" to clear the note"
            )
        if len(value) > NOTE_MAX_CHARS:
            raise ValueError(
                f"invalid note {value[:40]!r}...: it has {len(value)} characters, more than the maximum "
                f"{NOTE_MAX_CHARS}; shorten it"
            )
        return {"note": value}, value
    # REVIEW
    if value is not None:
        try:
            value = ReviewVerdict(value).value
        except ValueError:
            choices = ", ".join(repr(member.value) for member in ReviewVerdict)
            raise ValueError(f"invalid review verdict {value!r}; use one of {choices}, or None to clear") from None
    return {"review": value}, value


def _read_row(connection: sqlite3.Connection, dataset: str, sample_id: str) -> dict[str, Any] | None:
    """Return a sample's state columns and ``updated_at``, or None when it has no row."""
    row = connection.execute(
        "SELECT flagged, flag_reason, relabel, note, review, updated_at FROM samples"
        " WHERE dataset = ? AND sample_id = ?",
        (dataset, sample_id),
    ).fetchone()
    return None if row is None else dict(row)


def _write_row(
    connection: sqlite3.Connection, dataset: str, sample_id: str, row: dict[str, Any], updated_at: str
) -> None:
    connection.execute(
        "INSERT INTO samples (dataset, sample_id, flagged, flag_reason, relabel, note, review, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (dataset, sample_id) DO UPDATE SET flagged = excluded.flagged,"
        " flag_reason = excluded.flag_reason, relabel = excluded.relabel, note = excluded.note,"
        " review = excluded.review, updated_at = excluded.updated_at",
        (
            dataset,
            sample_id,
            row["flagged"],
            row["flag_reason"],
            row["relabel"],
            row["note"],
            row["review"],
            updated_at,
        ),
    )


def _to_json(row: dict[str, Any] | None) -> str | None:
    return None if row is None else json.dumps(row, ensure_ascii=False, sort_keys=True)


def _from_json(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


def _latest_action(connection: sqlite3.Connection, dataset: str, actor: str | None) -> sqlite3.Row | None:
    if actor is None:
        return connection.execute(
            f"{_SELECT_ACTION} WHERE dataset = ? AND undone = 0 ORDER BY id DESC LIMIT 1", (dataset,)
        ).fetchone()
    return connection.execute(
        f"{_SELECT_ACTION} WHERE dataset = ? AND undone = 0 AND actor = ? ORDER BY id DESC LIMIT 1",
        (dataset, actor),
    ).fetchone()


def _action_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "sample_id": row["sample_id"],
        "action": CurationAction(row["action"]),
        "value": row["value"],
        "actor": row["actor"],
        "created_at": row["created_at"],
    }


def _revert(connection: sqlite3.Connection, dataset: str, action_row: sqlite3.Row) -> None:
    """Restore the columns an action set to their values before it, inside the caller's transaction."""
    sample_id = action_row["sample_id"]
    columns = ACTION_COLUMNS[CurationAction(action_row["action"])]
    previous = _from_json(action_row["previous"])
    before = previous or DEFAULT_STATE

    # A later live action that set the same column has already replaced this action's value.
    # The first such action's snapshot contains this action's value, so it gets the value
    # from before this action instead, and the column itself keeps the newer value.
    superseded: set[str] = set()
    later_rows = connection.execute(
        "SELECT id, action, previous FROM actions WHERE dataset = ? AND sample_id = ? AND undone = 0 AND id > ?"
        " ORDER BY id",
        (dataset, sample_id, action_row["id"]),
    ).fetchall()
    for later in later_rows:
        overlap = (ACTION_COLUMNS[CurationAction(later["action"])] & columns) - superseded
        if not overlap:
            continue
        superseded |= overlap
        later_previous = _from_json(later["previous"])
        if later_previous is None:
            continue  # The row was deleted in between, so the column was already at its default.
        for column in overlap:
            later_previous[column] = before[column]
        connection.execute("UPDATE actions SET previous = ? WHERE id = ?", (_to_json(later_previous), later["id"]))

    current = _read_row(connection, dataset, sample_id) or {**DEFAULT_STATE, "updated_at": None}
    restored = dict(current)
    for column in columns - superseded:
        restored[column] = before[column]

    state = {column: restored[column] for column in DEFAULT_STATE}
    if previous is None and state == DEFAULT_STATE:
        connection.execute("DELETE FROM samples WHERE dataset = ? AND sample_id = ?", (dataset, sample_id))
    elif previous is not None and state == {column: previous[column] for column in DEFAULT_STATE}:
        _write_row(connection, dataset, sample_id, restored, previous["updated_at"])
    else:
        _write_row(connection, dataset, sample_id, restored, _now())
