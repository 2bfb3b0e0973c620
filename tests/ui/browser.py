"""Helpers for real-browser tests: a live ``lsi-app run`` server and Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Seconds to wait for the server's health endpoint; cold imports of torch take a few.
SERVER_START_TIMEOUT = 60

#: Flags for headless Chromium on a machine without network or display. The
#: background-networking flags stop Chromium from calling out at start.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SCREENSHOT_DIR = Path(os.environ.get("LSI_APP_SCREENSHOT_DIR", Path(__file__).parents[2] / "build" / "screenshots"))


def chromium_path() -> str:
    """Return the Chromium executable, or skip (fail when ``CI=true``) if none is installed."""
    candidate = os.environ.get("LSI_APP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if candidate:
        return candidate
    reason = "Debian's chromium is not installed (apt-get install chromium), so the browser test cannot run"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lsi-app run exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"lsi-app run did not answer on {url} within {SERVER_START_TIMEOUT} s:\n{log.read_text()}")


@contextmanager
def running_server(workspace: Path, log: Path, arguments: tuple[str, ...] = ()) -> Iterator[str]:
    """Start ``lsi-app run [arguments]`` on a free loopback port; yield its URL and stop it afterwards."""
    port = free_port()
    executable = Path(sys.executable).with_name("lsi-app")
    command = [str(executable), "run", "--port", str(port), *arguments]
    env = dict(os.environ, LSI_APP_HOME=str(workspace))
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
