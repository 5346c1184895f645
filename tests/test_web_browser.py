"""End to end: the real page in headless Chromium against a real uvicorn server.

Uploads a gray photo, checks the shown result is colored and full size, downloads it and
the batch ZIP, moves a slider, and checks that bad uploads show their one-line error.
Skipped only when Debian's chromium is not installed (``make browser`` installs it).
"""

from __future__ import annotations

import base64
import io
import re
import socket
import threading
import time
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from tests.conftest import synthetic_photo
from tests.test_web import decoded_frames, write_gray_clip

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHOTO_SIZE = (96, 72)
UPLOAD_LIMIT_MB = 1
# A gray photo has mean Lab chroma ~0 (under 0.5 from 8-bit rounding). The edit's tiny
# U-Net (2 epochs on 12 synthetic photos) already gives ~8 on these synthetic scenes: it has
# learnt their colorful gradients, not real-world colors. 3 sits far above rounding noise and
# well below what the model gives, so it tests "the page shows the model's colors", not quality.
COLORED_CHROMA = 3.0
GRAY_CHROMA = 1.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make browser)"),
]


def mean_chroma(image: Image.Image) -> float:
    """Mean CIELAB chroma, by scikit-image (independent of chromalab's kornia conversions)."""
    lab = rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[str]:
    import uvicorn

    from chromalab.web.app import create_app

    port = free_port()
    app = create_app([tiny_model], None, max_upload_mb=UPLOAD_LIMIT_MB)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv_server = uvicorn.Server(config)
    thread = threading.Thread(target=uv_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv_server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def photos(tmp_path: Path) -> dict[str, Path]:
    gray = tmp_path / "street.png"
    synthetic_photo(7, *PHOTO_SIZE).convert("L").save(gray)
    not_an_image = tmp_path / "notes.jpg"  # a text file wearing a .jpg name
    not_an_image.write_text("shopping list: milk, eggs\n")
    too_big = tmp_path / "huge.png"  # incompressible noise: about 1.5 MB, over the 1 MB limit
    noise = np.random.default_rng(0).integers(0, 256, size=(720, 720, 3), dtype=np.uint8)
    Image.fromarray(noise).save(too_big, compress_level=0)
    assert too_big.stat().st_size > UPLOAD_LIMIT_MB * 1024 * 1024
    clip = write_gray_clip(tmp_path / "clip.mp4")
    return {"gray": gray, "text": not_an_image, "big": too_big, "clip": clip}


def has_class(name: str) -> re.Pattern[str]:
    """For expect(...).to_have_class: ``name`` among the element's classes."""
    return re.compile(rf"(^|\s){name}(\s|$)")


def drop_file(page, path: Path) -> None:
    """Drag-and-drop ``path`` onto the drop zone (a real DataTransfer carrying a File)."""
    transfer = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            return transfer;
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def shown_result(page, card) -> Image.Image:
    """The bytes of the result image the page displays (fetched from its blob: URL)."""
    data = card.locator("img.after").evaluate(
        """async (img) => {
            const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
            let text = "";
            for (const byte of bytes) text += String.fromCharCode(byte);
            return btoa(text);
        }"""
    )
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_page_colorizes_compares_adjusts_and_downloads(server: str, photos: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    outside_requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True, viewport={"width": 1200, "height": 800})
            page.set_default_timeout(20_000)
            page.on("request", lambda request: None if request.url.startswith((server, "blob:", "data:"))
                    else outside_requests.append(request.url))
            page.goto(server)
            page.wait_for_selector("body.ready")
            # The --model given comes first and is selected; the shipped model, if present, follows.
            options = page.locator("#model option")
            assert options.count() >= 1
            assert "tiny" in (options.first.get_attribute("title") or "")
            assert page.input_value("#model") == options.first.get_attribute("value")

            # One gray photo in: a colored, full-size result out, with the wipe in place.
            page.set_input_files("#file-input", str(photos["gray"]))
            card = page.locator(".card").nth(0)
            expect(card).to_have_class(has_class("done"))
            result = shown_result(page, card)
            assert result.size == PHOTO_SIZE
            assert mean_chroma(Image.open(photos["gray"])) < 0.5
            assert mean_chroma(result) > COLORED_CHROMA
            expect(card.locator(".info")).to_contain_text(f"{PHOTO_SIZE[0]}×{PHOTO_SIZE[1]} px")
            card.locator(".wipe").fill("30")
            assert "30%" in card.locator(".compare").get_attribute("style")

            with page.expect_download() as download_info:
                card.locator("a.download").click()
            download = download_info.value
            assert download.suggested_filename == "street-colorized.png"
            downloaded = Image.open(download.path())
            assert downloaded.size == PHOTO_SIZE
            assert np.array_equal(np.asarray(downloaded.convert("RGB")), np.asarray(result.convert("RGB")))

            # A video: the card plays the colorized clip, and the download is that clip.
            page.set_input_files("#file-input", str(photos["clip"]))
            video_card = page.locator(".card").nth(1)
            expect(video_card).to_have_class(has_class("done"))
            expect(video_card.locator(".info")).to_contain_text("48×32 px · 6 frames")
            with page.expect_download() as video_info:
                video_card.locator("a.download").click()
            assert video_info.value.suggested_filename == "clip-colorized.mp4"
            clip_frames = decoded_frames(Path(video_info.value.path()).read_bytes())
            assert len(clip_frames) == 6 and clip_frames[0].size == (48, 32)
            assert mean_chroma(clip_frames[0]) > COLORED_CHROMA

            # Bad uploads, one dropped on the page, one picked: each card shows the server's reason.
            drop_file(page, photos["text"])
            expect(page.locator(".card")).to_have_count(3)
            page.set_input_files("#file-input", str(photos["big"]))
            expect(page.locator(".card.failed")).to_have_count(2)
            errors = page.locator(".card.failed .error")
            expect(errors.nth(0)).to_have_text("notes.jpg: not an image Pillow can read")
            expect(errors.nth(1)).to_contain_text(f"upload too large (1.5 MB); this server accepts at most {UPLOAD_LIMIT_MB} MB")
            expect(page.locator("#status")).to_have_text("2 of 4 colorized · 2 failed")
            page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)

            # The batch ZIP (written by the page itself) holds the same results.
            with page.expect_download() as zip_info:
                page.click("#download-all")
            with zipfile.ZipFile(zip_info.value.path()) as archive:
                assert archive.testzip() is None  # every CRC checks out
                assert archive.namelist() == ["street-colorized.png", "clip-colorized.mp4"]
                zipped = Image.open(io.BytesIO(archive.read("street-colorized.png")))
                assert np.array_equal(np.asarray(zipped.convert("RGB")), np.asarray(result.convert("RGB")))
                assert len(decoded_frames(archive.read("clip-colorized.mp4"))) == 6

            # Saturation 0 re-colorizes the photo as a neutral gray; JPEG changes the download.
            page.locator("#saturation").fill("0")
            page.locator('.segmented span:text("JPEG")').click()
            expect(card.locator("a.download")).to_have_text("Download JPEG")
            expect(page.locator("#status")).to_have_text("2 of 4 colorized · 2 failed")
            gray_result = shown_result(page, card)
            assert gray_result.format == "JPEG" and gray_result.size == PHOTO_SIZE
            assert mean_chroma(gray_result) < GRAY_CHROMA
        finally:
            browser.close()
    assert outside_requests == [], "the page must not reach beyond its own server"


def lab_around(image: Image.Image, x: int, y: int, reach: int = 3) -> np.ndarray:
    """Mean CIELAB (scikit-image) within ``reach`` pixels of (x, y)."""
    lab = rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)
    return lab[max(0, y - reach):y + reach + 1, max(0, x - reach):x + reach + 1].reshape(-1, 3).mean(axis=0)


def marker_state(card) -> list[tuple[int, int, str]]:
    return [(int(m.get_attribute("data-x")), int(m.get_attribute("data-y")), m.get_attribute("data-color"))
            for m in card.locator(".point").all()]


def test_color_points_recolor_the_clicked_region_and_round_trip_as_json(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from chromalab.inference.points import points_from_json

    photo = tmp_path / "yard.png"  # wide: a point's reach ends well before the far corner
    synthetic_photo(11, 128, 72).convert("L").save(photo)
    chosen = "#e01010"
    red_ab = rgb2lab(np.array([[[0xe0, 0x10, 0x10]]]) / 255.0)[0, 0, 1:]
    towards_red = red_ab / np.linalg.norm(red_ab)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True, viewport={"width": 1200, "height": 800})
            page.set_default_timeout(20_000)
            # The page keeps at most one live render in flight, however fast the changes come.
            renders = {"in_flight": 0, "most": 0, "sent": 0}

            def render_sent(request) -> None:
                if request.url.endswith("/api/points/render") and '"seq"' in (request.post_data or ""):
                    renders["in_flight"] += 1
                    renders["sent"] += 1
                    renders["most"] = max(renders["most"], renders["in_flight"])

            def render_done(request) -> None:
                if request.url.endswith("/api/points/render") and '"seq"' in (request.post_data or ""):
                    renders["in_flight"] -= 1

            page.on("request", render_sent)
            page.on("requestfinished", render_done)
            page.on("requestfailed", render_done)
            page.goto(server)
            page.wait_for_selector("body.ready")
            page.set_input_files("#file-input", str(photo))
            card = page.locator(".card").nth(0)
            expect(card).to_have_class(has_class("done"))
            before = shown_result(page, card)

            # Point mode; a click on the photo places a point and offers the model's color there.
            card.locator(".points-toggle").click()
            expect(card).to_have_attribute("data-points", "ready")
            layer = card.locator(".points-layer")
            box = layer.bounding_box()
            layer.click(position={"x": box["width"] * 0.16, "y": box["height"] * 0.28})
            expect(page.locator("#point-popup")).to_be_visible()
            expect(card.locator(".point")).to_have_count(1)
            [(x, y, offered)] = marker_state(card)
            assert abs(x - 0.16 * 128) <= 1.5 and abs(y - 0.28 * 72) <= 1.5
            assert page.locator("#model-color").get_attribute("data-color") == offered
            expect(page.locator("#suggested-colors button")).to_have_count(12)

            # Any color: the region around the click turns red, the far corner stays as it was.
            page.locator("#point-color").fill(chosen)
            expect(card.locator(".point")).to_have_attribute("data-color", chosen)
            expect(card).to_have_attribute("data-points", "ready")
            expect(card.locator(".info")).to_contain_text("128×72 px · 1 point")
            colored = shown_result(page, card)
            assert colored.size == (128, 72)
            near_shift = (lab_around(colored, x, y)[1:] - lab_around(before, x, y)[1:]) @ towards_red
            chroma = lambda image, at: float(np.hypot(*lab_around(image, *at)[1:]))  # noqa: E731
            assert near_shift > 20 and chroma(colored, (x, y)) > chroma(before, (x, y)) + 15
            far = (118, 64)
            assert np.abs(lab_around(colored, *far)[1:] - lab_around(before, *far)[1:]).max() < 3
            page.keyboard.press("Escape")
            expect(page.locator("#point-popup")).to_be_hidden()

            # The full-size download carries the point.
            with page.expect_download() as full_info:
                card.locator("a.download").click()
            full = Image.open(full_info.value.path())
            assert full.size == (128, 72) and full_info.value.suggested_filename == "yard-colorized.png"
            assert (lab_around(full, x, y)[1:] - lab_around(before, x, y)[1:]) @ towards_red > 20

            # Download the points, clear them (back to the model's colors), load them back.
            with page.expect_download() as points_info:
                card.locator(".points-save").click()
            saved = Path(points_info.value.path()).read_text()
            assert [(p.x, p.y, p.color) for p in points_from_json(saved, "saved")] == [(x, y, chosen)]
            card.locator(".points-clear").click()
            expect(card.locator(".point")).to_have_count(0)
            expect(card).to_have_attribute("data-points", "ready")
            cleared = shown_result(page, card)
            assert np.abs(lab_around(cleared, x, y)[1:] - lab_around(before, x, y)[1:]).max() < 3
            points_file = tmp_path / "yard-points.json"
            points_file.write_text(saved)
            with page.expect_file_chooser() as chooser:
                card.locator(".points-load").click()
            chooser.value.set_files(str(points_file))
            expect(card.locator(".point")).to_have_count(1)
            assert marker_state(card) == [(x, y, chosen)]
            expect(card).to_have_attribute("data-points", "ready")
            reloaded = shown_result(page, card)
            assert (lab_around(reloaded, x, y)[1:] - lab_around(before, x, y)[1:]) @ towards_red > 20

            # Drag the point; Delete removes the selected point; Ctrl+Z brings each state back.
            marker = card.locator(".point").first.bounding_box()
            box = layer.bounding_box()  # the buttons below may have scrolled the page
            page.mouse.move(marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=12)
            page.mouse.up()
            [(moved_x, moved_y, _)] = marker_state(card)
            assert abs(moved_x - 64) <= 2 and abs(moved_y - 36) <= 2
            page.keyboard.press("Delete")
            expect(card.locator(".point")).to_have_count(0)
            page.keyboard.press("Control+z")
            expect(card.locator(".point")).to_have_count(1)
            assert marker_state(card) == [(moved_x, moved_y, chosen)]
            card.locator(".points-undo").click()
            expect(card.locator(".point")).to_have_attribute("data-x", str(x))
            expect(card).to_have_attribute("data-points", "ready")

            # A file with a point outside the photo: one line on the card, the points stay.
            bad_file = tmp_path / "bad-points.json"
            bad_file.write_text('{"points": [{"x": 500, "y": 5, "color": "#00ff00"}]}')
            with page.expect_file_chooser() as chooser:
                card.locator(".points-load").click()
            chooser.value.set_files(str(bad_file))
            expect(card.locator(".error")).to_have_text("points: point 1 at (500, 5) is outside the 128x72 photo")
            assert marker_state(card) == [(x, y, chosen)]

            # Keyboard only: Enter on the photo places a point in the middle and opens its colors.
            layer.focus()
            page.keyboard.press("Enter")
            expect(card.locator(".point")).to_have_count(2)
            expect(page.locator("#model-color")).to_be_focused()
            page.keyboard.press("Escape")
            expect(page.locator("#point-popup")).to_be_hidden()
            expect(layer).to_be_focused()
            page.keyboard.press("Control+z")
            expect(card.locator(".point")).to_have_count(1)
            expect(card).to_have_attribute("data-points", "ready")
            assert renders["sent"] >= 8 and renders["most"] == 1, renders
        finally:
            browser.close()
