"""End-to-end dashboard checks in headless Chromium: flags survive a reload, map selections
filter the gallery, exports write files, and every page renders (with a screenshot each)."""

from pathlib import Path

import pandas as pd
import pytest

from tests.ui.browser import CHROMIUM_ARGS, SCREENSHOT_DIR, chromium_path, running_server

pytestmark = pytest.mark.browser

#: The first visit trains the CNN, scores the digits and builds the map; seconds on a 2-core CPU.
FIRST_RUN_TIMEOUT_MS = 240_000
IMAGE_SELECTOR = "[data-testid='stImage'] img"
PAGES = ("", "gallery", "mislabeled", "classes", "embedding", "export")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """One server on the digits for every test in this module, and a Chromium page."""
    executable = chromium_path()
    playwright = pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("dashboard-browser")
    with running_server(root / "workspace", root / "server.log") as url:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            outside = []
            page.on("request", lambda request: outside.append(request.url) if not request.url.startswith((url, "data:", "blob:")) else None)
            page.outside_requests = outside
            try:
                yield url, page
            finally:
                browser.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=FIRST_RUN_TIMEOUT_MS
    )
    page.wait_for_timeout(300)


def _open(page, url: str, name: str) -> None:
    page.goto(f"{url}/{name}")
    page.get_by_role("heading", level=1).first.wait_for(timeout=FIRST_RUN_TIMEOUT_MS)
    _settle(page)


def _gallery_ids(page) -> list[str]:
    return page.locator(IMAGE_SELECTOR).evaluate_all("images => images.map(i => i.alt)")


def test_every_page_renders(dashboard):
    url, page = dashboard
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    for name in PAGES:
        _open(page, url, name)
        if name in ("", "embedding"):
            page.locator(".js-plotly-plot").first.wait_for(timeout=FIRST_RUN_TIMEOUT_MS)
        page.screenshot(path=str(SCREENSHOT_DIR / f"{name or 'overview'}.png"))

        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator("[data-testid='stAlertContentError']").count() == 0
    assert page.outside_requests == []


def test_flag_survives_reload(dashboard):
    url, page = dashboard
    _open(page, url, "gallery")
    page.get_by_text("low first").click()
    _settle(page)
    first = _gallery_ids(page)[0]

    page.get_by_role("checkbox", name="Flag").first.check(force=True)
    _settle(page)
    page.reload()
    _settle(page)
    page.get_by_text("low first").click()
    _settle(page)

    assert _gallery_ids(page)[0] == first
    assert page.get_by_role("checkbox", name="Flag").first.is_checked()


def test_map_selection_filters_gallery(dashboard):
    url, page = dashboard
    _open(page, url, "embedding")
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for(timeout=FIRST_RUN_TIMEOUT_MS)
    page.wait_for_timeout(1000)
    # Switch plotly to box selection and drag a box over the middle of the plot area.
    page.locator(".modebar-btn[data-val='select']").first.click(force=True)
    area = page.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + area["width"] * 0.3, area["y"] + area["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.7, area["y"] + area["height"] * 0.7, steps=12)
    page.mouse.up()
    _settle(page)
    selected = page.evaluate(
        """() => {
            const plot = document.querySelector('.js-plotly-plot');
            const ids = [];
            plot.data.forEach(trace => (trace.selectedpoints || []).forEach(i => ids.push(trace.customdata[i][0])));
            return ids;
        }"""
    )
    assert selected, "the box selected no point; the map layout may have changed"
    page.screenshot(path=str(SCREENSHOT_DIR / "embedding-selection.png"))

    page.get_by_role("button", name="Show in gallery").click()
    page.get_by_role("heading", name="Gallery").wait_for(timeout=FIRST_RUN_TIMEOUT_MS)
    _settle(page)
    summary = page.get_by_text(f"samples selected on the map").first.inner_text()
    shown = set(_gallery_ids(page))

    assert f"Showing the {len(selected)} samples selected on the map" in summary
    assert shown <= set(selected)
    assert len(shown) == min(len(selected), 48)


def test_export_writes_files(dashboard, tmp_path):
    url, page = dashboard
    _open(page, url, "export")
    destination = tmp_path / "curated"

    page.get_by_text("Parquet", exact=True).click()
    _settle(page)
    folder = page.get_by_label("Destination folder (must be empty or new)")
    folder.fill(str(destination))
    folder.press("Enter")
    _settle(page)
    page.get_by_role("button", name="Export", exact=True).click()
    _settle(page)

    subset = pd.read_parquet(destination / "subset.parquet")
    assert len(subset) >= 1790
    assert {"sample_id", "lsi", "final_label"} <= set(subset.columns)
    assert (destination / "flag_history.csv").is_file()
    assert Path(destination).is_dir()
