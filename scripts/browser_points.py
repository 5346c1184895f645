"""Open a photo in the web page's color-points editor in headless Chromium (Playwright), as a
person does: upload, wait for the result, press *Color points*. Shared by
scripts/web_points_screenshot.py and benchmarks/points_web.py (``--browser``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"  # Debian's (make browser)


def open_points_editor(playwright: Any, url: str, photo: Path, viewport: tuple[int, int],
                       timeout_ms: int) -> tuple[Any, Any, Any]:
    """(browser, page, the photo's card) with the card in points mode, ready for clicks."""
    from playwright.sync_api import expect

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    page.wait_for_selector("body.ready")
    page.set_input_files("#file-input", str(photo))
    card = page.locator(".card").first
    expect(card).to_have_class("card done")
    card.locator(".points-toggle").click()
    expect(card).to_have_attribute("data-points", "ready")
    return browser, page, card
