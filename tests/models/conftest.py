"""Fixtures shared by the feature-extractor tests: small image sets and a network block."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import numpy as np
import pytest

from lsi_app.data.samples import ArrayImages, ItemError, SampleSet, fingerprint_of


@dataclass(frozen=True)
class FailingImages(ArrayImages):
    """In-memory images whose items at ``failing`` raise ItemError, like unreadable files."""

    failing: frozenset = field(default_factory=frozenset)

    def load(self, index: int):
        if index in self.failing:
            raise ItemError(f"cannot identify image file (item {index})")
        return super().load(index)


def image_samples(n_images: int = 6, size: int = 24, failing=(), labels=None, seed: int = 0) -> SampleSet:
    """Return a SampleSet of random uint8 RGB images with file-like paths; ``failing`` items raise ItemError."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_images, size, size + 4, 3), dtype=np.uint8)
    return SampleSet(
        name="test-images",
        sample_ids=np.array([f"img{i}.png" for i in range(n_images)]),
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
        class_names=() if labels is None else tuple(str(c) for c in sorted(set(labels))),
        reader=FailingImages(images, failing=frozenset(failing)),
        fingerprint=fingerprint_of("test-images", images),
        paths=np.array([f"/data/img{i}.png" for i in range(n_images)]),
    )


@pytest.fixture
def no_network(monkeypatch):
    """Make every outgoing connection fail, so a test fails if the code under test goes online."""
    attempts = []

    def block_connection(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", block_connection)
    monkeypatch.setattr(socket, "create_connection", block_connection)
    return attempts


@pytest.fixture
def make_images():
    """The :func:`image_samples` factory."""
    return image_samples
