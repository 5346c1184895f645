"""The screenshot of color points in docs/web.md: the page with a few points on a real photo.

    .venv/bin/python scripts/web_points_screenshot.py [--photo PATH] [--out docs/images/web-points.png]

Starts the web app (the shipped default model) on a free local port, opens it in Debian's
headless Chromium (Playwright), uploads the photo converted to gray, places color points by
clicking on it and choosing their colors as a person would, and saves a 1120x760 screenshot
with the last point's color popup open.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from browser_points import open_points_editor  # scripts/, beside this file

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "dev" / "kodak24" / "kodim23.png"
# Where a person who knows these parrots would click (fractions of the photo) and the colors.
POINTS = [
    (0.72, 0.26, "#c8201c"),  # the macaw's red head
    (0.84, 0.70, "#b81d1a"),  # its red breast
    (0.16, 0.84, "#f2c318"),  # the other's yellow chest
    (0.38, 0.92, "#2f7fa8"),  # its blue wing
    (0.16, 0.37, "#5f9e3a"),  # its green crown
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int):
    import uvicorn

    from chromalab.web.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(["default"], None), host="127.0.0.1", port=port,
                                          log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "web-points.png")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    server = start_server(port)
    folder = tempfile.mkdtemp(prefix="chromalab-screenshot-")
    with sync_playwright() as playwright:
        gray = Path(folder) / f"{args.photo.stem}.png"
        Image.open(args.photo).convert("L").save(gray)
        browser, page, card = open_points_editor(playwright, f"http://127.0.0.1:{port}", gray, (1120, 760), 60_000)
        layer = card.locator(".points-layer")
        for number, (fx, fy, color) in enumerate(POINTS, 1):
            box = layer.bounding_box()
            layer.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
            expect(card.locator(".point")).to_have_count(number)
            page.locator("#point-color").fill(color)
            expect(card).to_have_attribute("data-points", "ready")
        # The card from its top (the photo and the points toolbar), the last point's popup open.
        page.evaluate("window.scrollTo(0, document.querySelector('.card').getBoundingClientRect().top + scrollY - 16)")
        page.locator(".point").last.click()
        page.wait_for_timeout(300)
        shot = Path(folder) / "shot.png"
        page.screenshot(path=str(shot))
        browser.close()
    server.should_exit = True
    save_small(shot, args.out)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


def save_small(shot: Path, out: Path) -> None:
    """Lossless, at zlib's strongest setting (a photo in a PNG compresses poorly; a palette
    would band its gradients and shift the swatches' colors)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(shot).convert("RGB").save(out, optimize=True)


if __name__ == "__main__":
    main()
