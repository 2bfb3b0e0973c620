from lsi_app.analysis.review import mislabel_candidates
from lsi_app.data import load_digits_samples
from lsi_app.pipeline import run_pipeline
from lsi_app.store import CurationStore
from lsi_app.ui.state import default_settings
from tests.ui.apptest import open_page

MISLABELED = "ui/pages/mislabeled.py"


def _top_candidates(workspace, count, disagreeing_only=False):
    table = run_pipeline(default_settings(), workspace=workspace).table
    candidates = mislabel_candidates(table)
    if disagreeing_only:
        candidates = candidates[candidates["disagrees"]]
    return candidates["sample_id"].head(count).tolist()


def _current_id(app):
    return next(text.value for text in app.text if text.value.startswith("id: ")).removeprefix("id: ")


def test_mislabeled_shows_top_candidate(dashboard_workspace):
    app = open_page(MISLABELED)

    assert not app.exception
    assert not app.error
    assert _current_id(app) == _top_candidates(dashboard_workspace, 1, disagreeing_only=True)[0]
    assert app.button(key="review-mislabeled").label == "Mark mislabeled"


def test_mislabeled_actions_advance_and_persist(dashboard_workspace):
    first, second, third = _top_candidates(dashboard_workspace, 3)
    app = open_page(MISLABELED)
    app.toggle(key="review-disagreeing").set_value(False).run()

    app.button(key="review-keep").click().run()
    assert _current_id(app) == second
    app.button(key="review-mislabeled").click().run()
    assert _current_id(app) == third

    state = CurationStore(dashboard_workspace / "curation.sqlite").state(load_digits_samples().fingerprint)
    reviews = dict(zip(state["sample_id"], state["review"]))
    assert reviews == {first: "kept", second: "mislabeled"}

    app.button(key="review-undo").click().run()
    assert _current_id(app) == second


def test_mislabeled_accept_relabels(dashboard_workspace):
    first = _top_candidates(dashboard_workspace, 1, disagreeing_only=True)[0]
    app = open_page(MISLABELED)
    accept = app.button(key="review-accept")
    suggested = accept.label.removeprefix("Accept label ")
    assert not accept.disabled

    accept.click().run()

    state = CurationStore(dashboard_workspace / "curation.sqlite").state(load_digits_samples().fingerprint)
    assert dict(zip(state["sample_id"], state["relabel"])) == {first: suggested}
    assert _current_id(app) != first
