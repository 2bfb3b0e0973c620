import os

import pandas as pd
import pytest

from lsi_app.store import ResultCache, cache_key, workspace_dir


def test_cache_round_trip_keeps_attrs(tmp_path):
    cache = ResultCache(tmp_path)
    table = pd.DataFrame({"sample_id": ["a", "b"], "lsi": [0.5, 0.25]})
    table.attrs["lsi_settings"] = {"prior_precision": 1.0}

    assert not cache.has("k1")
    cache.save("k1", table)

    assert cache.has("k1")
    loaded = cache.load("k1")
    pd.testing.assert_frame_equal(loaded, table)
    assert loaded.attrs["lsi_settings"] == {"prior_precision": 1.0}
    assert os.listdir(tmp_path / "results") == ["k1.parquet"]


def test_cache_failed_write_leaves_no_file(tmp_path):
    cache = ResultCache(tmp_path)
    unwritable = pd.DataFrame({"mixed": [1, "text"]})

    with pytest.raises(Exception):
        cache.save("bad", unwritable)

    assert not cache.has("bad")
    assert os.listdir(tmp_path / "results") == []


def test_cache_load_missing_key_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        ResultCache(tmp_path).load("absent")


def test_cache_key_ignores_dict_order_and_sees_values():
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    assert len(cache_key({"a": 1})) == 24


def test_workspace_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LSI_APP_HOME", str(tmp_path))
    assert workspace_dir() == tmp_path

    monkeypatch.delenv("LSI_APP_HOME")
    assert workspace_dir().parts[-2:] == (".cache", "lsi-app")
