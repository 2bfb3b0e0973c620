import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lsi_app.store import CURATION_FILE, CurationAction, CurationStore, FeatureCache, ReviewVerdict, clear
from lsi_app.store import curation
from lsi_app.store.workspace import HOME_VARIABLE

REPOSITORY = Path(__file__).resolve().parents[2]

#: Dataset fingerprints, as ``fingerprint_of`` writes them.
DATASET = "0123456789abcdef"
OTHER_DATASET = "fedcba9876543210"

#: Maximum wait for a child process, which imports pandas and writes 100 small transactions.
CHILD_TIMEOUT_SECONDS = 60

#: Flag 100 ids named after the child once the parent creates the start file.
FLAG_IN_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lsi_app.store import CurationStore

    database, name, start = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    store = CurationStore(database)
    (database.parent / f"{name}.ready").touch()
    while not start.exists():
        time.sleep(0.01)
    for index in range(100):
        store.flag("0123456789abcdef", f"{name}-{index}", reason=name, actor=name)
    """
)


@pytest.fixture
def store(tmp_path):
    return CurationStore(tmp_path / CURATION_FILE)


def _row(store, sample_id, dataset=DATASET):
    """Return the state row of one sample as a dict, or None when it has no row."""
    table = store.state(dataset)
    rows = table[table["sample_id"] == sample_id]
    assert len(rows) <= 1
    return None if rows.empty else rows.iloc[0].to_dict()


def _raw_rows(path, table):
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    finally:
        connection.close()


def _wait_for(path, child, timeout=CHILD_TIMEOUT_SECONDS):
    """Wait until ``child`` creates ``path``, failing with its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"child exited with code {child.returncode} before creating {path}: {child.stderr.read()}")
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.02)


def test_actions_round_trip_after_reopen(tmp_path):
    path = tmp_path / CURATION_FILE
    store = CurationStore(path)
    ids = [
        store.flag(DATASET, "a", reason="blurry", actor="tab-1"),
        store.relabel(DATASET, "b", "cat"),
        store.note(DATASET, "c", "looks like a dog"),
        store.review(DATASET, "d", "mislabeled"),
        store.review(DATASET, "e", ReviewVerdict.KEPT),
        store.flag(DATASET, "f"),
        store.unflag(DATASET, "f"),
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 7

    for current in (store, CurationStore(path)):
        table = current.state(DATASET)
        assert list(table.columns) == curation.STATE_COLUMNS
        assert list(table["sample_id"]) == ["a", "b", "c", "d", "e", "f"]
        assert table["flagged"].dtype == bool
        assert list(table["flagged"]) == [True, False, False, False, False, False]
        a, b, c, d, e, f = (_row(current, sample_id) for sample_id in "abcdef")
        assert a["flag_reason"] == "blurry"
        assert b["relabel"] == "cat"
        assert b["flag_reason"] is None
        assert c["note"] == "looks like a dog"
        assert d["review"] == "mislabeled"
        assert e["review"] == "kept"
        assert f["flag_reason"] is None
        assert table["updated_at"].notna().all()
        assert str(table["updated_at"].dt.tz) == "UTC"


def test_clear_values_through_actions(store):
    store.relabel(DATASET, "a", "cat")
    store.note(DATASET, "a", "check")
    store.review(DATASET, "a", "kept")
    store.relabel(DATASET, "a", None)
    store.note(DATASET, "a", "")
    store.review(DATASET, "a", None)

    row = _row(store, "a")
    assert row["relabel"] is None
    assert row["note"] == ""
    assert row["review"] is None
    assert store.counts(DATASET) == {"flagged": 0, "relabelled": 0, "noted": 0, "reviewed": 0}


def test_wal_mode_and_busy_timeout_set(store):
    with store.connect() as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == curation.BUSY_TIMEOUT_MS
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert connection.execute("PRAGMA user_version").fetchone()[0] == curation.SCHEMA_VERSION
    # WAL mode is stored in the file, so a plain connection reports it too.
    connection = sqlite3.connect(store.path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_default_path_in_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path / "home"))
    store = CurationStore()
    assert store.path == tmp_path / "home" / CURATION_FILE
    store.flag(DATASET, "a")
    assert store.path.is_file()


def test_undo_flag_removes_flag(store):
    store.relabel(DATASET, "a", "cat")
    store.flag(DATASET, "a", reason="blurry")
    undone = store.undo(DATASET)

    assert undone["action"] is CurationAction.FLAG
    assert undone["sample_id"] == "a"
    assert undone["value"] == "blurry"
    row = _row(store, "a")
    assert not row["flagged"]
    assert row["flag_reason"] is None
    assert row["relabel"] == "cat"


def test_undo_relabel_restores_previous_class(store):
    store.relabel(DATASET, "a", "A")
    before = _row(store, "a")
    store.relabel(DATASET, "a", "B")
    store.undo(DATASET)

    after = _row(store, "a")
    assert after["relabel"] == "A"
    assert after["updated_at"] == before["updated_at"]


def test_undo_first_action_deletes_row(tmp_path):
    store = CurationStore(tmp_path / CURATION_FILE)
    store.note(DATASET, "a", "first")
    store.undo(DATASET)

    assert store.state(DATASET).empty
    assert _raw_rows(store.path, "samples") == []


def test_undo_with_nothing_returns_none(store):
    assert store.undo(DATASET) is None
    assert store.last_action(DATASET) is None
    store.flag(DATASET, "a")
    store.undo(DATASET)
    assert store.undo(DATASET) is None


def test_undo_walks_back_and_keeps_history(store):
    store.flag(DATASET, "a")
    store.relabel(DATASET, "a", "cat")
    store.note(DATASET, "b", "hi")

    assert store.last_action(DATASET)["sample_id"] == "b"
    assert store.undo(DATASET)["action"] is CurationAction.NOTE
    assert store.undo(DATASET)["action"] is CurationAction.RELABEL
    assert store.last_action(DATASET)["action"] is CurationAction.FLAG
    assert _row(store, "a")["flagged"]
    assert _row(store, "a")["relabel"] is None
    assert _row(store, "b") is None

    history = store.history(DATASET)
    assert list(history.columns) == curation.HISTORY_COLUMNS
    assert list(history["action"]) == ["note", "relabel", "flag"]
    assert list(history["undone"]) == [True, True, False]
    assert history["id"].is_monotonic_decreasing
    assert list(store.history(DATASET, limit=2)["action"]) == ["note", "relabel"]


def test_undo_by_actor_keeps_others_changes(store):
    store.flag(DATASET, "a", actor="tab-1")
    store.note(DATASET, "a", "from tab 2", actor="tab-2")

    undone = store.undo(DATASET, actor="tab-1")
    assert undone["actor"] == "tab-1"
    row = _row(store, "a")
    assert not row["flagged"]
    assert row["note"] == "from tab 2"
    assert store.undo(DATASET, actor="tab-1") is None
    assert store.last_action(DATASET, actor="tab-2")["action"] is CurationAction.NOTE


def test_undo_superseded_action_keeps_newer_value(store):
    store.relabel(DATASET, "a", "cat", actor="tab-1")
    store.relabel(DATASET, "a", "dog", actor="tab-2")

    store.undo(DATASET, actor="tab-1")
    assert _row(store, "a")["relabel"] == "dog"
    # Undoing the newer action now returns to the state before both.
    store.undo(DATASET, actor="tab-2")
    assert _row(store, "a")["relabel"] is None


def test_datasets_are_independent(store):
    store.flag(DATASET, "a")
    store.relabel(OTHER_DATASET, "a", "cat")

    assert store.counts(DATASET) == {"flagged": 1, "relabelled": 0, "noted": 0, "reviewed": 0}
    assert store.counts(OTHER_DATASET) == {"flagged": 0, "relabelled": 1, "noted": 0, "reviewed": 0}
    assert not _row(store, "a", OTHER_DATASET)["flagged"]

    store.undo(DATASET)
    assert store.state(DATASET).empty
    assert _row(store, "a", OTHER_DATASET)["relabel"] == "cat"
    assert len(store.history(OTHER_DATASET)) == 1


def test_threads_lose_no_writes(tmp_path):
    path = tmp_path / CURATION_FILE
    barrier = threading.Barrier(4)
    errors = []

    def flag_fifty(worker):
        try:
            barrier.wait()
            # Each thread opens its own store, so the schema is also created concurrently.
            store = CurationStore(path)
            for index in range(50):
                store.flag(DATASET, f"t{worker}-{index}", actor=f"thread-{worker}")
        except BaseException as error:  # Reported by the main thread below.
            errors.append(error)

    threads = [threading.Thread(target=flag_fifty, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    store = CurationStore(path)
    assert store.counts(DATASET)["flagged"] == 200
    assert len(store.history(DATASET)) == 200
    assert store.state(DATASET)["sample_id"].nunique() == 200


def test_processes_lose_no_writes(tmp_path):
    path = tmp_path / CURATION_FILE
    start = tmp_path / "start"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", FLAG_IN_CHILD, str(path), name, str(start)],
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    try:
        _wait_for(tmp_path / "first.ready", children[0])
        _wait_for(tmp_path / "second.ready", children[1])
        start.touch()
        outputs = [child.communicate(timeout=CHILD_TIMEOUT_SECONDS) for child in children]
    finally:
        for child in children:
            child.kill()
    for child, (_, stderr) in zip(children, outputs):
        assert child.returncode == 0, stderr

    store = CurationStore(path)
    table = store.state(DATASET)
    assert len(table) == 200
    assert table["flagged"].all()
    assert (table["flag_reason"] == "first").sum() == 100
    assert (table["flag_reason"] == "second").sum() == 100
    assert len(store.history(DATASET)) == 200


def test_apply_many_flags_each_distinct_id(store):
    ids = store.apply_many(DATASET, ["a", "b", "a", "c"], CurationAction.FLAG, "outlier", actor="tab-1")
    assert len(ids) == 3
    assert store.counts(DATASET)["flagged"] == 3
    assert set(store.state(DATASET)["flag_reason"]) == {"outlier"}
    assert store.apply_many(DATASET, [], "unflag") == []

    store.apply_many(DATASET, np.array(["a", "b"]), "review", "kept")
    assert store.counts(DATASET)["reviewed"] == 2


def test_apply_many_writes_nothing_on_invalid_id(store):
    store.flag(DATASET, "existing")
    with pytest.raises(ValueError, match="invalid sample id ''"):
        store.apply_many(DATASET, ["a", "b", "", "c"], CurationAction.FLAG)
    with pytest.raises(TypeError, match="sample id 7 has type int"):
        store.apply_many(DATASET, ["a", 7], CurationAction.RELABEL, "cat")

    assert list(store.state(DATASET)["sample_id"]) == ["existing"]
    assert len(store.history(DATASET)) == 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda store: store.review(DATASET, "a", "maybe"), ValueError, r"verdict 'maybe'; use one of 'kept', 'mislab"),
        (lambda store: store.flag(DATASET, ""), ValueError, "invalid sample id ''"),
        (lambda store: store.note(DATASET, "a", "x" * 10_001), ValueError, "has 10001 characters"),
        (lambda store: store.note(DATASET, "a", None), TypeError, r"pass a str, or \"\" to clear"),
        (lambda store: store.flag("", "a"), ValueError, "invalid dataset key ''"),
        (lambda store: store.relabel(DATASET, "a", ""), ValueError, "invalid class name ''"),
        (lambda store: store.apply_many(DATASET, ["a"], "delete"), ValueError, "action 'delete'; use one of flag"),
        (lambda store: store.apply_many(DATASET, ["a"], "unflag", "x"), ValueError, "unflag takes no value, got 'x'"),
        (lambda store: store.apply_many(DATASET, "abc", "flag"), TypeError, "sample_ids is the string 'abc'"),
        (lambda store: store.history(DATASET, limit=0), ValueError, "invalid history limit 0"),
    ],
)
def test_invalid_input_names_value(store, call, error, message):
    with pytest.raises(error, match=message):
        call(store)
    assert store.history(DATASET).empty


def test_note_at_maximum_length_accepted(store):
    store.note(DATASET, "a", "x" * curation.NOTE_MAX_CHARS)
    assert len(_row(store, "a")["note"]) == curation.NOTE_MAX_CHARS


def test_newer_schema_version_rejected(tmp_path):
    path = tmp_path / CURATION_FILE
    CurationStore(path)
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {curation.SCHEMA_VERSION + 1}")
    connection.close()

    with pytest.raises(ValueError, match=rf"{path.name} has schema version {curation.SCHEMA_VERSION + 1}"):
        CurationStore(path)


def test_non_database_file_rejected(tmp_path):
    path = tmp_path / CURATION_FILE
    path.write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(ValueError, match=rf"failed to open curation database .*{path.name}"):
        CurationStore(path)


def test_locked_database_times_out(store, monkeypatch):
    monkeypatch.setattr(curation, "BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(store.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="timed out after 100 ms"):
            store.flag(DATASET, "a")
        assert time.monotonic() - started >= 0.1
        # Readers are not blocked by a writer in WAL mode.
        assert store.state(DATASET).empty
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.flag(DATASET, "a")
    assert store.counts(DATASET)["flagged"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "x'); DROP TABLE samples;--",
        'Robert"; DELETE FROM actions WHERE "1"="1',
        "Zürich/Straße_猫_🐱.png",
        "עברית مرحبا",
    ],
)
def test_unusual_strings_round_trip(store, text):
    store.flag(text, text, reason=text, actor=text)
    store.relabel(text, text, text, actor=text)
    store.note(text, text, text, actor=text)

    row = _row(store, text, dataset=text)
    assert row["sample_id"] == text
    assert row["flag_reason"] == text
    assert row["relabel"] == text
    assert row["note"] == text
    history = store.history(text)
    assert set(history["actor"]) == {text}
    assert store.undo(text, actor=text)["value"] == text
    assert _row(store, text, dataset=text)["note"] == ""
    assert len(_raw_rows(store.path, "samples")) == 1


def test_workspace_clear_keeps_database(tmp_path):
    store = CurationStore(tmp_path / CURATION_FILE)
    store.flag(DATASET, "a")
    FeatureCache(tmp_path).save("feat", np.zeros((3, 2)), np.arange(3), {"model": "cnn"})

    removed, _ = clear(tmp_path)
    assert removed == 1
    assert store.counts(DATASET)["flagged"] == 1
    assert CurationStore(tmp_path / CURATION_FILE).counts(DATASET)["flagged"] == 1
