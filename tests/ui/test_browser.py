"""End-to-end: the real server on an image folder with dirty files, in headless Chromium."""

import numpy as np
import pytest
from PIL import Image

from tests.ui.browser import CHROMIUM_ARGS, SCREENSHOT_DIR, chromium_path, running_server

pytestmark = pytest.mark.browser

#: The first visit trains the CNN, scores the images and builds the map; seconds on a 2-core CPU.
GRID_TIMEOUT_MS = 120_000
IMAGE_SELECTOR = "[data-testid='stImage'] img"


def _photo_folder(root):
    rng = np.random.default_rng(4)
    for name, colour in {"rouge": (210, 50, 50), "émeraude": (40, 190, 90)}.items():
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(np.array(colour) + rng.normal(0, 35, size=(24, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"photo_{i}.jpg")
    # A file name that is also HTML: it must appear as text, never as an element.
    (root / "rouge" / "<img src=x id=injected>.jpg").write_bytes(b"")
    return root


def test_dashboard_image_folder_lists_skipped(tmp_path):
    executable = chromium_path()
    playwright = pytest.importorskip("playwright.sync_api")
    root = _photo_folder(tmp_path / "photos")

    with running_server(tmp_path / "workspace", tmp_path / "server.log", ("--dataset", str(root))) as url:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1200})
                page.goto(url)
                page.wait_for_function(
                    f"document.querySelectorAll(\"{IMAGE_SELECTOR}\").length >= 16", timeout=GRID_TIMEOUT_MS
                )
                expander = page.get_by_text("1 item skipped while opening the dataset")
                expander.click()
                # st.dataframe draws its cells on a canvas, so the check stops at the grid being shown.
                page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=GRID_TIMEOUT_MS)
                injected = page.locator("#injected").count()
                alts = page.locator(IMAGE_SELECTOR).evaluate_all("images => images.map(i => i.alt)")
                SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT_DIR / "image_folder.png"), full_page=True)
            finally:
                browser.close()

    assert injected == 0
    assert any(alt.startswith("émeraude/") for alt in alts)
