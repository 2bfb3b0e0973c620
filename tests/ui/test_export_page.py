import json

import pandas as pd

from lsi_app.data import load_digits_samples
from lsi_app.store import CurationStore
from tests.ui.apptest import open_page

EXPORT = "ui/pages/export.py"


def test_export_writes_curated_csv(dashboard_workspace, tmp_path):
    store = CurationStore(dashboard_workspace / "curation.sqlite")
    fingerprint = load_digits_samples().fingerprint
    store.flag(fingerprint, "digits-0000")
    store.relabel(fingerprint, "digits-0001", "7")
    app = open_page(EXPORT)
    assert not app.exception
    assert not app.error

    destination = tmp_path / "export"
    app.radio(key="export-format").set_value("CSV").run()
    app.text_input(key="export-folder").set_value(str(destination)).run()
    app.button(key="export-write").click().run()

    assert not app.error
    subset = pd.read_csv(destination / "subset.csv")
    assert len(subset) == 1796
    assert "digits-0000" not in set(subset["sample_id"])
    assert subset.set_index("sample_id").loc["digits-0001", "final_label"] == 7
    assert json.loads((destination / "label_mapping.json").read_text())["7"] == "7"
    history = pd.read_csv(destination / "flag_history.csv")
    assert len(history) == 2


def test_export_zip_built_on_request(dashboard_workspace):
    app = open_page(EXPORT)
    assert len(app.get("download_button")) == 0

    app.button(key="export-zip").click().run()

    assert not app.error
    assert len(app.get("download_button")) == 1
