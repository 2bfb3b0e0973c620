"""The sample-set interface shared by every dataset source.

A :class:`SampleSet` contains what every later step needs about a dataset
(ids, labels, class names, a fingerprint, the items skipped while opening
it) and an item reader that loads one raw item on request. Readers keep
only paths or compact arrays in memory, so a set of a million image files
costs a few hundred megabytes, not the decoded images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

import numpy as np
from PIL import Image

#: Edge length, in pixels, of the thumbnails shown in galleries.
THUMBNAIL_SIZE = 64

#: Characters of a text item shown where an image thumbnail would be.
TEXT_PREVIEW_CHARS = 160


class ItemKind(str, Enum):
    """Kind of the raw items of a sample set."""

    IMAGE = "image"
    TEXT = "text"
    VECTOR = "vector"


class ItemError(Exception):
    """A raw item could not be read; the message is the reason shown to the user."""


@dataclass(frozen=True)
class SkippedItem:
    """An item left out of a sample set, with the reason shown to the user.

    ``item`` is the file path where the source is file-backed, else a row
    reference such as ``row 17``.
    """

    item: str
    reason: str


class ItemReader(Protocol):
    """Loads raw items by position; must be picklable so results can be cached."""

    kind: ItemKind

    def __len__(self) -> int: ...

    def load(self, index: int):
        """Return item ``index``: an RGB ``PIL.Image.Image``, a ``str`` or a 1-D ndarray.

        Raises :class:`ItemError` when the item cannot be read.
        """

    def thumbnail(self, index: int, size: int = THUMBNAIL_SIZE):
        """Return a uint8 RGB array of edge <= ``size`` (images) or a short ``str`` (text, vectors)."""

    def subset(self, indices: np.ndarray) -> ItemReader:
        """Return a reader of the items at ``indices``, in that order."""


@dataclass(frozen=True)
class ArrayImages:
    """Images held in memory as one array.

    Attributes
    ----------
    images : ndarray of shape (n_samples, height, width) or (n_samples, height, width, 3)
        Either float32 grayscale intensities in [0, 1] with 1 = ink, drawn
        light on dark (the digits), or uint8 pixels, grayscale or RGB
        (torchvision datasets).
    """

    images: np.ndarray
    kind: ItemKind = field(default=ItemKind.IMAGE, init=False)

    def __post_init__(self) -> None:
        if self.images.ndim not in (3, 4) or (self.images.ndim == 4 and self.images.shape[3] != 3):
            raise ValueError(f"expected images of shape (N, H, W) or (N, H, W, 3), got {self.images.shape}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _pixels(self, index: int) -> np.ndarray:
        image = self.images[index]
        if image.dtype == np.uint8:
            return image
        return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self._pixels(index)).convert("RGB")

    def thumbnail(self, index: int, size: int = THUMBNAIL_SIZE) -> np.ndarray:
        # Small images are enlarged by pixel repetition so that they stay sharp.
        pixels = self._pixels(index)
        factor = max(1, size // max(pixels.shape[:2]))
        large = pixels.repeat(factor, axis=0).repeat(factor, axis=1)
        return large if large.ndim == 3 else np.repeat(large[:, :, None], 3, axis=2)

    def subset(self, indices: np.ndarray) -> ArrayImages:
        return ArrayImages(self.images[np.asarray(indices, dtype=np.int64)])


@dataclass(frozen=True)
class TextItems:
    """Text items held in memory."""

    texts: tuple[str, ...]
    kind: ItemKind = field(default=ItemKind.TEXT, init=False)

    def __len__(self) -> int:
        return len(self.texts)

    def load(self, index: int) -> str:
        return self.texts[index]

    def thumbnail(self, index: int, size: int = THUMBNAIL_SIZE) -> str:
        text = " ".join(self.texts[index].split())
        return text if len(text) <= TEXT_PREVIEW_CHARS else text[: TEXT_PREVIEW_CHARS - 1] + "…"

    def subset(self, indices: np.ndarray) -> TextItems:
        return TextItems(tuple(self.texts[int(i)] for i in indices))


@dataclass(frozen=True)
class VectorItems:
    """Precomputed feature vectors; each item is one row.

    Attributes
    ----------
    vectors : ndarray of shape (n_samples, n_features)
    """

    vectors: np.ndarray
    kind: ItemKind = field(default=ItemKind.VECTOR, init=False)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def load(self, index: int) -> np.ndarray:
        return self.vectors[index]

    def thumbnail(self, index: int, size: int = THUMBNAIL_SIZE) -> str:
        row = self.vectors[index]
        head = ", ".join(f"{value:.3g}" for value in row[:4])
        return f"[{head}{', …' if len(row) > 4 else ''}] ({len(row)} features)"

    def subset(self, indices: np.ndarray) -> VectorItems:
        return VectorItems(self.vectors[np.asarray(indices, dtype=np.int64)])


@dataclass(frozen=True)
class SampleSet:
    """A dataset opened by a source: ids, labels, an item reader and what was skipped.

    Attributes
    ----------
    name : str
        The source as the user gave it, for example ``"digits"`` or a folder path.
    sample_ids : ndarray of shape (n_samples,), dtype str
        Stable identifiers, unique within the set. File-backed sources use
        the path relative to the dataset root.
    labels : ndarray of shape (n_samples,), dtype int64, or None
        Classes in ``0..n_classes-1``; None when the data are unlabelled.
    class_names : tuple of str
        ``class_names[c]`` is the original label of class ``c``; empty when unlabelled.
    reader : ItemReader
        Loads item ``i`` (see :class:`ItemReader`).
    fingerprint : str
        Hex digest of everything that identifies the content (item bytes or
        file path, size and modification time, and labels).
    paths : ndarray of shape (n_samples,), dtype str, or None
        Absolute file paths for file-backed sources.
    skipped : tuple of SkippedItem
        Items left out while opening, with reasons.
    columns : dict of str to ndarray of shape (n_samples,)
        Extra per-sample columns to carry into the score table, such as ``split``.
    pseudo_labels : bool
        True when ``labels`` were assigned by clustering unlabelled data.
    """

    name: str
    sample_ids: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    reader: ItemReader
    fingerprint: str
    paths: np.ndarray | None = None
    skipped: tuple[SkippedItem, ...] = ()
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    pseudo_labels: bool = False

    def __post_init__(self) -> None:
        n_samples = len(self.sample_ids)
        if len(self.reader) != n_samples:
            raise ValueError(f"the reader has {len(self.reader)} items but there are {n_samples} sample ids")
        if self.labels is not None and len(self.labels) != n_samples:
            raise ValueError(f"there are {len(self.labels)} labels for {n_samples} samples")
        if self.paths is not None and len(self.paths) != n_samples:
            raise ValueError(f"there are {len(self.paths)} paths for {n_samples} samples")

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def kind(self) -> ItemKind:
        return self.reader.kind

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    @property
    def images(self) -> np.ndarray:
        """The in-memory image array of an :class:`ArrayImages` set, shape (n_samples, height, width)."""
        if not isinstance(self.reader, ArrayImages):
            raise AttributeError(f"dataset {self.name!r} has no in-memory image array; use reader.load(i)")
        return self.reader.images

    def subset(self, indices: np.ndarray, skipped: tuple[SkippedItem, ...] | list[SkippedItem] = ()) -> SampleSet:
        """Return the samples at ``indices``, adding ``skipped`` to the skipped items.

        The fingerprint stays that of the opened set, because the dropped
        items are a function of it.
        """
        indices = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            sample_ids=self.sample_ids[indices],
            labels=None if self.labels is None else self.labels[indices],
            reader=self.reader.subset(indices),
            paths=None if self.paths is None else self.paths[indices],
            skipped=self.skipped + tuple(skipped),
            columns={name: values[indices] for name, values in self.columns.items()},
        )

    def with_labels(self, labels: np.ndarray, class_names: tuple[str, ...], *, pseudo: bool = False) -> SampleSet:
        """Return a copy with new labels; ``pseudo`` marks labels assigned by clustering."""
        return replace(
            self, labels=np.asarray(labels, dtype=np.int64), class_names=tuple(class_names), pseudo_labels=pseudo
        )


def fingerprint_of(*parts) -> str:
    """Hash arrays, strings and numbers into a 16-hex-digit fingerprint.

    Arrays contribute their dtype, shape and bytes; other parts their ``repr``.
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            if part.dtype.kind in "OU":
                part = np.array([str(value) for value in part.ravel()], dtype=object)
                digest.update("\0".join(part).encode("utf-8", "surrogatepass"))
            else:
                contiguous = np.ascontiguousarray(part)
                digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
                digest.update(contiguous.tobytes())
        else:
            digest.update(repr(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:16]
