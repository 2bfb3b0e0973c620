"""Image files as sample sets: a folder with one sub-folder per class, or a manifest table.

Opening a source reads only file headers, so it stays fast and bounded in
memory for large datasets. Files that cannot be used (wrong type, empty,
unreadable header, too many pixels, hidden) are reported as
:class:`~lsi_app.data.samples.SkippedItem` and never stop the opening.
Defects that only a full decode finds, such as a truncated JPEG, surface
later as :class:`~lsi_app.data.samples.ItemError` from the reader.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from lsi_app.data.arrays import encode_labels
from lsi_app.data.samples import THUMBNAIL_SIZE, ItemError, ItemKind, SampleSet, SkippedItem, fingerprint_of
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Lower-case file suffixes of the formats that PIL reads and that image
#: datasets use. Other files in an image folder are skipped.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

#: Images with more pixels are skipped, because 100 megapixels decode to
#: about 300 MB as 8-bit RGB, which bounds the memory one image costs a worker.
#: NOTE: PIL itself raises DecompressionBombError above 2 * PIL.Image.MAX_IMAGE_PIXELS
#: (about 179 megapixels by default) and this module never changes that
#: global, so a larger ``max_pixels`` has no effect above that size.
MAX_IMAGE_PIXELS = 100_000_000

#: Thumbnails are decoded (JPEG draft mode) and reduced by integer factors
#: down to this multiple of the thumbnail edge before the final resample.
#: 2.0 is the default of Pillow's ``Image.thumbnail``, documented there as
#: "very close to fair resampling". A 4000x3000 JPEG then decodes at 1/8
#: scale (500x375) instead of 36 MB of RGB.
THUMBNAIL_REDUCING_GAP = 2.0

#: Names that operating systems and tools create next to data (macOS
#: archive metadata, Windows thumbnail caches). They are ignored like
#: names that start with a dot.
OS_METADATA_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})

#: Skip reasons of the folder scan, shared by the code and its tests.
HIDDEN_REASON = "hidden file or folder, ignored"
OUTSIDE_CLASS_REASON = "not inside a class folder"
EMPTY_CLASS_REASON = "empty class folder: 0 usable images"

#: Number of skip reasons quoted in the error raised when no image is usable.
ERROR_EXAMPLES = 5

#: Progress is reported about this many times while files are checked, so a
#: million files do not cost a million UI updates.
PROGRESS_REPORTS = 100

#: Grayscale modes with more than 8 bits per pixel, scaled by their own range.
HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

#: Modes with an alpha band, composited over white.
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

#: Modes converted to RGB before resizing a thumbnail, because Pillow
#: resizes them with nearest-neighbour sampling, which looks jagged.
_CONVERT_BEFORE_RESIZE_MODES = frozenset({"1", "P", "PA"})

#: 16-bit modes converted to 32-bit "I" before resizing a thumbnail, because
#: Pillow 13's ``Image.reduce`` rejects them ("image has wrong mode").
_RESIZE_AS_INT32_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

#: Exceptions that PIL's format plugins raise on malformed data, besides OSError.
_DECODER_ERRORS = (SyntaxError, ValueError, EOFError, struct.error, IndexError)

#: Background that transparent pixels are composited over.
_WHITE = (255, 255, 255, 255)

#: Labels written as whole numbers, compared numerically (``"2"`` before ``"10"``).
_INTEGER_LABEL = re.compile(r"[+-]?\d+")

#: Manifest columns that this module reads. Other columns are ignored.
MANIFEST_COLUMNS = ("path", "label", "split")

MANIFEST_SUFFIXES = (".csv", ".parquet")


# --- conversion -------------------------------------------------------------


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image of any PIL mode to 8-bit RGB by one rule.

    The first matching case applies:

    1. High bit-depth grayscale (``"I;16"`` and its byte orders, ``"I"``,
       ``"F"``) is scaled linearly from the image's own minimum..maximum to
       0..255, then replicated to RGB. The actual range is used because
       ``"F"`` has no fixed full range, and because 16-bit scans often fill
       only 10 to 12 bits and would look black scaled by 65535. A constant
       image becomes black. Non-finite ``"F"`` values map to black (NaN,
       -inf) and white (+inf). Transparency is ignored in these modes.
    2. Transparency: an alpha band (``"RGBA"``, ``"RGBa"``, ``"LA"``,
       ``"PA"``) or a ``transparency`` entry in ``image.info`` (palette
       ``"P"`` images, and ``"L"`` or ``"RGB"`` PNGs with a transparent
       colour) converts to RGBA, which is composited over a white background.
    3. ``"RGB"`` is returned unchanged (the same object).
    4. Every other mode uses PIL's ``convert("RGB")``: ``"1"`` and ``"L"``
       replicate the gray value to the three bands, ``"P"`` looks up the
       palette, and ``"CMYK"`` uses PIL's plain formula without an ICC profile.

    Parameters
    ----------
    image : PIL.Image.Image

    Returns
    -------
    PIL.Image.Image
        An image of mode ``"RGB"`` and the same size.

    Raises
    ------
    ValueError
        When PIL cannot convert the mode (for example ``"La"``).
    """
    if image.mode in HIGH_DEPTH_MODES:
        return _scale_to_8bit(image).convert("RGB")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() == finite.max():
        return Image.fromarray(np.zeros(values.shape, dtype=np.uint8))
    low, high = float(finite.min()), float(finite.max())
    scaled = (values - low) * (255.0 / (high - low))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8))


# --- single files -----------------------------------------------------------


def _file_error_reason(error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return "file not found"
    return f"failed to read file: {error.strerror}"


def _too_large_reason(width: int, height: int, max_pixels: int) -> str:
    return (
        f"image too large: {width}x{height} pixels ({width * height / 1e6:.1f} megapixels, "
        f"limit {max_pixels / 1e6:.1f})"
    )


@contextmanager
def _open_image(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """Open ``path`` reading only its header, and raise ItemError with the reason when it is unusable."""
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise ItemError(f"image too large: {error}") from None
    except UnidentifiedImageError as error:
        raise ItemError(f"not a readable image: {error}") from None
    except OSError as error:
        # Errors with an errno come from the file system, the others from a PIL plugin.
        if error.errno is not None:
            raise ItemError(_file_error_reason(error)) from None
        raise ItemError(f"not a readable image: {error}") from None
    except _DECODER_ERRORS as error:
        raise ItemError(f"not a readable image: {error}") from None

    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ItemError(_too_large_reason(width, height, max_pixels))
        yield image


def _decode(image: Image.Image) -> None:
    """Decode the pixel data of the current (first) frame, raising ItemError when it is incomplete."""
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise ItemError(f"image too large: {error}") from None
    except (OSError, *_DECODER_ERRORS) as error:
        raise ItemError(f"truncated or corrupt image: {error}") from None


def _convert(image: Image.Image) -> Image.Image:
    try:
        return to_rgb(image)
    except ValueError as error:
        raise ItemError(f"unsupported image mode {image.mode}: {error}") from None


def check_image_file(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Check that ``path`` looks like a usable image, reading only its header.

    Parameters
    ----------
    path : Path
        The image file.
    max_pixels : int, default MAX_IMAGE_PIXELS
        Images with more pixels (width times height) are rejected.

    Returns
    -------
    str or None
        None when the file is usable, else the reason shown to the user,
        for example ``"empty file (0 bytes)"``, ``"file not found"``,
        ``"not an image file (extension .txt)"``, ``"not a readable image:
        ..."`` or ``"image too large: 12000x12000 pixels (144.0 megapixels,
        limit 100.0)"``.
        A truncated file can pass, because only a full decode finds it
        (see :func:`load_image`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        return f"not an image file (extension {suffix})" if suffix else "not an image file (no extension)"
    try:
        size_bytes = path.stat().st_size
    except OSError as error:
        return _file_error_reason(error)
    if size_bytes == 0:
        return "empty file (0 bytes)"
    try:
        with _open_image(path, max_pixels):
            pass
    except ItemError as error:
        return str(error)
    return None


def load_image(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode an image file fully and convert it to RGB with :func:`to_rgb`.

    Multi-frame files (GIF, TIFF) give their first frame. EXIF orientation
    is not applied, as in torchvision's ``ImageFolder`` loader.

    Parameters
    ----------
    path : Path
        The image file; its extension is not checked.
    max_pixels : int, default MAX_IMAGE_PIXELS
        Images with more pixels are rejected before decoding.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``.

    Raises
    ------
    ItemError
        When the file cannot be read, for example ``"truncated or corrupt
        image: image file is truncated (...)"``. PIL's global
        ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left as it is (False by default).
    """
    with _open_image(Path(path), max_pixels) as image:
        _decode(image)
        return _convert(image)


def load_thumbnail(path: Path, size: int = THUMBNAIL_SIZE, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a small RGB version of an image file with bounded memory.

    JPEG files decode at 1/2 to 1/8 scale (``Image.draft``), and other
    formats are reduced by integer factors before the final resample, so
    only the decoded source image (at most ``max_pixels``) is ever full size.

    Parameters
    ----------
    path : Path
        The image file.
    size : int, default THUMBNAIL_SIZE
        Maximum edge length in pixels; smaller images are not enlarged.
    max_pixels : int, default MAX_IMAGE_PIXELS
        Images with more pixels are rejected before decoding.

    Returns
    -------
    ndarray of shape (height, width, 3), dtype uint8
        With ``max(height, width) <= size``, converted by :func:`to_rgb`.

    Raises
    ------
    ItemError
        As :func:`load_image`.
    """
    reduced_edge = int(size * THUMBNAIL_REDUCING_GAP)
    with _open_image(Path(path), max_pixels) as image:
        image.draft("RGB", (reduced_edge, reduced_edge))
        _decode(image)
        if image.mode in _CONVERT_BEFORE_RESIZE_MODES:
            image = _convert(image)
        elif image.mode in _RESIZE_AS_INT32_MODES:
            image = image.convert("I")
        try:
            image.thumbnail((size, size), reducing_gap=THUMBNAIL_REDUCING_GAP)
        except ValueError as error:
            raise ItemError(f"failed to resize image of mode {image.mode}: {error}") from None
        return np.array(_convert(image), dtype=np.uint8)


@dataclass(frozen=True)
class ImageFiles:
    """Image files on disk, decoded on request (an ``ItemReader``).

    Attributes
    ----------
    paths : tuple of str
        Absolute file paths; a list is converted to a tuple.
    max_pixels : int, default MAX_IMAGE_PIXELS
        Images with more pixels raise :class:`ItemError` when loaded.
    """

    paths: tuple[str, ...]
    max_pixels: int = MAX_IMAGE_PIXELS
    kind: ItemKind = field(default=ItemKind.IMAGE, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(str(path) for path in self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        return load_image(Path(self.paths[index]), self.max_pixels)

    def thumbnail(self, index: int, size: int = THUMBNAIL_SIZE) -> np.ndarray:
        return load_thumbnail(Path(self.paths[index]), size, self.max_pixels)

    def subset(self, indices: np.ndarray) -> ImageFiles:
        return ImageFiles(tuple(self.paths[int(i)] for i in indices), self.max_pixels)


# --- checking many files ----------------------------------------------------


@dataclass
class _CheckedFiles:
    """Positions of the usable files among the candidates, with their size and modification time."""

    usable_positions: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes_ns: list[int] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)


def _check_files(
    paths: Sequence[str],
    max_pixels: int,
    progress: ProgressCallback,
    row_numbers: Sequence[int] | None = None,
) -> _CheckedFiles:
    """Run :func:`check_image_file` on every path and report progress.

    When ``row_numbers`` is given, each skip reason ends with ``(row N)``.
    """
    result = _CheckedFiles()
    total = len(paths)
    report_every = max(1, total // PROGRESS_REPORTS)
    progress(0.0, f"Scanning images: 0/{total}")
    for position, path in enumerate(paths):
        reason = check_image_file(Path(path), max_pixels)
        if reason is None:
            try:
                status = os.stat(path)
            except OSError as error:
                reason = _file_error_reason(error)
        if reason is not None:
            if row_numbers is not None:
                reason = f"{reason} (row {row_numbers[position]})"
            result.skipped.append(SkippedItem(path, reason))
        else:
            result.usable_positions.append(position)
            result.sizes.append(status.st_size)
            result.mtimes_ns.append(status.st_mtime_ns)
        done = position + 1
        if done % report_every == 0 or done == total:
            progress(done / total, f"Scanning images: {done}/{total}")
    return result


def _no_usable_image_error(source: str, skipped: Sequence[SkippedItem], fix: str) -> ValueError:
    examples = "; ".join(f"{item.item}: {item.reason}" for item in skipped[:ERROR_EXAMPLES])
    details = f"{len(skipped)} items skipped, first: {examples}" if skipped else "no files found"
    return ValueError(f"{source} contains no usable image ({details}); {fix}")


# --- image folders ----------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in OS_METADATA_NAMES


def _sorted_entries(folder: str, skipped: list[SkippedItem]) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as error:
        skipped.append(SkippedItem(folder, f"failed to read folder: {error.strerror}"))
        return []


def _folder_identity(folder: str) -> tuple[int, int]:
    status = os.stat(folder)
    return status.st_dev, status.st_ino


def _list_files(folder: str, skipped: list[SkippedItem]) -> list[str]:
    """Return the non-hidden files under ``folder``, recursively, following symbolic links once."""
    files: list[str] = []
    stack = [folder]
    visited = {_folder_identity(folder)}
    while stack:
        current = stack.pop()
        for entry in _sorted_entries(current, skipped):
            if _is_hidden(entry.name):
                skipped.append(SkippedItem(entry.path, HIDDEN_REASON))
            elif entry.is_dir():
                identity = _folder_identity(entry.path)
                if identity in visited:
                    skipped.append(SkippedItem(entry.path, "folder already scanned through a symbolic link, ignored"))
                    continue
                visited.add(identity)
                stack.append(entry.path)
            elif entry.is_file():
                files.append(entry.path)
            else:
                skipped.append(SkippedItem(entry.path, "not a regular file (broken link, device or socket), ignored"))
    return files


def _sample_id(path: str, root_prefix: str) -> str:
    """Return ``path`` relative to the root, with ``/`` separators.

    ``root_prefix`` is the absolute root followed by a separator.
    """
    return PurePath(path[len(root_prefix):]).as_posix()


def _list_candidates(root_prefix: str, skipped: list[SkippedItem]) -> tuple[list[str], list[tuple[str, int]]]:
    """List the class folders and the candidate files with their class (-1 when unlabelled).

    Candidates are sorted by class, then by sample id. Hidden entries and
    files outside class folders are added to ``skipped``.
    """
    class_folders: list[str] = []
    top_files: list[str] = []
    for entry in _sorted_entries(root_prefix, skipped):
        if _is_hidden(entry.name):
            skipped.append(SkippedItem(entry.path, HIDDEN_REASON))
        elif entry.is_dir():
            class_folders.append(entry.path)
        else:
            top_files.append(entry.path)

    if not class_folders:
        candidates = [(path, -1) for path in top_files]
    else:
        skipped.extend(SkippedItem(path, OUTSIDE_CLASS_REASON) for path in top_files)
        candidates = []
        for label, folder in enumerate(class_folders):
            candidates.extend((path, label) for path in _list_files(folder, skipped))
    candidates.sort(key=lambda candidate: (candidate[1], _sample_id(candidate[0], root_prefix)))
    return class_folders, candidates


def open_image_folder(
    root: Path,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    progress: ProgressCallback = ignore_progress,
) -> SampleSet:
    """Open a folder of images with one sub-folder per class, the layout of torchvision's ``ImageFolder``.

    Class folders are the direct sub-folders of ``root``, sorted by name
    (code-point order), and class ``c`` is the ``c``-th of them. Images
    inside a class folder are found recursively. When ``root`` has no
    sub-folders, the images directly inside it form an unlabelled set.

    Skipped, with a reason, in :attr:`SampleSet.skipped`:

    - hidden entries (names starting with ``.``, and ``__MACOSX``,
      ``Thumbs.db``, ``desktop.ini``), reported once each and never scanned;
    - files directly in ``root`` when class folders exist;
    - files failing :func:`check_image_file`;
    - class folders without a usable image. These stay in ``class_names``,
      so per-class counts show them with 0 samples.

    Parameters
    ----------
    root : Path
        The dataset folder.
    max_pixels : int, default MAX_IMAGE_PIXELS
        Images with more pixels are skipped.
    progress : callable, default ignore_progress
        Receives the fraction of files checked and a message such as
        ``"Scanning images: 1200/5000"``.

    Returns
    -------
    SampleSet
        ``sample_ids`` are the paths relative to ``root`` with ``/``
        separators, and ``paths`` are absolute. File names keep the Unicode
        form they have on disk. Samples are sorted by class, then by id.
        The fingerprint covers ids, file sizes, modification times and labels.

    Raises
    ------
    ValueError
        When ``root`` does not exist, is not a folder or contains no usable image.
    """
    root = Path(root)
    if not root.exists():
        raise ValueError(f"image folder {root} not found; pass an existing folder of images")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; pass a folder with one sub-folder of images per class")
    absolute_root = root.absolute()
    # Every listed path starts with this prefix, because os.scandir joins names onto it.
    root_prefix = os.path.join(str(absolute_root), "")
    progress(0.0, f"Listing files in {root}")

    skipped: list[SkippedItem] = []
    class_folders, candidates = _list_candidates(root_prefix, skipped)
    class_names = tuple(Path(folder).name for folder in class_folders)
    checked = _check_files([path for path, _ in candidates], max_pixels, progress)
    skipped.extend(checked.skipped)
    usable = [candidates[position] for position in checked.usable_positions]
    if not usable:
        raise _no_usable_image_error(
            f"image folder {root}",
            skipped,
            f"put image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in one sub-folder per class",
        )

    paths = np.array([path for path, _ in usable], dtype=str)
    sample_ids = np.array([_sample_id(path, root_prefix) for path, _ in usable], dtype=str)
    labels = np.array([label for _, label in usable], dtype=np.int64) if class_names else None
    if labels is not None:
        counts = np.bincount(labels, minlength=len(class_names))
        skipped.extend(
            SkippedItem(folder, EMPTY_CLASS_REASON) for folder, count in zip(class_folders, counts) if count == 0
        )

    return _image_sample_set(
        "image folder", root, sample_ids, paths, checked, labels, class_names, skipped, max_pixels, {}
    )


# --- manifests --------------------------------------------------------------


def _cell_text(value) -> str:
    """Return a table cell as stripped text, with ``""`` for a missing value and no ``.0`` on whole floats."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_manifest_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"manifest {path} is not valid UTF-8 ({error.reason} at byte {error.start}); save it as UTF-8"
            ) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise ValueError(
                f"manifest {path} is not a valid CSV file: {error}; write a header row path,label[,split]"
            ) from None
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"manifest {path} is not a valid Parquet file: {error}") from None
    raise ValueError(
        f"manifest {path} has an unsupported type {suffix or '(none)'}; use one of {', '.join(MANIFEST_SUFFIXES)}"
    )


def _manifest_columns(table: pd.DataFrame, path: Path) -> dict[str, str]:
    """Map ``path``, ``label`` and ``split`` to the table's column names, matched case-insensitively."""
    found: dict[str, str] = {}
    for column in table.columns:
        key = str(column).strip().lstrip("\ufeff").strip().lower()
        if key not in MANIFEST_COLUMNS:
            continue
        if key in found:
            raise ValueError(
                f"manifest {path} has two {key!r} columns ({found[key]!r} and {column!r}); rename or drop one"
            )
        found[key] = column
    if "path" not in found:
        raise ValueError(
            f"manifest {path} has no 'path' column (its columns are {[str(c) for c in table.columns]}); "
            "name the column of image file paths 'path'"
        )
    return found


def _encode_manifest_labels(labels: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Encode label texts, as integers when every label is a whole number that fits int64."""
    values: np.ndarray = np.array(labels, dtype=str)
    if all(_INTEGER_LABEL.fullmatch(label) for label in labels):
        try:
            values = np.array([int(label) for label in labels], dtype=np.int64)
        except OverflowError:
            pass
    return encode_labels(values)


def _resolve_manifest_rows(
    path_cells: list[str], label_cells: list[str] | None, folder: Path, skipped: list[SkippedItem]
) -> tuple[list[int], list[str]]:
    """Return the rows (from 1) and absolute paths worth checking, adding the others to ``skipped``.

    ``label_cells`` is None for an unlabelled manifest, else rows with an empty label are skipped.
    """
    first_row_of: dict[str, int] = {}
    candidate_rows: list[int] = []
    candidate_paths: list[str] = []
    for row, cell in enumerate(path_cells, start=1):
        if not cell:
            skipped.append(SkippedItem(f"row {row}", f"empty path (row {row})"))
            continue
        resolved = os.path.normpath(folder / cell.replace("\\", "/"))
        if resolved in first_row_of:
            skipped.append(SkippedItem(resolved, f"duplicate of row {first_row_of[resolved]}"))
            continue
        first_row_of[resolved] = row

        if not os.path.lexists(resolved):
            skipped.append(SkippedItem(resolved, f"file not found (row {row})"))
        elif label_cells is not None and not label_cells[row - 1]:
            skipped.append(SkippedItem(resolved, f"missing label (row {row})"))
        else:
            candidate_rows.append(row)
            candidate_paths.append(resolved)
    return candidate_rows, candidate_paths


def open_manifest(
    path: Path,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    progress: ProgressCallback = ignore_progress,
) -> SampleSet:
    """Open the images listed in a CSV or Parquet manifest.

    Columns, matched case-insensitively after stripping spaces and a byte
    order mark: ``path`` (required), ``label`` and ``split`` (optional).
    A CSV file is read as UTF-8, with or without a byte order mark, and
    every cell as text. Cells are stripped of surrounding spaces.

    Paths are relative to the manifest's folder unless absolute, and
    backslashes count as separators. Rows in messages are numbered from 1
    for the first data row after the header. Skipped, with a reason:

    - rows with an empty path;
    - a path that resolves to the same file as an earlier row (``"duplicate of row M"``);
    - a file that does not exist (``"file not found (row N)"``);
    - in a labelled manifest, rows with an empty label (``"missing label (row N)"``);
    - files failing :func:`check_image_file` (the reason ends with ``(row N)``).

    A manifest without a ``label`` column, or with every label empty, is
    unlabelled. Labels that are all whole numbers (``"2"``, ``"10"``) are
    ordered numerically, other labels as text.

    Parameters
    ----------
    path : Path
        The ``.csv`` or ``.parquet`` manifest.
    max_pixels : int, default MAX_IMAGE_PIXELS
        Images with more pixels are skipped.
    progress : callable, default ignore_progress
        Receives the fraction of files checked.

    Returns
    -------
    SampleSet
        In manifest order. ``sample_ids`` are the paths as written (with
        ``/`` separators), ``paths`` are absolute, and the ``split`` column,
        when present, is in ``columns["split"]``. The fingerprint covers ids,
        file sizes, modification times, labels and splits.

    Raises
    ------
    ValueError
        When the manifest is missing, unreadable, has no ``path`` column or
        lists no usable image.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"manifest {path} not found; pass a .csv or .parquet file with a 'path' column")
    table = _read_manifest_table(path)
    columns = _manifest_columns(table, path)

    path_cells = [_cell_text(value) for value in table[columns["path"]]]
    label_cells = [_cell_text(value) for value in table[columns["label"]]] if "label" in columns else None
    split_cells = [_cell_text(value) for value in table[columns["split"]]] if "split" in columns else None
    labelled = label_cells is not None and any(label_cells)

    skipped: list[SkippedItem] = []
    candidate_rows, candidate_paths = _resolve_manifest_rows(
        path_cells, label_cells if labelled else None, path.parent.absolute(), skipped
    )
    checked = _check_files(candidate_paths, max_pixels, progress, row_numbers=candidate_rows)
    skipped.extend(checked.skipped)
    rows = [candidate_rows[position] for position in checked.usable_positions]
    if not rows:
        raise _no_usable_image_error(
            f"manifest {path}", skipped, "list image files relative to the manifest's folder in the 'path' column"
        )

    paths = np.array([candidate_paths[position] for position in checked.usable_positions], dtype=str)
    sample_ids = np.array([path_cells[row - 1].replace("\\", "/") for row in rows], dtype=str)
    labels, class_names = None, ()
    if labelled:
        labels, class_names = _encode_manifest_labels([label_cells[row - 1] for row in rows])
    extra = {"split": np.array([split_cells[row - 1] for row in rows], dtype=str)} if split_cells is not None else {}

    return _image_sample_set(
        "manifest", path, sample_ids, paths, checked, labels, class_names, skipped, max_pixels, extra
    )


def _image_sample_set(source, location, sample_ids, paths, checked, labels, class_names, skipped, max_pixels, columns):
    """Build the :class:`SampleSet` of an image folder or manifest, fingerprinted by file size and mtime."""
    fingerprint = fingerprint_of(
        "imagefolder" if source == "image folder" else source,
        sample_ids,
        np.array(checked.sizes, dtype=np.int64),
        np.array(checked.mtimes_ns, dtype=np.int64),
        labels,
        class_names,
        *([columns.get("split")] if source == "manifest" else []),
    )
    logger.info(
        "opened %s %s: %d images, %d classes, %d items skipped",
        source, location, len(sample_ids), len(class_names), len(skipped),
    )
    return SampleSet(
        name=str(location),
        sample_ids=sample_ids,
        labels=labels,
        class_names=class_names,
        reader=ImageFiles(tuple(paths.tolist()), max_pixels),
        fingerprint=fingerprint,
        paths=paths,
        skipped=tuple(skipped),
        columns=columns,
    )
