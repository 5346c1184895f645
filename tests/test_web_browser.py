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
# A gray photo has mean Lab chroma ~0 (under 0.5 from 8-bit rounding). The session's tiny
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
