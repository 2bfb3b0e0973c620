import json

from tests.ui.apptest import open_page

EMBEDDING = "ui/pages/embedding.py"


def test_embedding_page_plots_every_sample(dashboard_workspace):
    app = open_page(EMBEDDING)

    assert not app.exception
    assert not app.error
    chart = app.get("plotly_chart")[0]
    figure = json.loads(chart.proto.spec)
    ids = [point[0] for trace in figure["data"] for point in trace["customdata"]]
    assert len(ids) == 1797
    assert len(set(ids)) == 1797
    assert all(trace["type"] == "scattergl" for trace in figure["data"])


def test_embedding_page_colour_by_class(dashboard_workspace):
    app = open_page(EMBEDDING)

    app.radio(key="map-colour").set_value("class").run()

    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert len(figure["data"]) == 10
