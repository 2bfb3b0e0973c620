"""Export of the curated dataset: subset selection and CSV, Parquet, JSON, ImageFolder and zip writers."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path, PurePath, PurePosixPath
from typing import BinaryIO

import numpy as np
import pandas as pd

from lsi_app.analysis.gallery import merge_curation
from lsi_app.data.samples import SkippedItem
from lsi_app.progress import ProgressCallback, ignore_progress

logger = logging.getLogger(__name__)

#: Largest zip that :func:`build_zip` builds. The archive is held in memory
#: and then handed to the browser as one download, so larger exports go to
#: a folder with the ImageFolder format.
MAX_ZIP_BYTES = 2 * 2**30

#: Maximum length of a written file or folder name, in UTF-8 bytes. ext4
#: and most other filesystems allow 255 bytes, and the rest leaves room for a
#: de-duplication suffix.
MAX_NAME_BYTES = 200

#: Characters replaced by "_" in written names: path separators, control
#: characters and the characters that Windows forbids, so that the folder
#: and the zip also unpack on Windows.
UNSAFE_NAME_CHARACTERS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')

#: Progress reports while copying files, so a million files cost 100 reports.
PROGRESS_REPORTS = 100

SCORES_FILE = "scores.csv"
SUBSET_CSV_FILE = "subset.csv"
SUBSET_PARQUET_FILE = "subset.parquet"
MANIFEST_FILE = "manifest.json"
LABEL_MAPPING_FILE = "label_mapping.json"
HISTORY_FILE = "flag_history.csv"
SETTINGS_FILE = "settings.json"
SKIPPED_FILE = "skipped_files.csv"
ZIP_FILE = "export.zip"
#: Folder of the copied files inside the zip.
ZIP_IMAGES_FOLDER = "images"


class ExportFormat(str, Enum):
    """File format of an export."""

    CSV = "csv"
    PARQUET = "parquet"
    JSON = "json"
    IMAGEFOLDER = "imagefolder"
    ZIP = "zip"


def _validate_count(name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0 or None, got {value!r}")


def _validate_budget(value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ValueError(f"lsi_budget must be a finite number >= 0 or None, got {value!r}")
    if value < 0:
        raise ValueError(f"lsi_budget must be >= 0 nats, got {value}")


def class_names_of(table: pd.DataFrame) -> list[str]:
    """Return the class names in code order, from ``attrs["label_mapping"]`` or else from the rows.

    Without a label mapping only classes that occur in the table are known.
    """
    mapping = table.attrs.get("label_mapping")
    if mapping:
        return [str(name) for _, name in sorted(mapping.items(), key=lambda item: int(item[0]))]
    pairs = table[["label", "class_name"]].drop_duplicates().sort_values("label")
    return pairs["class_name"].astype(str).tolist()


def _apply_relabels(merged: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    codes: dict[str, int] = {}
    for code, name in enumerate(class_names):
        codes.setdefault(name, code)
    relabel = merged["relabel"].astype(object).where(merged["relabel"].notna(), "").astype(str).str.strip()
    relabelled = (relabel != "").to_numpy()
    unknown = relabelled & ~relabel.isin(list(codes)).to_numpy()
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise ValueError(
            f"sample {merged['sample_id'].iloc[row]!r} is relabelled to {relabel.iloc[row]!r}, which is not a "
            f"known class; change the relabel to one of {class_names}"
        )
    given = merged["class_name"].astype(str).to_numpy(dtype=object)
    final = np.where(relabelled, relabel.to_numpy(dtype=object), given)
    merged["final_label"] = final
    merged["final_code"] = pd.Series(final, index=merged.index).map(codes).astype(np.int64)
    return merged


def _per_class_extremes(subset: pd.DataFrame, top_k: int | None, bottom_k: int | None) -> np.ndarray:
    # Rank "first" breaks ties by table order; NaN LSI gets no rank, so it is never kept.
    groups = subset.groupby("final_label", sort=False)["lsi"]
    keep = np.zeros(len(subset), dtype=bool)
    if top_k is not None:
        keep |= (groups.rank(method="first", ascending=False) <= top_k).to_numpy()
    if bottom_k is not None:
        keep |= (groups.rank(method="first", ascending=True) <= bottom_k).to_numpy()
    return keep


def _within_budget(lsi: np.ndarray, budget: float) -> np.ndarray:
    """Mark the highest-LSI rows kept while the LSI kept so far is below ``budget``."""
    candidates = np.flatnonzero(np.isfinite(lsi))
    order = candidates[np.argsort(-lsi[candidates], kind="stable")]
    kept_before = np.concatenate([[0.0], np.cumsum(lsi[order])[:-1]])
    # Once the running total reaches the budget no later row is kept, even
    # if negative LSI values would bring the total back below it.
    stops = np.flatnonzero(kept_before >= budget)
    n_kept = int(stops[0]) if stops.size else len(order)
    keep = np.zeros(len(lsi), dtype=bool)
    keep[order[:n_kept]] = True
    return keep


def curated_subset(
    table: pd.DataFrame,
    state: pd.DataFrame | None,
    *,
    top_k: int | None = None,
    bottom_k: int | None = None,
    lsi_budget: float | None = None,
) -> pd.DataFrame:
    """Select the rows to export: rows kept by curation, with relabels applied, optionally cut by LSI.

    The steps run in this order:

    1. Merge the curation state (:func:`lsi_app.analysis.gallery.merge_curation`)
       and drop flagged rows and rows reviewed as mislabeled without a relabel.
    2. ``final_label`` is the relabel where one is set, else ``class_name``;
       ``final_code`` is its position in the class list.
    3. With ``top_k`` and/or ``bottom_k``, keep per final class the
       ``top_k`` highest-LSI and the ``bottom_k`` lowest-LSI rows (the
       union when both are given). Ties keep table order.
    4. With ``lsi_budget``, go through the remaining rows from the highest
       LSI down and keep each row while the LSI kept before it is below the
       budget. The row that reaches the budget is kept, so the kept total
       is at least the budget unless every row fits. A budget of 0 keeps no
       rows.

    Rows whose LSI is NaN are dropped by steps 3 and 4.

    Parameters
    ----------
    table : DataFrame
        Score table from :func:`lsi_app.analysis.tables.build_sample_table`.
        The class list comes from ``attrs["label_mapping"]``.
    state : DataFrame or None
        Curation state; None or empty exports every row with its label.
    top_k, bottom_k : int or None, default=None
        Rows per final class, >= 0.
    lsi_budget : float or None, default=None
        Total LSI to keep, in nats, >= 0.

    Returns
    -------
    DataFrame
        The kept rows in table order, with the curation columns plus
        ``final_label`` (str) and ``final_code`` (int).

    Raises
    ------
    ValueError
        If a count or the budget is negative, or a kept row is relabelled
        to a name that is not one of the class names.
    """
    _validate_count("top_k", top_k)
    _validate_count("bottom_k", bottom_k)
    _validate_budget(lsi_budget)

    merged = merge_curation(table, state)
    mislabeled = (merged["review"] == "mislabeled").to_numpy() & merged["relabel"].isna().to_numpy()
    excluded = merged["flagged"].to_numpy() | mislabeled
    subset = _apply_relabels(merged.loc[~excluded].copy(), class_names_of(table))
    if top_k is not None or bottom_k is not None:
        subset = subset.loc[_per_class_extremes(subset, top_k, bottom_k)]
    if lsi_budget is not None:
        subset = subset.loc[_within_budget(subset["lsi"].to_numpy(dtype=np.float64), float(lsi_budget))]
    return subset


def _jsonable(value):
    """Convert nested settings and table values into JSON types, with NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return [_jsonable(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Enum):
        value = value.value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _json_text(value) -> str:
    return json.dumps(_jsonable(value), ensure_ascii=False, indent=2, allow_nan=False)


def _csv_text(frame: pd.DataFrame | None) -> str:
    return (frame if frame is not None else pd.DataFrame()).to_csv(index=False)


def _safe_name(name: str) -> str:
    """Make ``name`` a valid single file or folder name: no separators, no leading dots, not empty."""
    cleaned = UNSAFE_NAME_CHARACTERS.sub("_", str(name)).strip().lstrip(".")
    # Windows drops trailing dots and spaces, which would merge names.
    cleaned = cleaned.rstrip(". ")
    cleaned = cleaned.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore")
    return cleaned or "_"


def _unique_name(name: str, used: set[str]) -> str:
    """Return ``name``, or ``stem_2.ext``, ``stem_3.ext`` ... when it is taken; case-insensitive."""
    candidate, number = name, 1
    path = PurePath(name)
    while candidate.casefold() in used:
        number += 1
        candidate = f"{path.stem}_{number}{path.suffix}"
    used.add(candidate.casefold())
    return candidate


@dataclass(frozen=True)
class _PlannedFile:
    position: int
    source: Path
    relative: PurePosixPath


def _folder_labels(subset: pd.DataFrame) -> pd.Series:
    if "final_label" in subset.columns:
        return subset["final_label"].astype(str)
    return subset["class_name"].astype(str)


def _plan_files(subset: pd.DataFrame, prefix: PurePosixPath) -> tuple[list[_PlannedFile], list[SkippedItem]]:
    """Assign each row's file a unique target ``prefix/<class folder>/<file name>``.

    Rows without a path or whose file does not exist are skipped.
    """
    # Class folders must not take the names of the files written beside them.
    used_folders = {
        name.casefold() for name in (SCORES_FILE, LABEL_MAPPING_FILE, HISTORY_FILE, SETTINGS_FILE, SKIPPED_FILE)
    }
    folders: dict[str, str] = {}
    used_names: dict[str, set[str]] = {}
    planned, skipped = [], []
    for position, (label, raw_path, sample_id) in enumerate(
        zip(_folder_labels(subset), subset["path"], subset["sample_id"].astype(str))
    ):
        if raw_path is None or (isinstance(raw_path, float) and math.isnan(raw_path)) or str(raw_path) == "":
            skipped.append(SkippedItem(sample_id, "no file path"))
            continue
        source = Path(str(raw_path))
        if not source.is_file():
            skipped.append(SkippedItem(str(source), "file not found"))
            continue
        if label not in folders:
            folders[label] = _unique_name(_safe_name(label), used_folders)
            used_names[folders[label]] = set()
        name = _unique_name(_safe_name(source.name), used_names[folders[label]])
        planned.append(_PlannedFile(position, source, prefix / folders[label] / name))
    return planned, skipped


def _scores_with_files(subset: pd.DataFrame, planned: list[_PlannedFile]) -> pd.DataFrame:
    scores = subset.copy()
    files = np.full(len(subset), "", dtype=object)
    for item in planned:
        files[item.position] = item.relative.as_posix()
    scores["file"] = files
    return scores


def _skipped_csv(skipped: list[SkippedItem]) -> str:
    return pd.DataFrame([(item.item, item.reason) for item in skipped], columns=["item", "reason"]).to_csv(index=False)


def _prepare_destination(destination: Path) -> Path:
    destination = Path(destination)
    if destination.exists():
        if not destination.is_dir():
            raise ValueError(f"export destination {destination} is a file; choose an empty or new folder")
        if any(destination.iterdir()):
            raise ValueError(f"export destination {destination} is not empty; choose an empty or new folder")
    destination.mkdir(parents=True, exist_ok=True)
    return destination


def _write_text(path: Path, text: str, written: list[Path]) -> None:
    path.write_text(text, encoding="utf-8")
    written.append(path)


def _write_metadata(destination: Path, label_mapping, history, settings, written: list[Path]) -> None:
    _write_text(destination / LABEL_MAPPING_FILE, _json_text(label_mapping), written)
    _write_text(destination / HISTORY_FILE, _csv_text(history), written)
    _write_text(destination / SETTINGS_FILE, _json_text(settings), written)


def _progress_step(n_files: int) -> int:
    return max(1, n_files // PROGRESS_REPORTS)


def _copy_files(
    planned: list[_PlannedFile], destination: Path, progress: ProgressCallback
) -> tuple[list[_PlannedFile], list[Path], list[SkippedItem]]:
    copied, written, skipped = [], [], []
    step = _progress_step(len(planned))
    for number, item in enumerate(planned, start=1):
        target = destination / item.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Mode "xb" fails rather than overwrite an existing file.
            with item.source.open("rb") as source, target.open("xb") as copy:
                shutil.copyfileobj(source, copy)
        except OSError as error:
            logger.warning("could not copy %s to %s: %s", item.source, target, error)
            skipped.append(SkippedItem(str(item.source), f"copy failed: {error}"))
        else:
            copied.append(item)
            written.append(target)
        if number % step == 0 or number == len(planned):
            progress(number / len(planned), f"Copied {number} of {len(planned)} files")
    return copied, written, skipped


def _write_image_folder(subset, destination, label_mapping, history, settings, progress) -> list[Path]:
    if "path" not in subset.columns:
        raise ValueError(
            "the ImageFolder export copies each sample's file, but the table has no 'path' column; "
            "use a folder or file-list source, or export CSV, Parquet or JSON instead"
        )
    planned, skipped = _plan_files(subset, PurePosixPath())
    copied, written, copy_skipped = _copy_files(planned, destination, progress)
    skipped += copy_skipped
    _write_text(destination / SCORES_FILE, _scores_with_files(subset, copied).to_csv(index=False), written)
    _write_metadata(destination, label_mapping, history, settings, written)
    if skipped:
        logger.warning("the ImageFolder export skipped %d of %d files; see %s", len(skipped), len(subset), SKIPPED_FILE)
        _write_text(destination / SKIPPED_FILE, _skipped_csv(skipped), written)
    return written


def _write_zip(
    target: BinaryIO,
    subset: pd.DataFrame,
    planned: list[_PlannedFile],
    skipped: list[SkippedItem],
    texts: dict[str, str],
    progress: ProgressCallback,
) -> None:
    copied = []
    step = _progress_step(len(planned))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, item in enumerate(planned, start=1):
            try:
                # Images are compressed already; storing them saves time and loses nothing.
                archive.write(item.source, item.relative.as_posix(), compress_type=zipfile.ZIP_STORED)
            except OSError as error:
                logger.warning("could not add %s to the zip: %s", item.source, error)
                skipped.append(SkippedItem(str(item.source), f"read failed: {error}"))
            else:
                copied.append(item)
            if number % step == 0 or number == len(planned):
                progress(number / len(planned), f"Zipped {number} of {len(planned)} files")
        archive.writestr(SCORES_FILE, _scores_with_files(subset, copied).to_csv(index=False))
        for name, text in texts.items():
            archive.writestr(name, text)
        if skipped:
            logger.warning("the zip export skipped %d files; see %s", len(skipped), SKIPPED_FILE)
            archive.writestr(SKIPPED_FILE, _skipped_csv(skipped))


def _zip_parts(subset, label_mapping, history, settings, include_files):
    texts = {
        LABEL_MAPPING_FILE: _json_text(label_mapping),
        HISTORY_FILE: _csv_text(history),
        SETTINGS_FILE: _json_text(settings),
    }
    if include_files and "path" in subset.columns:
        planned, skipped = _plan_files(subset, PurePosixPath(ZIP_IMAGES_FOLDER))
    else:
        if include_files:
            logger.info("the table has no 'path' column, so the zip contains no files")
        planned, skipped = [], []
    return texts, planned, skipped


def build_zip(
    subset: pd.DataFrame,
    *,
    label_mapping: Mapping,
    history: pd.DataFrame | None,
    settings: Mapping,
    include_files: bool,
    progress: ProgressCallback = ignore_progress,
) -> bytes:
    """Build the export as an in-memory zip archive.

    The archive contains ``scores.csv`` (the subset plus a ``file`` column
    with each copied file's path in the archive, "" where none),
    ``label_mapping.json``, ``flag_history.csv``, ``settings.json`` and,
    with ``include_files`` and a ``path`` column, each sample's file under
    ``images/<final label>/<file name>``. Missing or unreadable files are
    skipped and listed in ``skipped_files.csv``.

    Raises
    ------
    ValueError
        If the estimated archive size (text plus file sizes) exceeds
        :data:`MAX_ZIP_BYTES`.
    """
    texts, planned, skipped = _zip_parts(subset, label_mapping, history, settings, include_files)
    estimate = sum(len(text.encode("utf-8")) for text in texts.values())
    # scores.csv is written last, with the file column; the subset without it is a close estimate.
    estimate += len(subset.to_csv(index=False).encode("utf-8"))
    estimate += sum(item.source.stat().st_size for item in planned)
    if estimate > MAX_ZIP_BYTES:
        raise ValueError(
            f"the zip would be about {estimate / 2**30:.1f} GiB, over the {MAX_ZIP_BYTES / 2**30:.0f} GiB "
            "that a download can hold in memory; use the ImageFolder export to write the files to a folder"
        )
    buffer = io.BytesIO()
    _write_zip(buffer, subset, planned, skipped, texts, progress)
    return buffer.getvalue()


def write_export(
    subset: pd.DataFrame,
    fmt: ExportFormat | str,
    destination: Path,
    *,
    label_mapping: Mapping,
    history: pd.DataFrame | None,
    settings: Mapping,
    progress: ProgressCallback = ignore_progress,
) -> list[Path]:
    """Write the export into the folder ``destination``.

    Files per format (JSON files are UTF-8, with NaN as null):

    - CSV: ``subset.csv``, ``label_mapping.json``, ``flag_history.csv``,
      ``settings.json``.
    - PARQUET: ``subset.parquet``, whose ``attrs`` (stored in the Parquet
      metadata by pandas) hold ``label_mapping`` and ``settings``, plus
      ``flag_history.csv``.
    - JSON: ``manifest.json`` with ``label_mapping``, ``settings``,
      ``samples`` (every column of each row) and ``flag_history``.
    - IMAGEFOLDER: each sample's file copied to
      ``<final label>/<file name>``, plus ``scores.csv`` (with a ``file``
      column), ``label_mapping.json``, ``flag_history.csv`` and
      ``settings.json``. Names are made filesystem-safe, and repeated names
      get a ``_2``, ``_3`` ... suffix, so no file is overwritten. Missing
      or unreadable files are skipped and listed in ``skipped_files.csv``.
    - ZIP: ``export.zip``, the archive of :func:`build_zip` with the files,
      written to disk so no size limit applies.

    Parameters
    ----------
    subset : DataFrame
        Rows to export, usually from :func:`curated_subset`.
    fmt : ExportFormat or str
    destination : Path
        Folder to create, or an existing empty folder.
    label_mapping : mapping
        Class code, as text, to class name.
    history : DataFrame or None
        Flag history of the curation store.
    settings : mapping
        Settings of the run and of the export, for reproducibility.
    progress : callable, default=ignore_progress
        Receives the fraction of files copied (IMAGEFOLDER and ZIP).

    Returns
    -------
    list of Path
        Every file written.

    Raises
    ------
    ValueError
        If ``fmt`` is unknown, ``destination`` is a file or a non-empty
        folder, or IMAGEFOLDER is requested without a ``path`` column.
    """
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        choices = [item.value for item in ExportFormat]
        raise ValueError(f"unknown export format {fmt!r}; choose one of {choices}") from None
    destination = _prepare_destination(destination)
    written: list[Path] = []

    if fmt is ExportFormat.CSV:
        _write_text(destination / SUBSET_CSV_FILE, subset.to_csv(index=False), written)
        _write_metadata(destination, label_mapping, history, settings, written)
    elif fmt is ExportFormat.PARQUET:
        frame = subset.copy()
        frame.attrs = _jsonable({**subset.attrs, "label_mapping": label_mapping, "settings": settings})
        frame.to_parquet(destination / SUBSET_PARQUET_FILE, index=False)
        written.append(destination / SUBSET_PARQUET_FILE)
        _write_text(destination / HISTORY_FILE, _csv_text(history), written)
    elif fmt is ExportFormat.JSON:
        manifest = {
            "label_mapping": label_mapping,
            "settings": settings,
            "samples": subset.to_dict(orient="records"),
            "flag_history": [] if history is None else history.to_dict(orient="records"),
        }
        _write_text(destination / MANIFEST_FILE, _json_text(manifest), written)
    elif fmt is ExportFormat.IMAGEFOLDER:
        written = _write_image_folder(subset, destination, label_mapping, history, settings, progress)
    else:
        texts, planned, skipped = _zip_parts(subset, label_mapping, history, settings, include_files=True)
        with (destination / ZIP_FILE).open("xb") as target:
            _write_zip(target, subset, planned, skipped, texts, progress)
        written.append(destination / ZIP_FILE)
    logger.info("exported %d samples as %s to %s", len(subset), fmt.value, destination)
    return written
