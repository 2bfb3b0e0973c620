"""Progress reporting shared by long-running steps in every layer."""

from __future__ import annotations

from collections.abc import Callable

#: Called with the completed fraction in [0, 1] and a short description of the step.
ProgressCallback = Callable[[float, str], None]


def ignore_progress(fraction: float, message: str) -> None:
    """Discard a progress report; the default when the caller passes no callback."""


def scaled(callback: ProgressCallback, start: float, stop: float) -> ProgressCallback:
    """Map a sub-step's 0..1 progress onto ``start..stop`` of the caller's bar."""

    def report(fraction: float, message: str) -> None:
        callback(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return report
