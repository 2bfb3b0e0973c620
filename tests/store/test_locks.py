import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lsi_app.store import FeatureCache, lock
from lsi_app.store.locks import try_lock

REPOSITORY = Path(__file__).resolve().parents[2]

#: Maximum wait for a child process; each one imports numpy and pandas and does little else.
CHILD_TIMEOUT_SECONDS = 30

#: Compute the entry under the lock unless it exists, counting computations in a file.
COMPUTE_ONCE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from lsi_app.store import FeatureCache, lock

    root, name = Path(sys.argv[1]), sys.argv[2]
    (root / f"{name}.ready").touch()
    cache = FeatureCache(root)
    with lock(root, "shared", timeout=20):
        if cache.has("shared"):
            print("hit")
        else:
            with open(root / "computations.txt", "a") as counter:
                counter.write(name + "\\n")
            time.sleep(0.3)
            cache.save("shared", np.full((50, 8), 3.0), np.arange(50), {"by": name})
            print("computed")
    """
)

#: Save the same entry many times without a lock.
SAVE_REPEATEDLY = textwrap.dedent(
    """
    import sys
    import numpy as np
    from lsi_app.store import FeatureCache

    cache = FeatureCache(sys.argv[1])
    features = np.arange(20000, dtype=np.float32).reshape(2000, 10)
    for _ in range(15):
        cache.save("same", features, np.arange(2000), {"rows": 2000})
    """
)


def _start(script, *arguments):
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, arguments)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, timeout=CHILD_TIMEOUT_SECONDS):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.02)


def test_lock_creates_lock_file(tmp_path):
    with lock(tmp_path, "abc") as path:
        assert path == tmp_path / "locks" / "abc.lock"
        assert path.is_file()


def test_lock_times_out_naming_file(tmp_path):
    with lock(tmp_path, "abc"):
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"locks/abc\.lock"):
            with lock(tmp_path, "abc", timeout=0.2):
                pass
        assert time.monotonic() - started >= 0.2


def test_lock_released_after_block(tmp_path):
    with lock(tmp_path, "abc"):
        pass
    with lock(tmp_path, "abc", timeout=0):
        pass


def test_lock_released_after_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with lock(tmp_path, "abc"):
            raise RuntimeError("compute failed")
    with lock(tmp_path, "abc", timeout=0):
        pass


def test_lock_keys_are_independent(tmp_path):
    with lock(tmp_path, "first"):
        with lock(tmp_path, "second", timeout=0):
            pass


def test_lock_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="invalid cache key"):
        with lock(tmp_path, "../x"):
            pass
    with pytest.raises(ValueError, match="invalid lock timeout -1"):
        with lock(tmp_path, "abc", timeout=-1):
            pass


def test_try_lock_reports_held_lock(tmp_path):
    with lock(tmp_path, "abc"):
        with try_lock(tmp_path, "abc") as acquired:
            assert acquired is False
    with try_lock(tmp_path, "abc") as acquired:
        assert acquired is True
        with try_lock(tmp_path, "abc") as again:
            assert again is False


def test_lock_serialises_two_processes(tmp_path):
    # The test holds the lock first, so both children are certain to wait on it.
    with lock(tmp_path, "shared"):
        children = [_start(COMPUTE_ONCE, tmp_path, name) for name in ("one", "two")]
        for name in ("one", "two"):
            _wait_for(tmp_path / f"{name}.ready")
        time.sleep(0.3)
        assert [child.poll() for child in children] == [None, None]
        assert not (tmp_path / "computations.txt").exists()

    outputs = []
    for child in children:
        stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
        assert child.returncode == 0, stderr
        outputs.append(stdout.strip())

    assert sorted(outputs) == ["computed", "hit"]
    assert len((tmp_path / "computations.txt").read_text().splitlines()) == 1
    features, kept, _ = FeatureCache(tmp_path).load("shared")
    np.testing.assert_array_equal(features, np.full((50, 8), 3.0, dtype=np.float32))
    np.testing.assert_array_equal(kept, np.arange(50))


def test_unlocked_writers_leave_one_whole_entry(tmp_path):
    children = [_start(SAVE_REPEATEDLY, tmp_path) for _ in range(2)]
    for child in children:
        _, stderr = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
        assert child.returncode == 0, stderr

    cache = FeatureCache(tmp_path)
    assert cache.has("same")
    assert sorted(path.name for path in cache.directory.iterdir()) == ["same.json", "same.kept.npy", "same.npy"]
    features, kept, metadata = cache.load("same")
    np.testing.assert_array_equal(features, np.arange(20000, dtype=np.float32).reshape(2000, 10))
    np.testing.assert_array_equal(kept, np.arange(2000))
    assert metadata == {"rows": 2000}
