import numpy as np
from PIL import Image

from lsi_app.data import load_digits_samples
from lsi_app.pipeline import DATASET_VARIABLE
from lsi_app.store import CurationStore, ResultCache
from tests.ui.apptest import images, open_page


def test_overview_shows_summary(dashboard_workspace):
    app = open_page()

    assert not app.exception
    assert not app.error
    labels = [metric.label for metric in app.metric]
    assert labels == ["Samples", "Classes", "Probe accuracy", "Mean LSI (nats)", "Median LSI (nats)", "Flagged"]
    assert app.metric[0].value == "1,797"
    assert app.metric[5].value == "0"
    assert len(images(app)) == 16
    assert any("Spearman" in markdown.value for markdown in app.markdown)


def test_overview_counts_flags(dashboard_workspace):
    app = open_page()

    CurationStore(dashboard_workspace / "curation.sqlite").flag(load_digits_samples().fingerprint, "digits-0001")
    app.run()

    assert app.metric[5].value == "1"


def test_overview_computes_on_first_visit(empty_workspace):
    app = open_page()

    assert not app.exception
    assert len(images(app)) == 16
    assert len(list((empty_workspace / "results").glob("*.parquet"))) == 1


def test_overview_unknown_dataset_shows_error(empty_workspace, monkeypatch):
    monkeypatch.setenv(DATASET_VARIABLE, "imagenet")

    app = open_page()

    assert not app.exception
    assert len(app.error) == 1
    assert "dataset source 'imagenet' not found" in app.error[0].value
    assert ResultCache(empty_workspace).directory.exists() is False


def test_overview_unexpected_failure_shows_message(empty_workspace, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("lsi_app.models.cnn.train_cnn", broken)

    app = open_page()

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


def test_overview_image_folder_lists_skipped(empty_workspace, tmp_path, monkeypatch):
    root = _write_folder_with_dirt(tmp_path / "photos")
    monkeypatch.setenv(DATASET_VARIABLE, str(root))

    app = open_page()

    assert not app.exception
    assert not app.error
    assert app.expander[0].label == "2 items skipped while opening the dataset"
    skipped = app.dataframe[0].value
    assert sorted(skipped["item"].map(lambda item: item.rsplit("/", 1)[-1])) == ["<b>bold.jpg", "zero.png"]


def test_overview_text_dataset_shows_text(empty_workspace, tmp_path, monkeypatch):
    rows = ["text,label"] + [f"apples and pears {i},fruit" for i in range(6)] + [f"trains and buses {i},transport" for i in range(6)]
    path = tmp_path / "texts.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    monkeypatch.setenv(DATASET_VARIABLE, str(path))

    app = open_page()

    assert not app.exception
    assert not app.error
    assert len(images(app)) == 0
    shown = [element.value for element in app.text]
    assert sum(text.startswith(("apples", "trains")) for text in shown) == 16
