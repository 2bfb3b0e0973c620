from tests.ui.apptest import open_page

CLASSES = "ui/pages/classes.py"


def test_classes_page_lists_every_class(dashboard_workspace):
    app = open_page(CLASSES)

    assert not app.exception
    assert not app.error
    per_class = app.dataframe[0].value
    assert sorted(per_class["class_name"].astype(str)) == [str(digit) for digit in range(10)]
    assert per_class["count"].sum() == 1797
    assert (per_class["mean_lsi_low"] <= per_class["mean_lsi"]).all()
    assert (per_class["mean_lsi"] <= per_class["mean_lsi_high"]).all()
    assert len(app.get("plotly_chart")) == 3


def test_classes_page_sorts(dashboard_workspace):
    app = open_page(CLASSES)

    app.selectbox(key="classes-sort").set_value("mean LSI, lowest first").run()

    means = app.dataframe[0].value["mean_lsi"].tolist()
    assert means == sorted(means)
