"""The sample-set interface shared by every dataset source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SampleSet:
    """An in-memory labelled image dataset.

    Attributes
    ----------
    name : str
        Source name, for example ``"digits"``.
    sample_ids : ndarray of shape (n_samples,), dtype str
        Stable identifiers, unique within the set.
    images : ndarray of shape (n_samples, height, width), dtype float32
        Grayscale intensities in [0, 1], 1 = ink.
    labels : ndarray of shape (n_samples,), dtype int64
        Classes in ``0..n_classes-1``.
    class_names : tuple of str
        ``class_names[c]`` is the display name of class ``c``.
    """

    name: str
    sample_ids: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        digest.update(self.name.encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        digest.update("\0".join(self.class_names).encode())
        object.__setattr__(self, "fingerprint", digest.hexdigest()[:16])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)
