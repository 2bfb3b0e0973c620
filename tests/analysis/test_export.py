import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lsi_app.analysis import export
from lsi_app.analysis.export import ExportFormat, build_zip, curated_subset, write_export

LABEL_MAPPING = {"0": "cat", "1": "dög", "2": "a/b"}
SETTINGS = {"dataset": "toy", "prior_precision": np.float64(1.5), "seed": np.int64(3), "missing": float("nan")}


def make_table(paths: list[str] | None = None) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "index": range(8),
            "sample_id": [f"s{i}" for i in range(8)],
            "label": [0, 0, 0, 1, 1, 1, 2, 2],
            "class_name": ["cat", "cat", "cat", "dög", "dög", "dög", "a/b", "a/b"],
            "lsi": [5.0, 1.0, 3.0, 4.0, 2.0, np.nan, 0.5, 6.0],
            "loss": [0.1] * 8,
            "predicted": [0, 1, 0, 1, 1, 1, 2, 0],
            "mislabel_score": [0.5, 0.1, 0.3, 0.4, 0.2, np.nan, 0.05, 0.6],
            "predicted_name": ["cat", "dög", "cat", "dög", "dög", "dög", "a/b", "cat"],
        }
    )
    if paths is not None:
        table.insert(2, "path", paths)
    table.attrs["label_mapping"] = dict(LABEL_MAPPING)
    return table


def make_state() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["s1", "s4", "s7"],
            "flagged": [True, False, False],
            "flag_reason": ["blurry", None, None],
            "relabel": [None, "cat", None],
            "note": [None, "ears", None],
            "review": [None, "mislabeled", None],
        }
    )


def make_history() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["s1", "s4"],
            "action": ["flag", "relabel"],
            "value": ["blurry", "cat"],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        }
    )


def write_images(root, names: list[str]) -> list[str]:
    paths = []
    for number, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (number * 30, 0, 0)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def image_table(tmp_path):
    names = [
        "src/cat/a.png",
        "src/cat/b.png",
        "src/cat/Ünïcode ñame.png",
        "src/dog/one.png",
        "src/dog/a.png",  # relabelled to cat, so it collides with cat/a.png
        "src/dog/nan.png",
        "src/ab/x.png",
        "src/ab/y.png",
    ]
    paths = write_images(tmp_path, names)
    return make_table(paths)


def options() -> dict:
    return {"label_mapping": LABEL_MAPPING, "history": make_history(), "settings": SETTINGS}


def test_subset_drops_flagged_and_applies_relabels():
    subset = curated_subset(make_table(), make_state())

    assert subset["sample_id"].tolist() == ["s0", "s2", "s3", "s4", "s5", "s6", "s7"]
    final = dict(zip(subset["sample_id"], subset["final_label"]))
    assert final["s4"] == "cat"
    assert final["s3"] == "dög"
    assert subset.set_index("sample_id").loc["s4", "final_code"] == 0
    assert subset["final_code"].tolist() == [0, 0, 1, 0, 1, 2, 2]
    assert subset["note"].tolist()[3] == "ears"


def test_subset_without_state_keeps_everything():
    subset = curated_subset(make_table(), None)

    assert len(subset) == 8
    assert subset["final_label"].tolist() == subset["class_name"].tolist()


def test_subset_rejects_unknown_relabel():
    state = pd.DataFrame({"sample_id": ["s2"], "flagged": [False], "relabel": ["horse"]})

    with pytest.raises(ValueError, match=r"sample 's2' is relabelled to 'horse'.*\['cat', 'dög', 'a/b'\]"):
        curated_subset(make_table(), state)


def test_subset_top_and_bottom_k_per_final_class():
    table = make_table()
    state = make_state()

    top = curated_subset(table, state, top_k=1)
    bottom = curated_subset(table, state, bottom_k=1)
    both = curated_subset(table, state, top_k=1, bottom_k=1)
    none = curated_subset(table, state, top_k=0)

    # Final classes: cat {s0: 5, s2: 3, s4: 2}, dög {s3: 4, s5: NaN}, a/b {s6: 0.5, s7: 6}.
    assert top["sample_id"].tolist() == ["s0", "s3", "s7"]
    assert bottom["sample_id"].tolist() == ["s3", "s4", "s6"]
    assert both["sample_id"].tolist() == ["s0", "s3", "s4", "s6", "s7"]
    assert none.empty


def test_subset_k_ties_keep_table_order():
    table = make_table()
    table["lsi"] = 1.0

    top = curated_subset(table, None, top_k=2)

    assert top["sample_id"].tolist() == ["s0", "s1", "s3", "s4", "s6", "s7"]


@pytest.mark.parametrize(
    "budget, expected",
    [
        # LSI from the top: s7 6, s0 5, s3 4, s2 3, s4 2, s6 0.5 (s5 is NaN).
        (0.0, []),
        (1.0, ["s7"]),
        (6.0, ["s7"]),
        (6.5, ["s0", "s7"]),
        (11.0, ["s0", "s7"]),
        (11.01, ["s0", "s3", "s7"]),
        (1000.0, ["s0", "s2", "s3", "s4", "s6", "s7"]),
    ],
)
def test_subset_budget_rule(budget, expected):
    subset = curated_subset(make_table(), make_state(), lsi_budget=budget)

    assert subset["sample_id"].tolist() == expected


def test_subset_budget_after_per_class_cut():
    subset = curated_subset(make_table(), make_state(), top_k=1, lsi_budget=9.0)

    assert subset["sample_id"].tolist() == ["s0", "s7"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"bottom_k": 1.5}, "bottom_k must be an integer >= 0"),
        ({"lsi_budget": -0.1}, "lsi_budget must be >= 0"),
        ({"lsi_budget": float("nan")}, "lsi_budget must be a finite number"),
    ],
)
def test_subset_rejects_bad_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        curated_subset(make_table(), None, **kwargs)


def test_csv_export_files_and_contents(tmp_path):
    subset = curated_subset(make_table(), make_state())
    destination = tmp_path / "out"

    written = write_export(subset, ExportFormat.CSV, destination, **options())

    names = sorted(path.name for path in written)
    assert names == ["flag_history.csv", "label_mapping.json", "settings.json", "subset.csv"]
    rows = pd.read_csv(destination / "subset.csv")
    assert rows["sample_id"].tolist() == subset["sample_id"].tolist()
    assert "s1" not in rows["sample_id"].tolist()
    assert rows.set_index("sample_id").loc["s4", "final_label"] == "cat"
    mapping_text = (destination / "label_mapping.json").read_text(encoding="utf-8")
    assert "dög" in mapping_text
    assert json.loads(mapping_text) == LABEL_MAPPING
    history = pd.read_csv(destination / "flag_history.csv")
    assert history["action"].tolist() == ["flag", "relabel"]
    settings = json.loads((destination / "settings.json").read_text(encoding="utf-8"))
    assert settings == {"dataset": "toy", "prior_precision": 1.5, "seed": 3, "missing": None}


def test_parquet_export_keeps_metadata(tmp_path):
    subset = curated_subset(make_table(), make_state())

    written = write_export(subset, "parquet", tmp_path / "out", **options())

    assert sorted(path.name for path in written) == ["flag_history.csv", "subset.parquet"]
    rows = pd.read_parquet(tmp_path / "out" / "subset.parquet")
    assert rows["sample_id"].tolist() == subset["sample_id"].tolist()
    assert rows["final_label"].tolist()[3] == "cat"
    assert rows.attrs["label_mapping"] == LABEL_MAPPING
    assert rows.attrs["settings"]["prior_precision"] == 1.5
    assert rows.attrs["settings"]["missing"] is None


def test_json_manifest_contents(tmp_path):
    subset = curated_subset(make_table(), make_state())

    written = write_export(subset, ExportFormat.JSON, tmp_path / "out", **options())

    assert [path.name for path in written] == ["manifest.json"]
    text = written[0].read_text(encoding="utf-8")
    assert "NaN" not in text
    assert "dög" in text
    manifest = json.loads(text)
    assert set(manifest) == {"label_mapping", "settings", "samples", "flag_history"}
    assert manifest["label_mapping"] == LABEL_MAPPING
    samples = {sample["sample_id"]: sample for sample in manifest["samples"]}
    assert list(samples) == ["s0", "s2", "s3", "s4", "s5", "s6", "s7"]
    assert samples["s4"]["final_label"] == "cat"
    assert samples["s4"]["label"] == 1
    assert samples["s5"]["lsi"] is None
    assert samples["s0"]["mislabel_score"] == 0.5
    assert manifest["flag_history"][1]["action"] == "relabel"
    assert manifest["flag_history"][0]["at"].startswith("2024-01-01")


def test_image_folder_copies_files(image_table, tmp_path):
    subset = curated_subset(image_table, make_state())
    destination = tmp_path / "folder"

    written = write_export(subset, ExportFormat.IMAGEFOLDER, destination, **options())

    files = sorted(path.relative_to(destination).as_posix() for path in destination.rglob("*") if path.is_file())
    assert files == sorted(
        [
            "a_b/x.png",
            "a_b/y.png",
            "cat/a.png",
            "cat/a_2.png",
            "cat/Ünïcode ñame.png",
            "dög/nan.png",
            "dög/one.png",
            "flag_history.csv",
            "label_mapping.json",
            "scores.csv",
            "settings.json",
        ]
    )
    assert sorted(written) == sorted(destination / name for name in files)
    assert not (destination / "cat" / "b.png").exists()
    with Image.open(destination / "cat" / "a_2.png") as copied, Image.open(image_table["path"][4]) as original:
        assert copied.getpixel((0, 0)) == original.getpixel((0, 0))
    scores = pd.read_csv(destination / "scores.csv", keep_default_na=False).set_index("sample_id")
    assert scores.loc["s4", "file"] == "cat/a_2.png"
    assert scores.loc["s2", "file"] == "cat/Ünïcode ñame.png"
    assert scores.loc["s4", "final_label"] == "cat"


def test_image_folder_reports_missing_files(image_table, tmp_path):
    (tmp_path / "src" / "dog" / "one.png").unlink()
    table = image_table.copy()
    table.loc[5, "path"] = None
    destination = tmp_path / "folder"

    written = write_export(curated_subset(table, None), ExportFormat.IMAGEFOLDER, destination, **options())

    assert destination / "skipped_files.csv" in written
    skipped = pd.read_csv(destination / "skipped_files.csv")
    assert skipped["reason"].tolist() == ["file not found", "no file path"]
    assert skipped["item"].tolist()[1] == "s5"
    assert skipped["item"].tolist()[0].endswith("one.png")
    scores = pd.read_csv(destination / "scores.csv", keep_default_na=False).set_index("sample_id")
    assert scores.loc["s3", "file"] == ""
    assert scores.loc["s0", "file"] == "cat/a.png"


@pytest.mark.parametrize(
    "name, expected",
    [("a/b", "a_b"), ("..hidden", "hidden"), ("...", "_"), ("back\\slash", "back_slash"), ("  ", "_"), ("ok.", "ok")],
)
def test_safe_names(name, expected):
    assert export._safe_name(name) == expected


def test_image_folder_needs_path_column(tmp_path):
    subset = curated_subset(make_table(), None)

    with pytest.raises(ValueError, match="has no 'path' column; use a folder or file-list source"):
        write_export(subset, ExportFormat.IMAGEFOLDER, tmp_path / "folder", **options())


def test_export_rejects_non_empty_destination(tmp_path):
    destination = tmp_path / "used"
    destination.mkdir()
    (destination / "keep.txt").write_text("mine")
    subset = curated_subset(make_table(), None)

    with pytest.raises(ValueError, match=f"export destination {destination} is not empty"):
        write_export(subset, ExportFormat.CSV, destination, **options())
    with pytest.raises(ValueError, match="is a file"):
        write_export(subset, ExportFormat.CSV, destination / "keep.txt", **options())
    assert (destination / "keep.txt").read_text() == "mine"


def test_export_accepts_empty_destination_and_rejects_unknown_format(tmp_path):
    destination = tmp_path / "empty"
    destination.mkdir()
    subset = curated_subset(make_table(), None)

    written = write_export(subset, "csv", destination, **options())

    assert (destination / "subset.csv") in written
    with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
        write_export(subset, "xlsx", tmp_path / "other", **options())


def test_build_zip_contents(image_table):
    subset = curated_subset(image_table, make_state())

    data = build_zip(subset, include_files=True, **options())

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        scores = pd.read_csv(archive.open("scores.csv"), keep_default_na=False).set_index("sample_id")
        mapping = json.loads(archive.read("label_mapping.json").decode("utf-8"))
        history = pd.read_csv(archive.open("flag_history.csv"))
        settings = json.loads(archive.read("settings.json").decode("utf-8"))
        image = archive.read("images/cat/a_2.png")
    assert names == {
        "scores.csv",
        "label_mapping.json",
        "flag_history.csv",
        "settings.json",
        "images/cat/a.png",
        "images/cat/a_2.png",
        "images/cat/Ünïcode ñame.png",
        "images/dög/one.png",
        "images/dög/nan.png",
        "images/a_b/x.png",
        "images/a_b/y.png",
    }
    assert "s1" not in scores.index
    assert scores.loc["s4", "final_label"] == "cat"
    assert scores.loc["s4", "file"] == "images/cat/a_2.png"
    assert mapping == LABEL_MAPPING
    assert history["sample_id"].tolist() == ["s1", "s4"]
    assert settings["dataset"] == "toy"
    assert image == open(image_table["path"][4], "rb").read()


def test_build_zip_without_files(image_table):
    data = build_zip(curated_subset(image_table, None), include_files=False, **options())

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
    assert names == {"scores.csv", "label_mapping.json", "flag_history.csv", "settings.json"}


def test_build_zip_rejects_oversized_export(image_table, monkeypatch):
    monkeypatch.setattr(export, "MAX_ZIP_BYTES", 1000)

    with pytest.raises(ValueError, match="use the ImageFolder export"):
        build_zip(curated_subset(image_table, None), include_files=True, **options())


def test_zip_format_writes_archive(image_table, tmp_path):
    destination = tmp_path / "zipped"

    written = write_export(curated_subset(image_table, make_state()), ExportFormat.ZIP, destination, **options())

    assert written == [destination / "export.zip"]
    with zipfile.ZipFile(written[0]) as archive:
        assert "images/cat/a_2.png" in archive.namelist()


def test_curated_subset_drops_reviewed_mislabeled():
    table = pd.DataFrame(
        {
            "index": [0, 1, 2],
            "sample_id": ["a", "b", "c"],
            "label": [0, 1, 0],
            "class_name": ["x", "y", "x"],
            "lsi": [0.3, 0.2, 0.1],
        }
    )
    table.attrs["label_mapping"] = {"0": "x", "1": "y"}
    state = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "flagged": [False, False],
            "relabel": [None, "x"],
            "review": ["mislabeled", "mislabeled"],
        }
    )

    subset = curated_subset(table, state)

    assert subset["sample_id"].tolist() == ["b", "c"]
    assert subset["final_label"].tolist() == ["x", "x"]
