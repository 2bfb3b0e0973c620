import logging
import os
import time

import numpy as np
import pandas as pd
import pytest

from lsi_app.store import (
    FeatureCache,
    ProbeCache,
    ResultCache,
    clear,
    format_size,
    list_entries,
    lock,
    parse_size,
    prune,
)
from lsi_app.store.maintenance import PARTIAL_AGE_SECONDS

#: Modification times, seconds since the epoch, that fix the least-recently-used order.
OLDEST, OLDER, NEWER, NEWEST = (time.time() - age for age in (4000, 3000, 2000, 1000))


def _set_mtime(paths, when):
    for path in paths:
        os.utime(path, (when, when))


def _size(paths):
    return sum(path.stat().st_size for path in paths)


@pytest.fixture
def workspace(tmp_path):
    """A workspace with one entry of each kind, one more result, and files that are not entries."""
    features = FeatureCache(tmp_path)
    features.save("feat", np.zeros((100, 10)), np.arange(100), {"dataset": "digits", "model": "cnn"})
    probes = ProbeCache(tmp_path)
    probes.save("probe", np.zeros((10, 4)), {"description": "linear probe on digits"})
    results = ResultCache(tmp_path)
    results.save("old", pd.DataFrame({"lsi": np.zeros(50)}), description={"prior_precision": 1.0})
    results.save("new", pd.DataFrame({"lsi": np.ones(5)}))

    files = {
        "feat": [features.path("feat"), features.kept_path("feat"), features.metadata_path("feat")],
        "probe": [probes.path("probe"), probes.metadata_path("probe")],
        "old": [results.path("old"), results.metadata_path("old")],
        "new": [results.path("new")],
    }
    _set_mtime(files["old"], OLDEST)
    _set_mtime(files["feat"], OLDER)
    _set_mtime(files["probe"], NEWER)
    _set_mtime(files["new"], NEWEST)

    (tmp_path / "curation.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(100))
    (tmp_path / "features" / "README.txt").write_text("notes kept by the user")
    return tmp_path, files


def _add_stale_partial(root):
    """Leave the files of a writer killed before the sidecar, an hour and more ago."""
    directory = root / "features"
    leftovers = [directory / "dead.npy", directory / ".dead.kept.npy.x1y2.tmp"]
    for path in leftovers:
        path.write_bytes(bytes(300))
    _set_mtime(leftovers, time.time() - PARTIAL_AGE_SECONDS - 60)
    return leftovers


def test_list_entries_columns_and_order(workspace):
    root, files = workspace

    table = list_entries(root)

    assert list(table.columns) == ["kind", "key", "size_bytes", "last_used", "description"]
    assert list(table["key"]) == ["new", "probe", "feat", "old"]
    assert list(table["kind"]) == ["results", "probes", "features", "results"]
    assert str(table["last_used"].dt.tz) == "UTC"
    assert table["last_used"].iloc[0].timestamp() == pytest.approx(NEWEST, abs=1e-3)


def test_list_entries_sizes_count_all_files(workspace):
    root, files = workspace

    table = list_entries(root).set_index("key")

    for key, paths in files.items():
        assert table.loc[key, "size_bytes"] == _size(paths), key


def test_list_entries_descriptions(workspace):
    root, _ = workspace

    descriptions = list_entries(root).set_index("key")["description"]

    assert descriptions["feat"] == "dataset=digits, model=cnn"
    assert descriptions["probe"] == "linear probe on digits"
    assert descriptions["old"] == "prior_precision=1.0"
    assert descriptions["new"] == ""


def test_list_entries_missing_root_is_empty(tmp_path):
    table = list_entries(tmp_path / "absent")

    assert table.empty
    assert list(table.columns) == ["kind", "key", "size_bytes", "last_used", "description"]


def test_list_entries_reports_stale_partial(workspace):
    root, _ = workspace
    leftovers = _add_stale_partial(root)

    partial = list_entries(root).query("kind == 'partial'")

    assert list(partial["key"]) == ["dead"]
    assert partial["size_bytes"].iloc[0] == _size(leftovers)
    assert "dead.npy" in partial["description"].iloc[0]


def test_list_entries_ignores_running_write(workspace):
    root, _ = workspace
    # Fresh files without a sidecar may belong to a write in progress.
    (root / "features" / "busy.npy").write_bytes(bytes(10))
    (root / "results" / ".busy.parquet.abc.tmp").write_bytes(bytes(10))

    table = list_entries(root)

    assert "busy" not in set(table["key"])
    assert "partial" not in set(table["kind"])


def test_clear_removes_entries_keeps_other_files(workspace):
    root, files = workspace
    leftovers = _add_stale_partial(root)
    with lock(root, "unrelated"):
        pass
    expected_bytes = sum(_size(paths) for paths in files.values()) + _size(leftovers)

    removed = clear(root)

    assert removed == (5, expected_bytes)
    assert list_entries(root).empty
    assert (root / "curation.sqlite").read_bytes().startswith(b"SQLite format 3")
    assert (root / "features" / "README.txt").is_file()
    assert not any(path.exists() for path in leftovers)
    assert list((root / "locks").iterdir()) == []
    assert root.is_dir()


def test_clear_selected_kinds(workspace):
    root, files = workspace
    expected_bytes = _size(files["old"]) + _size(files["new"])

    removed = clear(root, kinds=["results"])

    assert removed == (2, expected_bytes)
    assert sorted(list_entries(root)["kind"]) == ["features", "probes"]


def test_clear_unknown_kind_raises(workspace):
    root, _ = workspace

    with pytest.raises(ValueError, match="unknown entry kind 'tables'.*features, probes, results, partial"):
        clear(root, kinds=["tables"])
    assert len(list_entries(root)) == 4


def test_clear_skips_locked_entry(workspace, caplog):
    root, _ = workspace
    caplog.set_level(logging.INFO, logger="lsi_app.store")

    with lock(root, "feat"):
        removed = clear(root)
        assert (root / "locks" / "feat.lock").is_file()

    assert removed[0] == 3
    assert list(list_entries(root)["key"]) == ["feat"]
    assert "skipped features entry feat" in caplog.text


def test_prune_keeps_most_recently_used(workspace):
    root, files = workspace
    limit = _size(files["new"]) + _size(files["probe"])
    expected_bytes = _size(files["old"]) + _size(files["feat"])

    removed = prune(root, limit)

    assert removed == (2, expected_bytes)
    assert list(list_entries(root)["key"]) == ["new", "probe"]
    assert (root / "curation.sqlite").is_file()


def test_prune_follows_loads(workspace):
    root, files = workspace
    # Loading the oldest entry makes it the most recently used.
    ResultCache(root).load("old")
    limit = _size(files["old"]) + _size(files["new"])

    prune(root, limit)

    assert list(list_entries(root)["key"]) == ["old", "new"]


def test_prune_under_limit_removes_nothing(workspace):
    root, files = workspace
    total = sum(_size(paths) for paths in files.values())

    assert prune(root, total) == (0, 0)
    assert len(list_entries(root)) == 4


def test_prune_removes_partial_first(workspace):
    root, files = workspace
    leftovers = _add_stale_partial(root)
    total = sum(_size(paths) for paths in files.values())
    expected_bytes = _size(leftovers)

    removed = prune(root, total)

    assert removed == (1, expected_bytes)
    assert len(list_entries(root)) == 4


def test_prune_skips_locked_entry(workspace, caplog):
    root, _ = workspace
    caplog.set_level(logging.INFO, logger="lsi_app.store")

    with lock(root, "old"):
        removed = prune(root, 0)

    assert removed[0] == 3
    assert list(list_entries(root)["key"]) == ["old"]
    assert "skipped results entry old" in caplog.text
    assert "over the limit" in caplog.text


def test_prune_rejects_negative_limit(workspace):
    root, _ = workspace

    with pytest.raises(ValueError, match="invalid size limit -1"):
        prune(root, -1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500MB", 500_000_000),
        ("500mb", 500_000_000),
        ("1.5GiB", 1_610_612_736),
        ("2 kib", 2048),
        ("10B", 10),
        ("0.5KB", 500),
        (".5 MB", 500_000),
        ("3 TB ", 3 * 10**12),
        ("1TiB", 2**40),
        ("1024", 1024),
        ("1.", 1),
    ],
)
def test_parse_size_accepts(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-5MB", "5 XB", "1,5GB", "five", "5 M B", "1e9"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match=r"invalid size .*e\.g\. '500MB'") as error:
        parse_size(text)
    assert repr(text) in str(error.value)


@pytest.mark.parametrize(
    ("n_bytes", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (1_234_567, "1.2 MB"),
        (999_999, "1.0 MB"),
        (5 * 10**12, "5.0 TB"),
    ],
)
def test_format_size(n_bytes, expected):
    assert format_size(n_bytes) == expected


def test_format_size_rejects_negative():
    with pytest.raises(ValueError, match="invalid byte count -1"):
        format_size(-1)
