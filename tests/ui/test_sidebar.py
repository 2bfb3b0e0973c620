from tests.ui.apptest import open_page


def _settings_caption(app):
    return next(caption.value for caption in app.caption if caption.value.startswith("Posterior "))


def test_sidebar_compute_applies_new_structure(dashboard_workspace):
    app = open_page()
    assert _settings_caption(app).startswith("Posterior full")

    app.sidebar.selectbox[0].set_value("diag")
    app.sidebar.button[0].click().run()

    assert not app.exception
    assert not app.error
    assert _settings_caption(app).startswith("Posterior diag")


def test_sidebar_invalid_source_keeps_result(dashboard_workspace):
    app = open_page()

    app.sidebar.text_input[0].set_value("/no/such/folder")
    app.sidebar.button[0].click().run()

    assert not app.exception
    assert "not found" in app.sidebar.error[0].value
    assert app.metric[0].value == "1,797"
