"""Dataset source: a table of texts with optional labels, as CSV or Parquet.

The table needs a ``text`` column and may have ``label`` and ``id``
columns. Header names are matched case-insensitively after stripping
spaces, so ``Text`` and `` label`` also work. A CSV file must be UTF-8,
with or without a byte order mark, because that is what spreadsheet
programs write under "CSV UTF-8".

Rows are numbered from 1, counting data rows only (the header is not a
row), in the skipped-item list and in the default ids ``row-00001``, ....
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lsi_app.data.arrays import encode_labels
from lsi_app.data.samples import SampleSet, SkippedItem, TextItems, fingerprint_of

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".csv", ".parquet")

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
ID_COLUMN = "id"

#: Digits in default ids such as ``row-00001``; wider numbers still work, they only sort less neatly.
ROW_ID_DIGITS = 5

#: Labels matching this pattern count as integers, so that "2" sorts before "10".
_INTEGER_PATTERN = re.compile(r"[+-]?\d+")

#: pandas reports each malformed CSV line this way when ``on_bad_lines="warn"`` (pandas 3.1).
_BAD_LINE_PATTERN = re.compile(r"Skipping line (\d+): (.+)")


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _cell_text(value) -> str:
    """Return a text cell as a string; missing cells (None, NaN) become ``""``."""
    return "" if _is_missing(value) else str(value)


def _label_text(value) -> str:
    """Return a label cell as stripped text; missing cells become ``""``.

    Integral floats print without a decimal point, because Parquet stores an
    integer column that has missing values as float (``3.0`` becomes ``"3"``).
    """
    if _is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_csv(path: Path) -> tuple[pd.DataFrame, list[SkippedItem]]:
    """Read every cell as text; malformed lines are skipped and returned as SkippedItems."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False, on_bad_lines="warn")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"text file {path} is not valid UTF-8 ({error}); save it as UTF-8, for example 'CSV UTF-8' in a spreadsheet"
        ) from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"text file {path} is empty; write a header line '{TEXT_COLUMN},{LABEL_COLUMN}' and one row per text") from error
    except pd.errors.ParserError as error:
        raise ValueError(f"text file {path} could not be parsed as CSV ({error}); check its quoting near that line") from error

    malformed = []
    for warning in caught:
        matches = _BAD_LINE_PATTERN.findall(str(warning.message))
        if not matches:
            logger.warning("reading %s: %s", path, warning.message)
        for line, reason in matches:
            malformed.append(SkippedItem(f"line {line}", f"malformed CSV line: {reason.strip()}"))
    return table, malformed


def _read_table(path: Path) -> tuple[pd.DataFrame, list[SkippedItem]]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"text file {path} not found; pass a .csv or .parquet file with a '{TEXT_COLUMN}' column")
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise ValueError(f"text file {path} has an unsupported type; use one of {', '.join(TEXT_SUFFIXES)}")
    if suffix == ".csv":
        return _read_csv(path)
    try:
        return pd.read_parquet(path), []
    except (OSError, ValueError) as error:
        # pyarrow's ArrowInvalid, raised for a damaged file, is a ValueError.
        raise ValueError(f"text file {path} could not be read as Parquet ({error}); write it again") from error


def _find_columns(table: pd.DataFrame, path: Path) -> dict[str, object]:
    """Map ``text``, ``label`` and ``id`` to the table's own column names, where present."""
    by_name: dict[str, object] = {}
    for column in table.columns:
        key = str(column).strip().lower()
        if key in by_name:
            raise ValueError(
                f"text file {path} has two columns named {key!r} ({by_name[key]!r} and {column!r}); rename or remove one"
            )
        by_name[key] = column
    if TEXT_COLUMN not in by_name:
        raise ValueError(
            f"text file {path} has no '{TEXT_COLUMN}' column (columns: {[str(c) for c in table.columns]}); "
            f"expected a header such as '{TEXT_COLUMN},{LABEL_COLUMN}'"
        )
    return {role: by_name[role] for role in (TEXT_COLUMN, LABEL_COLUMN, ID_COLUMN) if role in by_name}


def encode_text_labels(labels: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map label strings to codes ``0..C-1`` with :func:`encode_labels`.

    When every label is an integer written as text, classes sort numerically
    ("2" before "10") and equal integers merge ("03" and "3" are class "3").
    Otherwise classes sort as strings.
    """
    if all(_INTEGER_PATTERN.fullmatch(label) for label in labels):
        return encode_labels(np.array([int(label) for label in labels], dtype=np.int64))
    return encode_labels(np.array(labels, dtype=object))


def _check_unique_ids(ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    for sample_id in ids:
        if sample_id in seen:
            raise ValueError(f"text file {path} repeats id {sample_id!r} in its '{ID_COLUMN}' column; make the ids unique or remove the column")
        if sample_id:
            seen.add(sample_id)


def open_text_csv(path: Path) -> SampleSet:
    """Open a CSV or Parquet table of texts as a :class:`SampleSet` of :class:`TextItems`.

    Parameters
    ----------
    path : Path
        A ``.csv`` (UTF-8, with or without a byte order mark) or ``.parquet``
        file with a ``text`` column and optional ``label`` and ``id`` columns.

    Returns
    -------
    SampleSet
        Labels are encoded with :func:`encode_text_labels`, or None when the
        table has no label column or every label is empty. Ids come from the
        ``id`` column, else ``row-00001``, ... by data row. These rows are
        skipped and listed in ``skipped``: empty or whitespace-only text
        ("empty text"), an empty label while other rows have one ("missing
        label"), an empty id ("missing id"), and CSV lines with the wrong
        number of fields.

    Raises
    ------
    ValueError
        If the file is missing, not UTF-8, has no ``text`` column, repeats an
        id, or has no usable row. The message names the file.
    """
    path = Path(path)
    table, skipped = _read_table(path)
    columns = _find_columns(table, path)

    texts = [_cell_text(value) for value in table[columns[TEXT_COLUMN]].to_numpy()]
    labels = [_label_text(value) for value in table[columns[LABEL_COLUMN]].to_numpy()] if LABEL_COLUMN in columns else []
    labelled = any(labels)
    ids = [_cell_text(value).strip() for value in table[columns[ID_COLUMN]].to_numpy()] if ID_COLUMN in columns else []
    if ids:
        _check_unique_ids(ids, path)

    kept_rows: list[int] = []
    for position, text in enumerate(texts):
        # NOTE: pandas drops malformed CSV lines before numbering, so after one the row numbers
        # and default ids run one behind the file's data rows (the line itself is listed by line number).
        row = f"row {position + 1}"
        if not text.strip():
            skipped.append(SkippedItem(row, "empty text"))
        elif labelled and not labels[position]:
            skipped.append(SkippedItem(row, "missing label"))
        elif ids and not ids[position]:
            skipped.append(SkippedItem(row, "missing id"))
        else:
            kept_rows.append(position)
    if not kept_rows:
        raise ValueError(
            f"text file {path} has no usable row: {len(texts)} rows, {len(skipped)} skipped "
            f"(first reason: {skipped[0].reason if skipped else 'no data rows'}); add rows with text"
        )

    kept_texts = tuple(texts[i] for i in kept_rows)
    if ids:
        sample_ids = np.array([ids[i] for i in kept_rows])
    else:
        sample_ids = np.array([f"row-{i + 1:0{ROW_ID_DIGITS}d}" for i in kept_rows])
    codes, class_names = None, ()
    if labelled:
        codes, class_names = encode_text_labels([labels[i] for i in kept_rows])

    logger.info("opened %s: %d texts, %d skipped, %d classes", path, len(kept_rows), len(skipped), len(class_names))
    return SampleSet(
        name=str(path),
        sample_ids=sample_ids,
        labels=codes,
        class_names=class_names,
        reader=TextItems(kept_texts),
        fingerprint=fingerprint_of("text", np.array(kept_texts, dtype=object), codes, class_names, sample_ids),
        skipped=tuple(skipped),
        # The score table carries the text, so that results read without the source file.
        columns={"text": np.array(kept_texts, dtype=object)},
    )
