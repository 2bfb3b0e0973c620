import json
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest

from lsi_app.store import FeatureCache, ProbeCache, ResultCache, cache_key, workspace_dir

#: Metadata with non-ASCII text, as a folder of photos with German and Japanese file names gives.
SKIPPED_METADATA = {
    "dataset": "Fotos/Größe",
    "model": "clip-vit",
    "skipped": [["Fotos/Straße.jpg", "truncated JPEG"], ["写真/猫.png", "not an image"]],
    "notes": ["zwölf Bilder übersprungen"],
}


def _files(directory):
    return sorted(os.listdir(directory))


def _temporary_files(directory):
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


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


def test_result_description_sidecar(tmp_path):
    cache = ResultCache(tmp_path)
    table = pd.DataFrame({"lsi": [1.0]})
    description = {"dataset": "digits", "cnn": {"epochs": 5}, "note": "Prüfung"}

    cache.save("r1", table, description=description)

    assert _files(tmp_path / "results") == ["r1.json", "r1.parquet"]
    assert cache.load_description("r1") == description
    sidecar = json.loads((tmp_path / "results" / "r1.json").read_text(encoding="utf-8"))
    assert sidecar["summary"] == "dataset=digits, cnn.epochs=5, note=Prüfung"
    assert cache.load_description("absent") is None


def test_result_failed_write_removes_sidecar(tmp_path):
    cache = ResultCache(tmp_path)

    with pytest.raises(Exception):
        cache.save("bad", pd.DataFrame({"mixed": [1, "text"]}), description={"dataset": "digits"})

    assert _files(tmp_path / "results") == []


def test_result_rejects_unserialisable_description(tmp_path):
    cache = ResultCache(tmp_path)

    with pytest.raises(TypeError, match="results entry 'r1'.*tolist"):
        cache.save("r1", pd.DataFrame({"lsi": [1.0]}), description={"weights": np.zeros(2)})

    assert not (tmp_path / "results").exists() or _files(tmp_path / "results") == []


def test_features_round_trip(tmp_path):
    cache = FeatureCache(tmp_path)
    features = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
    kept = np.array([0, 2, 3, 5], dtype=np.int32)

    assert not cache.has("f1")
    returned = cache.save("f1", features, kept, SKIPPED_METADATA)

    assert returned == tmp_path / "features" / "f1.npy"
    assert cache.has("f1")
    assert _files(tmp_path / "features") == ["f1.json", "f1.kept.npy", "f1.npy"]
    loaded, loaded_kept, metadata = cache.load("f1")
    assert isinstance(loaded, np.memmap)
    assert loaded.dtype == np.float32
    assert loaded.shape == (4, 3)
    np.testing.assert_array_equal(loaded, features.astype(np.float32))
    assert loaded_kept.dtype == np.int64
    np.testing.assert_array_equal(loaded_kept, kept)
    assert metadata == SKIPPED_METADATA
    assert "Straße" in (tmp_path / "features" / "f1.json").read_text(encoding="utf-8")


def test_features_load_into_memory(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.save("f1", np.ones((2, 2)), np.array([0, 1]), {})

    features, _, _ = cache.load("f1", mmap_mode=None)

    assert not isinstance(features, np.memmap)
    features[0, 0] = 5.0
    assert cache.load("f1")[0][0, 0] == 1.0


def test_features_empty_set_round_trip(tmp_path):
    cache = FeatureCache(tmp_path)

    cache.save("f0", np.zeros((0, 8)), np.array([]), {"skipped": [["a.png", "empty file"]]})

    features, kept, metadata = cache.load("f0")
    assert features.shape == (0, 8)
    assert kept.shape == (0,)
    assert metadata["skipped"] == [["a.png", "empty file"]]


@pytest.mark.parametrize(
    ("features", "kept", "message"),
    [
        (np.zeros(3), np.arange(3), r"shape \(3,\)"),
        (np.array([["a", "b"]]), np.arange(1), "dtype <U1"),
        (np.zeros((3, 2)), np.arange(2), r"shape \(3,\)"),
        (np.zeros((2, 2)), np.array([0.0, 1.0]), "dtype float64"),
    ],
)
def test_features_reject_bad_arrays(tmp_path, features, kept, message):
    with pytest.raises(ValueError, match=message):
        FeatureCache(tmp_path).save("f1", features, kept, {})

    assert not (tmp_path / "features").exists()


def test_features_unserialisable_metadata_writes_nothing(tmp_path):
    cache = FeatureCache(tmp_path)

    with pytest.raises(TypeError, match="features entry 'f1'"):
        cache.save("f1", np.zeros((2, 2)), np.arange(2), {"path": tmp_path})

    assert not cache.has("f1")
    assert not (tmp_path / "features").exists()


def test_features_failed_sidecar_write_leaves_nothing(tmp_path):
    cache = FeatureCache(tmp_path)
    # A folder under the sidecar's name makes the final os.replace fail after both arrays landed.
    blocker = tmp_path / "features" / "f1.json"
    blocker.mkdir(parents=True)

    with pytest.raises(OSError):
        cache.save("f1", np.zeros((2, 2)), np.arange(2), {})

    assert not cache.has("f1")
    assert _files(tmp_path / "features") == ["f1.json"]
    assert blocker.is_dir()


def test_features_arrays_without_sidecar_are_invisible(tmp_path):
    cache = FeatureCache(tmp_path)
    # The state a writer killed between the arrays and the sidecar leaves behind.
    cache.directory.mkdir()
    np.save(cache.path("f1"), np.zeros((2, 2), dtype=np.float32))
    np.save(cache.kept_path("f1"), np.arange(2))

    assert not cache.has("f1")
    with pytest.raises(FileNotFoundError, match="no features entry 'f1'"):
        cache.load("f1")

    cache.save("f1", np.ones((2, 2)), np.arange(2), {})
    assert cache.has("f1")


def test_features_has_implies_loadable_during_write(tmp_path):
    cache = FeatureCache(tmp_path)
    # About 16 MB, so each array write takes long enough for the watcher to poll in between.
    features = np.ones((4096, 1024), dtype=np.float32)
    failures = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            if cache.has("big"):
                try:
                    loaded, kept, _ = cache.load("big")
                    assert loaded.shape == (4096, 1024)
                    assert kept.shape == (4096,)
                except Exception as error:  # Reported by the main thread's assert.
                    failures.append(error)
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    cache.save("big", features, np.arange(4096), {})
    time.sleep(0.05)
    done.set()
    watcher.join()

    assert failures == []


def test_features_shape_mismatch_raises(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.save("f1", np.zeros((2, 3)), np.arange(2), {})
    np.save(cache.path("f1"), np.zeros((5, 3), dtype=np.float32))

    with pytest.raises(ValueError, match=r"f1\.npy has shape \(5, 3\).*\(2, 3\)"):
        cache.load("f1")


def test_features_other_format_version_raises(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.save("f1", np.zeros((2, 3)), np.arange(2), {})
    sidecar = json.loads(cache.metadata_path("f1").read_text(encoding="utf-8"))
    sidecar["format_version"] = 99
    cache.metadata_path("f1").write_text(json.dumps(sidecar), encoding="utf-8")

    with pytest.raises(ValueError, match="format version 99.*cache clear"):
        cache.load("f1")


def test_probes_round_trip(tmp_path):
    cache = ProbeCache(tmp_path)
    weights = np.linspace(-1, 1, 12).reshape(3, 4)

    assert not cache.has("p1")
    returned = cache.save("p1", weights, {"classes": ["Katze", "猫"], "prior_precision": 0.5})

    assert returned == tmp_path / "probes" / "p1.npy"
    assert _files(tmp_path / "probes") == ["p1.json", "p1.npy"]
    loaded, metadata = cache.load("p1")
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, weights)
    assert metadata == {"classes": ["Katze", "猫"], "prior_precision": 0.5}


def test_probes_load_missing_key_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no probes entry 'p1'"):
        ProbeCache(tmp_path).load("p1")


def test_probes_reject_non_numeric_weights(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        ProbeCache(tmp_path).save("p1", np.array([None, 1]), {})


def test_load_records_use(tmp_path):
    features = FeatureCache(tmp_path)
    probes = ProbeCache(tmp_path)
    results = ResultCache(tmp_path)
    features.save("k", np.zeros((1, 1)), np.arange(1), {})
    probes.save("k", np.zeros(2), {})
    results.save("k", pd.DataFrame({"lsi": [1.0]}))
    markers = [features.metadata_path("k"), probes.metadata_path("k"), results.path("k")]
    for marker in markers:
        os.utime(marker, (1_000_000, 1_000_000))

    features.load("k")
    probes.load("k")
    results.load("k")

    for marker in markers:
        assert marker.stat().st_mtime > time.time() - 60, marker


@pytest.mark.parametrize("key", ["../escape", "a.b", "", "with space", "x" * 129])
def test_invalid_key_raises(tmp_path, key):
    with pytest.raises(ValueError, match="invalid cache key"):
        FeatureCache(tmp_path).has(key)
    with pytest.raises(ValueError, match="invalid cache key"):
        ResultCache(tmp_path).path(key)


def test_concurrent_saves_leave_no_temporary_files(tmp_path):
    cache = FeatureCache(tmp_path)
    features = np.random.default_rng(0).normal(size=(64, 16))

    threads = [
        threading.Thread(target=cache.save, args=("same", features, np.arange(64), {"run": 1})) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert _temporary_files(cache.directory) == []
    loaded, kept, _ = cache.load("same")
    np.testing.assert_array_equal(loaded, features.astype(np.float32))
    np.testing.assert_array_equal(kept, np.arange(64))


def test_workspace_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("LSI_APP_HOME", str(tmp_path / "from-env"))
    assert workspace_dir(tmp_path / "flag") == tmp_path / "flag"
    assert workspace_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert workspace_dir() == tmp_path / "from-env"
    assert workspace_dir("") == tmp_path / "from-env"

    monkeypatch.delenv("LSI_APP_HOME")
    assert workspace_dir().parts[-2:] == (".cache", "lsi-app")
    assert workspace_dir().is_absolute()

    monkeypatch.setenv("HOME", str(tmp_path))
    assert workspace_dir("~/ws") == tmp_path / "ws"
