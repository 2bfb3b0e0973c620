"""Score tables written as a folder of Parquet files, for runs too large for one file.

The folder contains ``part-00000.parquet``, ``part-00001.parquet``, ... in
sample order, each with at most ``rows_per_file`` rows. Readers that take a
folder (pyarrow datasets, Spark, DuckDB) read it as one table, and
:func:`read_parquet_partitioned` reads it back in order.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from lsi_app.store.workspace import write_atomically

logger = logging.getLogger(__name__)

#: Rows per part file. One million rows of a score table with a path-like
#: sample id and seven numeric columns take about 50 MB of Parquet (measured
#: with random values, which compress least). Query engines read files of
#: that size in parallel efficiently, and one reader keeps one in memory easily.
DEFAULT_ROWS_PER_FILE = 1_000_000

#: Name of the ``index``-th part file. Five digits keep name order equal to
#: sample order for up to 100,000 parts.
PART_NAME = "part-{index:05d}.parquet"
PART_PATTERN = re.compile(r"part-(\d{5,})\.parquet")


def write_parquet_partitioned(
    table: pd.DataFrame,
    directory: Path | str,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``table`` as numbered Parquet files of at most ``rows_per_file`` rows, in row order.

    Each part keeps the table's ``attrs`` (pandas stores them in the Parquet
    metadata) and is written atomically. An empty table gives one empty
    part, so the folder still records the columns.

    Parameters
    ----------
    table : DataFrame
    directory : Path or str
        Created if missing.
    rows_per_file : int, default=DEFAULT_ROWS_PER_FILE
    overwrite : bool, default=False
        Replace the part files of an earlier write. Only part files are
        removed; a folder that contains any other file is never changed.

    Returns
    -------
    list of Path
        The part files, in row order.

    Raises
    ------
    ValueError
        When ``rows_per_file`` is below 1.
    FileExistsError
        When ``directory`` is not empty and ``overwrite`` is False, or it
        contains files other than part files.
    """
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    directory = Path(directory)
    _clear_parts(directory, overwrite)
    directory.mkdir(parents=True, exist_ok=True)

    paths = []
    starts = range(0, max(len(table), 1), rows_per_file)
    for index, start in enumerate(starts):
        part = table.iloc[start : start + rows_per_file]
        part.attrs = dict(table.attrs)
        path = directory / PART_NAME.format(index=index)
        write_atomically(path, lambda stream, part=part: part.to_parquet(stream, index=False))
        paths.append(path)
    logger.info("wrote %d rows to %d Parquet files in %s", len(table), len(paths), directory)
    return paths


def read_parquet_partitioned(directory: Path | str) -> pd.DataFrame:
    """Read a folder written by :func:`write_parquet_partitioned` back into one table, in row order.

    Returns
    -------
    DataFrame
        With a fresh ``RangeIndex`` and the ``attrs`` of the first part.

    Raises
    ------
    FileNotFoundError
        When ``directory`` contains no part file.
    """
    paths = _part_files(Path(directory))
    if not paths:
        raise FileNotFoundError(f"no {PART_NAME.format(index=0)} (or later part) in {directory}; write it first")
    parts = [pd.read_parquet(path) for path in paths]
    table = pd.concat(parts, ignore_index=True)
    table.attrs = dict(parts[0].attrs)
    return table


def _part_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    parts = [path for path in directory.iterdir() if PART_PATTERN.fullmatch(path.name)]
    return sorted(parts, key=lambda path: int(PART_PATTERN.fullmatch(path.name).group(1)))


def _clear_parts(directory: Path, overwrite: bool) -> None:
    if not directory.exists():
        return
    if not directory.is_dir():
        raise FileExistsError(f"{directory} is a file; pass a folder path for the Parquet parts")
    entries = list(directory.iterdir())
    if not entries:
        return
    others = [entry.name for entry in entries if not PART_PATTERN.fullmatch(entry.name)]
    if others:
        raise FileExistsError(
            f"{directory} contains files other than Parquet parts ({', '.join(sorted(others)[:5])}); "
            "choose an empty or new folder"
        )
    if not overwrite:
        raise FileExistsError(
            f"{directory} already contains {len(entries)} Parquet parts; pass overwrite=True to replace them "
            "or choose a new folder"
        )
    for entry in entries:
        entry.unlink()
