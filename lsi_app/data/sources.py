"""Dataset source strings: parse what the user passes to ``--dataset`` and open it.

A source is either a name, a path whose type is detected, or an explicit
``kind:location`` form:

==============================  ===============================================
``digits``                      the built-in scikit-learn digits (default)
``DIR`` or ``folder:DIR``       an image folder, one sub-folder per class (a
                                folder of images without sub-folders is unlabelled)
``FILE.csv|.parquet``           a manifest (``path,label[,split]``) when it has a
                                ``path`` column, a text table (``text,label``) when
                                it has a ``text`` column, else embeddings
``manifest:FILE``               a manifest, explicitly
``text:FILE``                   a text table, explicitly
``FILE.npy|.npz``               embeddings (labels from ``--labels`` or the .npz)
``embeddings:FILE``             embeddings, explicitly
``torchvision:NAME:ROOT``       a torchvision dataset already on disk (cifar10,
                                cifar100, mnist, fashionmnist); ``NAME-test`` opens
                                the test split
==============================  ===============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from lsi_app.data.digits import load_digits_samples
from lsi_app.data.samples import SampleSet
from lsi_app.progress import ProgressCallback, ignore_progress

#: Names of built-in datasets.
BUILTIN_DATASETS = ("digits",)

#: Split suffixes accepted after a torchvision dataset name.
_TORCHVISION_SPLITS = {"-train": True, "-test": False}


class SourceKind(str, Enum):
    """Kind of a dataset source, which selects the function that opens it."""

    BUILTIN = "builtin"
    FOLDER = "folder"
    MANIFEST = "manifest"
    TEXT = "text"
    EMBEDDINGS = "embeddings"
    TORCHVISION = "torchvision"


@dataclass(frozen=True)
class DatasetSource:
    """A parsed dataset source.

    Attributes
    ----------
    kind : SourceKind
    location : str
        Built-in name, file or folder path, or torchvision root.
    dataset_name : str
        The torchvision dataset name without split suffix; "" for other kinds.
    train : bool
        Torchvision split: True for train, False for test.
    """

    kind: SourceKind
    location: str
    dataset_name: str = ""
    train: bool = True


def _table_columns(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        names = pq.read_schema(path).names
    else:
        names = list(pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns)
    return [str(name).strip().lower() for name in names]


def _detect_table(path: Path) -> SourceKind:
    try:
        columns = _table_columns(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the header of {path}: {error}") from None
    if "path" in columns:
        return SourceKind.MANIFEST
    if "text" in columns:
        return SourceKind.TEXT
    if path.suffix.lower() == ".parquet":
        return SourceKind.EMBEDDINGS
    raise ValueError(
        f"{path} has columns {columns}, so its kind is unknown: a manifest needs a 'path' column "
        "(path,label[,split]) and a text table a 'text' column (text,label)"
    )


def parse_dataset_source(source: str) -> DatasetSource:
    """Parse a ``--dataset`` value without opening the data; raise ValueError when it is invalid.

    Checks that named files and folders exist, so a typo fails before any work.
    """
    source = source.strip()
    if source in BUILTIN_DATASETS:
        return DatasetSource(SourceKind.BUILTIN, source)

    prefix, _, rest = source.partition(":")
    if prefix == SourceKind.TORCHVISION.value:
        name, _, root = rest.partition(":")
        if not name or not root:
            raise ValueError(
                f"invalid dataset source {source!r}; write torchvision:NAME:ROOT, e.g. torchvision:cifar10:/data"
            )
        train = True
        for suffix, is_train in _TORCHVISION_SPLITS.items():
            if name.lower().endswith(suffix):
                name, train = name[: -len(suffix)], is_train
        if not Path(root).is_dir():
            raise ValueError(f"torchvision root folder {root} not found; pass the folder that contains the dataset files")
        return DatasetSource(SourceKind.TORCHVISION, root, dataset_name=name, train=train)

    explicit = {kind.value: kind for kind in (SourceKind.FOLDER, SourceKind.MANIFEST, SourceKind.TEXT, SourceKind.EMBEDDINGS)}
    kind = explicit.get(prefix)
    location = rest if kind is not None else source
    path = Path(location).expanduser()
    if not path.exists():
        hint = f"; built-in datasets: {', '.join(BUILTIN_DATASETS)}" if kind is None and "/" not in location else ""
        raise ValueError(f"dataset source {location!r} not found: no such file or folder{hint}")
    if kind is None:
        kind = _detect_kind(path)
    if kind is SourceKind.FOLDER and not path.is_dir():
        raise ValueError(f"dataset source {path} is a file; an image folder source must be a folder")
    if kind is not SourceKind.FOLDER and not path.is_file():
        raise ValueError(f"dataset source {path} is a folder; a {kind.value} source must be a file")
    return DatasetSource(kind, str(path))


def _detect_kind(path: Path) -> SourceKind:
    if path.is_dir():
        return SourceKind.FOLDER
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return SourceKind.EMBEDDINGS
    if suffix in (".csv", ".parquet"):
        return _detect_table(path)
    raise ValueError(
        f"dataset source {path} has an unsupported type {suffix or '(none)'}; pass a folder of images, "
        "a .csv or .parquet manifest or text table, or .npy/.npz/.parquet embeddings"
    )


def open_dataset(
    source: str,
    *,
    labels: str | Path | None = None,
    progress: ProgressCallback = ignore_progress,
) -> SampleSet:
    """Open a dataset source (see the module docstring) as a :class:`SampleSet`.

    Parameters
    ----------
    source : str
        The ``--dataset`` value.
    labels : str or Path, optional
        Labels file for an embeddings source (.npy, .npz or .parquet).
    progress : callable, optional
        Receives the scanned fraction while image files are checked.

    Raises
    ------
    ValueError
        When the source is invalid or contains no usable sample; the message
        names the value or file and the fix. Unusable items are not errors:
        they are listed in ``SampleSet.skipped``.
    """
    parsed = parse_dataset_source(source)
    if labels is not None and parsed.kind is not SourceKind.EMBEDDINGS:
        raise ValueError(f"--labels applies to embeddings sources only, but {source!r} is a {parsed.kind.value} source")
    location = Path(parsed.location)
    if parsed.kind is SourceKind.BUILTIN:
        return load_digits_samples()
    if parsed.kind is SourceKind.FOLDER:
        from lsi_app.data.images import open_image_folder

        return open_image_folder(location, progress=progress)
    if parsed.kind is SourceKind.MANIFEST:
        from lsi_app.data.images import open_manifest

        return open_manifest(location, progress=progress)
    if parsed.kind is SourceKind.TEXT:
        from lsi_app.data.text import open_text_csv

        return open_text_csv(location)
    if parsed.kind is SourceKind.EMBEDDINGS:
        from lsi_app.data.embeddings import open_embeddings

        return open_embeddings(location, Path(labels) if labels is not None else None)
    from lsi_app.data.torchvision_sets import open_torchvision_dataset

    return open_torchvision_dataset(parsed.dataset_name, location, train=parsed.train)
