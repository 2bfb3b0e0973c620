from lsi_app.data import load_digits_samples
from lsi_app.pipeline import run_pipeline
from lsi_app.store import CurationStore
from lsi_app.ui.state import default_settings
from tests.ui.apptest import images, open_page

GALLERY = "ui/pages/gallery.py"


def _store(workspace):
    return CurationStore(workspace / "curation.sqlite")


def _shown_ids(app):
    return [image.proto.imgs[0].alt for image in images(app)]


def _table(workspace):
    return run_pipeline(default_settings(), workspace=workspace).table


def test_gallery_sorted_by_lsi_high_first(dashboard_workspace):
    app = open_page(GALLERY)

    assert not app.exception
    assert not app.error
    expected = _table(dashboard_workspace).sort_values("lsi", ascending=False, kind="stable")["sample_id"]
    assert _shown_ids(app) == expected.head(48).tolist()


def test_gallery_low_first_and_page_size(dashboard_workspace):
    app = open_page(GALLERY)

    app.radio(key="gallery-order").set_value("low first").run()
    app.selectbox(key="gallery-page-size").set_value(24).run()

    assert not app.exception
    expected = _table(dashboard_workspace).sort_values("lsi", ascending=True, kind="stable")["sample_id"]
    assert _shown_ids(app) == expected.head(24).tolist()


def test_gallery_sort_by_other_score(dashboard_workspace):
    app = open_page(GALLERY)

    app.selectbox(key="gallery-sort").set_value("mislabel_score").run()

    expected = _table(dashboard_workspace).sort_values("mislabel_score", ascending=False, kind="stable")["sample_id"]
    assert _shown_ids(app) == expected.head(48).tolist()


def test_gallery_flag_round_trips_through_sqlite(dashboard_workspace):
    app = open_page(GALLERY)
    first = _shown_ids(app)[0]

    app.checkbox(key=f"flag-{first}").check().run()

    state = _store(dashboard_workspace).state(load_digits_samples().fingerprint).set_index("sample_id")
    assert bool(state.loc[first, "flagged"])
    restarted = open_page(GALLERY)
    assert restarted.checkbox(key=f"flag-{first}").value is True


def test_gallery_filters_by_class_and_search(dashboard_workspace):
    app = open_page(GALLERY)

    app.multiselect(key="gallery-classes").set_value(["3"]).run()
    captions = [image.proto.imgs[0].caption for image in images(app)]
    assert captions
    assert all(caption.startswith("label 3") for caption in captions)

    app.text_input(key="gallery-search").set_value("digits-000").run()
    assert _shown_ids(app)
    assert all(sample_id.startswith("digits-000") for sample_id in _shown_ids(app))


def test_gallery_flagged_filter_and_undo(dashboard_workspace):
    app = open_page(GALLERY)
    app.selectbox(key="gallery-curation").set_value("flagged").run()
    assert _shown_ids(app) == []

    app.selectbox(key="gallery-curation").set_value("all").run()
    first = _shown_ids(app)[0]
    app.checkbox(key=f"flag-{first}").check().run()
    app.selectbox(key="gallery-curation").set_value("flagged").run()
    assert _shown_ids(app) == [first]

    app.button(key="gallery-undo").click().run()
    assert _shown_ids(app) == []


def test_gallery_map_selection_filters(dashboard_workspace):
    app = open_page(GALLERY)
    app.session_state["map_selection"] = ["digits-0007", "digits-0003"]
    app.run()

    assert sorted(_shown_ids(app)) == ["digits-0003", "digits-0007"]
    assert any("2 samples selected on the map" in info.value for info in app.info)


def test_gallery_detail_relabels_and_notes(dashboard_workspace):
    app = open_page(GALLERY)
    first = _shown_ids(app)[0]

    app.button(key=f"detail-{first}").click().run()

    assert not app.exception
    assert any(f"id: {first}" == text.value for text in app.text)
    assert any("Nearest neighbours" in header.value for header in app.subheader)
    app.selectbox(key="detail-label").set_value("0").run()
    app.button(key="detail-relabel").click().run()
    app.text_area(key="detail-note-text").set_value("smudged corner").run()
    app.button(key="detail-note").click().run()

    state = _store(dashboard_workspace).state(load_digits_samples().fingerprint).set_index("sample_id")
    given = _table(dashboard_workspace).set_index("sample_id").loc[first, "class_name"]
    assert state.loc[first, "relabel"] == (None if given == "0" else "0")
    assert state.loc[first, "note"] == "smudged corner"
