import re

import numpy as np
import pandas as pd
import pytest

from lsi_app.data.samples import ItemKind, SkippedItem, TextItems
from lsi_app.data.text import encode_text_labels, open_text_csv


def write_csv(path, content: str, encoding: str = "utf-8") -> None:
    path.write_bytes(content.encode(encoding))


def test_csv_with_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    write_csv(path, "text,label\ngreat film,pos\nawful,neg\n\"fine, I guess\",pos\n")

    samples = open_text_csv(path)

    assert isinstance(samples.reader, TextItems)
    assert samples.kind is ItemKind.TEXT
    assert samples.reader.load(2) == "fine, I guess"
    assert samples.class_names == ("neg", "pos")
    assert samples.labels.dtype == np.int64
    assert samples.labels.tolist() == [1, 0, 1]
    assert samples.sample_ids.tolist() == ["row-00001", "row-00002", "row-00003"]
    assert samples.name == str(path)
    assert samples.skipped == ()


def test_header_case_and_spaces_ignored(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(path, " Text , LABEL \nhello,a\nworld,b\n")

    samples = open_text_csv(path)

    assert samples.reader.texts == ("hello", "world")
    assert samples.class_names == ("a", "b")


def test_bom_and_non_ascii_round_trip(tmp_path):
    texts = ["naïve café", "日本語のテキスト", "emoji 🙂 and ß"]
    path = tmp_path / "bom.csv"
    write_csv(path, "text,label\n" + "".join(f"{text},x\n" for text in texts), encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    samples = open_text_csv(path)

    assert list(samples.reader.texts) == texts
    assert samples.class_names == ("x",)


def test_integer_labels_sort_numerically(tmp_path):
    path = tmp_path / "numbers.csv"
    write_csv(path, "text,label\na,10\nb,2\nc,1\nd,10\n")

    samples = open_text_csv(path)

    assert samples.class_names == ("1", "2", "10")
    assert samples.labels.tolist() == [2, 1, 0, 2]


def test_encode_text_labels_mixed_sorts_as_strings():
    codes, names = encode_text_labels(["10", "2", "b"])

    assert names == ("10", "2", "b")
    assert codes.tolist() == [0, 1, 2]


def test_empty_text_rows_skipped(tmp_path):
    path = tmp_path / "gaps.csv"
    write_csv(path, "text,label\nfirst,a\n,b\n   ,a\nlast,b\n")

    samples = open_text_csv(path)

    assert samples.reader.texts == ("first", "last")
    assert samples.sample_ids.tolist() == ["row-00001", "row-00004"]
    assert samples.skipped == (SkippedItem("row 2", "empty text"), SkippedItem("row 3", "empty text"))


def test_missing_label_row_skipped(tmp_path):
    path = tmp_path / "partial.csv"
    write_csv(path, "text,label\none,a\ntwo,\nthree,b\n")

    samples = open_text_csv(path)

    assert samples.reader.texts == ("one", "three")
    assert samples.labels.tolist() == [0, 1]
    assert samples.skipped == (SkippedItem("row 2", "missing label"),)


@pytest.mark.parametrize("content", ["text\nalpha\nbeta\n", "text,label\nalpha,\nbeta, \n"])
def test_no_labels_means_unlabelled(tmp_path, content):
    path = tmp_path / "plain.csv"
    write_csv(path, content)

    samples = open_text_csv(path)

    assert samples.labels is None
    assert samples.class_names == ()
    assert not samples.labelled
    assert len(samples) == 2
    assert samples.skipped == ()


def test_id_column_used_as_sample_ids(tmp_path):
    path = tmp_path / "ids.csv"
    write_csv(path, "id,text,label\nr-7,seven,a\nr-3,three,b\n")

    samples = open_text_csv(path)

    assert samples.sample_ids.tolist() == ["r-7", "r-3"]


def test_duplicate_id_raises(tmp_path):
    path = tmp_path / "dupes.csv"
    write_csv(path, "id,text\nx1,one\nx2,two\nx1,three\n")

    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*repeats id 'x1'"):
        open_text_csv(path)


def test_missing_text_column_names_columns(tmp_path):
    path = tmp_path / "wrong.csv"
    write_csv(path, "sentence,label\nhi,a\n")

    with pytest.raises(ValueError) as raised:
        open_text_csv(path)

    message = str(raised.value)
    assert str(path) in message
    assert "'sentence'" in message
    assert "'text,label'" in message


def test_latin1_file_asks_for_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    write_csv(path, "text,label\ncafé crème,a\n", encoding="latin-1")

    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} is not valid UTF-8.*save it as UTF-8"):
        open_text_csv(path)


def test_malformed_line_skipped(tmp_path):
    path = tmp_path / "ragged.csv"
    write_csv(path, "text,label\ngood,a\nbad,b,extra\nalso good,b\n")

    samples = open_text_csv(path)

    assert samples.reader.texts == ("good", "also good")
    assert samples.skipped == (SkippedItem("line 3", "malformed CSV line: expected 2 fields, saw 3"),)


def test_parquet_with_labels_and_missing_values(tmp_path):
    path = tmp_path / "texts.parquet"
    table = pd.DataFrame({"Text": ["α", None, "γ", "δ"], "label": [3, 1, None, 20]})
    table.to_parquet(path)

    samples = open_text_csv(path)

    assert samples.reader.texts == ("α", "δ")
    assert samples.class_names == ("3", "20")
    assert samples.labels.tolist() == [0, 1]
    assert samples.skipped == (SkippedItem("row 2", "empty text"), SkippedItem("row 3", "missing label"))


def test_fingerprint_follows_content(tmp_path):
    first = tmp_path / "a.csv"
    same = tmp_path / "b.csv"
    relabelled = tmp_path / "c.csv"
    write_csv(first, "text,label\nx,a\ny,b\n")
    write_csv(same, "text,label\nx,a\ny,b\n")
    write_csv(relabelled, "text,label\nx,b\ny,a\n")

    assert open_text_csv(first).fingerprint == open_text_csv(same).fingerprint
    assert open_text_csv(first).fingerprint != open_text_csv(relabelled).fingerprint


def test_only_empty_rows_raises(tmp_path):
    path = tmp_path / "blank.csv"
    write_csv(path, "text,label\n ,a\n")

    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} has no usable row"):
        open_text_csv(path)


@pytest.mark.parametrize("name, content", [("missing.csv", None), ("texts.txt", "text\nhi\n"), ("empty.csv", "")])
def test_unusable_file_raises(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        write_csv(path, content)

    with pytest.raises(ValueError, match=re.escape(str(path))):
        open_text_csv(path)
