from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import lsi_app
from lsi_app.pipeline import DATASET_VARIABLE
from lsi_app.store import ResultCache

APP = str(Path(lsi_app.__file__).with_name("app.py"))
#: First runs train the CNN; AppTest's default of 3 s is too short for that.
TIMEOUT = 120


def _images(app):
    return app.get("image")


def test_ranking_page_shows_96_thumbnails(digits_workspace):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    assert not app.exception
    assert not app.error
    images = _images(app)
    assert len(images) == 96
    assert images[0].proto.imgs[0].alt.startswith("digits-")
    assert "LSI" in images[0].proto.imgs[0].caption
    assert [metric.label for metric in app.metric] == ["Samples", "Probe accuracy", "Mean LSI (nats)", "Median LSI (nats)"]
    assert app.metric[0].value == "1,797"


def test_ranking_page_grids_sorted_by_lsi(digits_workspace, digits_result):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    displayed_ids = [image.proto.imgs[0].alt for image in _images(app)]
    table = digits_result.table
    highest = table.sort_values("lsi", ascending=False, kind="stable")["sample_id"].tolist()
    lowest = table.sort_values("lsi", ascending=True, kind="stable")["sample_id"].tolist()
    assert displayed_ids[:48] == highest[:48]
    assert displayed_ids[48:] == lowest[:48]


def test_ranking_page_computes_on_first_visit(empty_workspace):
    st.cache_data.clear()  # Results cached in memory by earlier tests would hide the first run.
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    assert not app.exception
    assert len(_images(app)) == 96
    assert len(list((empty_workspace / "results").glob("*.parquet"))) == 1

    # A rerun reads the stored result instead of training again.
    app.run()
    assert len(_images(app)) == 96


def test_ranking_page_unknown_dataset_shows_error(empty_workspace, monkeypatch):
    monkeypatch.setenv(DATASET_VARIABLE, "imagenet")

    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    assert not app.exception
    assert len(app.error) == 1
    assert "dataset source 'imagenet' not found" in app.error[0].value
    assert len(_images(app)) == 0
    assert ResultCache(empty_workspace).directory.exists() is False


def test_ranking_page_unexpected_failure_shows_message(empty_workspace, monkeypatch, caplog):
    st.cache_data.clear()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("lsi_app.models.cnn.train_cnn", broken)

    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    assert not app.exception
    assert len(app.error) == 1
    assert "failed unexpectedly" in app.error[0].value
    assert "disk on fire" not in app.error[0].value
    assert "disk on fire" in caplog.text


def _write_folder_with_dirt(root):
    rng = np.random.default_rng(2)
    for name, colour in {"red": (220, 40, 40), "blue": (40, 40, 220)}.items():
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, size=(20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    (root / "red" / "zero.png").write_bytes(b"")
    (root / "blue" / "<b>bold.jpg").write_text("not an image")
    return root


def test_ranking_page_image_folder_lists_skipped(empty_workspace, tmp_path, monkeypatch):
    root = _write_folder_with_dirt(tmp_path / "photos")
    monkeypatch.setenv(DATASET_VARIABLE, str(root))

    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    assert not app.exception
    assert not app.error
    assert len(_images(app)) == 32  # 16 images, each in both grids
    assert app.expander[0].label == "2 items skipped while opening the dataset"
    skipped = app.dataframe[0].value
    assert sorted(skipped["item"].map(lambda item: Path(item).name)) == ["<b>bold.jpg", "zero.png"]
    assert skipped["reason"].str.len().gt(0).all()


def test_ranking_page_text_dataset_shows_text(empty_workspace, tmp_path, monkeypatch):
    rows = ["text,label"] + [f"apples and pears {i},fruit" for i in range(6)] + [f"trains and buses {i},transport" for i in range(6)]
    path = tmp_path / "texts.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    monkeypatch.setenv(DATASET_VARIABLE, str(path))

    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    assert not app.exception
    assert not app.error
    assert len(_images(app)) == 0
    shown = [element.value for element in app.text]
    assert sum(text.startswith(("apples", "trains")) for text in shown) == 24
