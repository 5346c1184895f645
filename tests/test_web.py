"""The web app's API (FastAPI TestClient / httpx): models, colorizing, controls, limits, errors."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from skimage.color import rgb2lab

from chromalab.checkpoint import SHIPPED_MODELS, resolve_model_path
from chromalab.data.images import open_rgb
from chromalab.errors import ChromalabError
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.controls import ColorControls, make_ab_transform
from chromalab.web import jobs, point_edits, video_jobs
from chromalab.web.app import STATIC_DIR, create_app
from chromalab.web.worker import InferenceWorker, Stopping
from tests.conftest import synthetic_photo

LOCAL = "http://127.0.0.1:7860"  # the Host the server checks (TestClient sends "testserver")


def png_bytes(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def mean_chroma(image: Image.Image) -> float:
    """Mean CIELAB chroma by scikit-image (independent of chromalab's own conversions)."""
    lab = rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def gray_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "old family photo.png"
    synthetic_photo(3, width=61, height=47).convert("L").save(path)  # odd sizes on purpose
    return path


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> TestClient:
    with TestClient(create_app([tiny_model], None, max_upload_mb=2), base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def colorizer(tiny_model: Path) -> Colorizer:
    return Colorizer.load(tiny_model)


def post_photo(client: TestClient, path: Path, **form: str) -> httpx.Response:
    return client.post("/api/colorize", files={"images": (path.name, path.read_bytes(), "image/png")}, data=form)


# ---- models ----------------------------------------------------------------------------------


def test_info_lists_given_model_finished_runs_and_only_present_shipped_models(tiny_model: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for run in ("alpha", "sweep/trial-1"):
        (runs / run).mkdir(parents=True)
        shutil.copy(tiny_model / "model.safetensors", runs / run / "model.safetensors")
    (runs / "unfinished" / "checkpoints").mkdir(parents=True)  # still training: not offered
    # The same model given twice (folder and file) is listed once.
    app = create_app([tiny_model, tiny_model / "model.safetensors"], runs, max_upload_mb=3)
    info = TestClient(app, base_url=LOCAL).get("/api/info").json()

    ids = [model["id"] for model in info["models"]]
    shipped_present = []
    for name in SHIPPED_MODELS:
        try:
            resolve_model_path(name)
            shipped_present.append(name)
        except ChromalabError:
            pass
    assert info["models"][0]["kind"] == "given" and info["default_model"] == ids[0]
    assert Path(ids[0]).resolve() == tiny_model.resolve()
    assert [m["id"] for m in info["models"] if m["kind"] == "shipped"] == shipped_present
    run_ids = sorted(Path(m["id"]).resolve() for m in info["models"] if m["kind"] == "run")
    assert run_ids == sorted([(runs / "alpha").resolve(), (runs / "sweep" / "trial-1").resolve()])
    assert len(ids) == 1 + len(shipped_present) + 2
    assert info["max_upload_mb"] == 3
    assert set(info["controls"]) == {"temperature", "hue", "saturation"}


def test_missing_model_or_nothing_to_serve_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ChromalabError, match="no such model file"):
        create_app([tmp_path / "nope.safetensors"], None)
    monkeypatch.setattr("chromalab.web.catalog.SHIPPED_MODELS", {})
    with pytest.raises(ChromalabError, match="no model to serve.*pass --model PATH"):
        create_app([], tmp_path)


def test_serve_command_reports_a_missing_model_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from chromalab.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing"), "--models-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("chromalab serve: error:") and "no such model file" in error
    assert "\n" not in error


def test_serve_command_reports_a_busy_port_in_one_line(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from chromalab.cli import main

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(tiny_model), "--port", str(port)]) == 2
    error = capsys.readouterr().err.strip()
    assert f"cannot listen on 127.0.0.1:{port}" in error and "\n" not in error


# ---- colorizing ------------------------------------------------------------------------------


def test_colorize_returns_the_full_resolution_result_of_the_colorizer(
    client: TestClient, gray_photo: Path, colorizer: Colorizer
) -> None:
    response = post_photo(client, gray_photo)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert 'filename="old family photo-colorized.png"' in response.headers["content-disposition"]
    result = Image.open(io.BytesIO(response.content))
    assert result.size == (61, 47) and response.headers["x-chromalab-size"] == "61x47"
    expected = colorizer.colorize(open_rgb(gray_photo))  # the same model, called directly
    assert np.array_equal(pixels(result), pixels(expected))
    assert mean_chroma(result) > 3.0 > mean_chroma(Image.open(gray_photo))


def test_jpeg_download_and_several_photos_as_zip(client: TestClient, gray_photo: Path, colorizer: Colorizer) -> None:
    response = post_photo(client, gray_photo, format="jpeg")
    assert response.headers["content-type"] == "image/jpeg"
    assert 'filename="old family photo-colorized.jpg"' in response.headers["content-disposition"]
    jpeg = Image.open(io.BytesIO(response.content))
    assert jpeg.format == "JPEG" and jpeg.size == (61, 47)

    second = synthetic_photo(9, width=40, height=64).convert("L")
    files = [
        ("images", ("a.png", gray_photo.read_bytes(), "image/png")),
        ("images", ("folder/a.png", png_bytes(second), "image/png")),  # same name: both kept
    ]
    response = client.post("/api/colorize", files=files)
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["a-colorized.png", "a-colorized (2).png"]
        first = Image.open(io.BytesIO(archive.read("a-colorized.png")))
        other = Image.open(io.BytesIO(archive.read("a-colorized (2).png")))
    assert first.size == (61, 47) and other.size == (40, 64)
    assert np.array_equal(pixels(other), pixels(colorizer.colorize(second.convert("RGB"))))


# ---- controls --------------------------------------------------------------------------------


def test_sliders_apply_the_color_controls(client: TestClient, gray_photo: Path, colorizer: Colorizer) -> None:
    gray = Image.open(io.BytesIO(post_photo(client, gray_photo, saturation="0").content))
    assert mean_chroma(gray) < 1.0  # saturation 0 = a neutral gray photo

    response = post_photo(client, gray_photo, temperature="0.6", hue="-40", saturation="1.5")
    adjusted = Image.open(io.BytesIO(response.content))
    transform = make_ab_transform(ColorControls(temperature=0.6, hue=-40.0, saturation=1.5))
    expected = colorizer.colorize_images([open_rgb(gray_photo)], ab_transform=transform)[0]
    assert np.array_equal(pixels(adjusted), pixels(expected))
    assert not np.array_equal(pixels(adjusted), pixels(colorizer.colorize(open_rgb(gray_photo))))


def test_reference_photo_is_applied_and_a_gray_one_is_refused(
    client: TestClient, gray_photo: Path, colorizer: Colorizer, tmp_path: Path
) -> None:
    reference = synthetic_photo(21, width=50, height=50)
    files = {"images": (gray_photo.name, gray_photo.read_bytes(), "image/png"),
             "reference": ("sunset.png", png_bytes(reference), "image/png")}
    response = client.post("/api/colorize", files=files)
    assert response.status_code == 200, response.text
    transform = make_ab_transform(ColorControls(reference=reference))
    expected = colorizer.colorize_images([open_rgb(gray_photo)], ab_transform=transform)[0]
    assert np.array_equal(pixels(Image.open(io.BytesIO(response.content))), pixels(expected))

    files["reference"] = ("gray.png", png_bytes(reference.convert("L")), "image/png")
    response = client.post("/api/colorize", files=files)
    assert response.status_code == 400
    assert "grayscale; it has no colors to match" in response.json()["detail"]
    files["reference"] = ("ref.jpg", b"not a photo", "image/jpeg")
    assert client.post("/api/colorize", files=files).json()["detail"] == "ref.jpg: not an image Pillow can read"


def test_without_the_controls_module_the_sliders_are_hidden_and_refused(
    client: TestClient, gray_photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "CONTROLS_AVAILABLE", False)
    assert client.get("/api/info").json()["controls"] is None
    assert post_photo(client, gray_photo).status_code == 200  # neutral settings still work
    response = post_photo(client, gray_photo, hue="30")
    assert response.status_code == 400
    assert response.json()["detail"] == "color controls are not available in this installation"


# ---- bad input -------------------------------------------------------------------------------


def test_bad_requests_get_one_line_400s(client: TestClient, gray_photo: Path) -> None:
    response = client.post("/api/colorize", files={"images": ("notes.jpg", b"milk, eggs\n", "image/jpeg")})
    assert response.status_code == 400
    assert response.json() == {"detail": "notes.jpg: not an image Pillow can read"}  # the user's name, not a temp path

    tiny = png_bytes(Image.new("L", (4, 4)))
    detail = client.post("/api/colorize", files={"images": ("dot.png", tiny, "image/png")}).json()["detail"]
    assert detail == "dot.png: too small (4x4; needs at least 8 px a side)"

    checks = {
        (("model", "no-such-model"),): "unknown model 'no-such-model'",
        (("temperature", "warm"),): "temperature: Input should be a valid number",
        (("temperature", "3"),): "temperature must be between -1 (cooler) and 1 (warmer), got 3.0",
        (("format", "gif"),): "format: Input should be 'png' or 'jpeg'",
    }
    for form, expected in checks.items():
        response = post_photo(client, gray_photo, **dict(form))
        assert response.status_code == 400 and response.json()["detail"].startswith(expected), response.text
    response = client.post("/api/colorize", data={"model": ""})
    assert response.status_code == 400 and response.json() == {"detail": "no photo uploaded"}


def test_oversized_uploads_get_413_before_anything_is_stored(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where uploads would be saved
    client = TestClient(create_app([tiny_model], None, max_upload_mb=1), base_url=LOCAL)
    payload = np.random.default_rng(0).integers(0, 256, 1_300_000, dtype=np.uint8).tobytes()
    response = client.post("/api/colorize", files={"images": ("big.png", payload, "image/png")})
    assert response.status_code == 413
    assert re.fullmatch(r"upload too large \(1\.2 MB\); this server accepts at most 1 MB per upload .*--max-upload-mb.*",
                        response.json()["detail"])
    assert list(tmp_path.iterdir()) == []
    chunked = client.post("/api/colorize", content=iter([b"x" * 10]), headers={"content-type": "image/png"})
    assert chunked.status_code == 411


def test_uploads_live_in_a_temporary_folder_only_during_the_request(
    client: TestClient, gray_photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[Path] = []
    original = jobs.check_pixel_budget

    def recording_check(uploads: list[jobs.Upload]) -> None:  # the first look at every upload
        for upload in uploads:
            assert upload.path.is_file() and upload.path.is_relative_to(tmp_path)
            seen.append(upload.path)
        return original(uploads)

    monkeypatch.setattr(jobs, "check_pixel_budget", recording_check)
    assert post_photo(client, gray_photo).status_code == 200
    bad = client.post("/api/colorize", files={"images": ("x.jpg", b"junk", "image/jpeg")})
    assert bad.status_code == 400
    assert len(seen) == 2
    assert not any(path.exists() for path in seen)
    assert list(tmp_path.iterdir()) == []  # the request folders are gone too


# ---- queueing --------------------------------------------------------------------------------


def test_concurrent_requests_run_one_at_a_time_and_models_load_once(
    tiny_model: Path, gray_photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app([tiny_model], None, max_upload_mb=2)
    worker: InferenceWorker = app.state.worker
    loads: list[Path] = []
    real_load = Colorizer.load.__func__

    def counting_load(cls, name_or_path, **options):
        loads.append(Path(name_or_path))
        return real_load(cls, name_or_path, **options)

    monkeypatch.setattr(Colorizer, "load", classmethod(counting_load))
    active, overlaps, threads = [0], [], set()
    lock = threading.Lock()
    real_job = jobs.colorize_uploads

    def watched_job(*args):
        with lock:
            active[0] += 1
            overlaps.append(active[0])
            threads.add(threading.current_thread().name)
        time.sleep(0.05)  # long enough for the other requests to arrive meanwhile
        try:
            return real_job(*args)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(jobs, "colorize_uploads", watched_job)

    async def four_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as http:
            photo = gray_photo.read_bytes()
            requests = [http.post("/api/colorize", files={"images": (f"p{i}.png", photo, "image/png")})
                        for i in range(4)]
            return await asyncio.gather(*requests)

    responses = asyncio.run(four_at_once())
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.content for r in responses}) == 1  # same photo, same model: same result
    assert overlaps == [1, 1, 1, 1]  # never two inferences at once
    assert len(threads) == 1 and next(iter(threads)).startswith("chromalab-inference")
    assert len(loads) == 1  # loaded on first use, then cached
    assert worker.waiting == 0


# ---- video -----------------------------------------------------------------------------------


def write_gray_clip(path: Path, frames: int = 6, width: int = 48, height: int = 32) -> Path:
    """A short gray H.264 clip: a synthetic photo panning 2 px a frame (lossless, qp 0)."""
    import av

    canvas = synthetic_photo(11, width=width + 2 * frames, height=height).convert("L").convert("RGB")
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=10, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            view = np.asarray(canvas.crop((2 * index, 0, 2 * index + width, height)))
            output.mux(stream.encode(av.VideoFrame.from_ndarray(view, format="rgb24")))
        output.mux(stream.encode(None))
    return path


def decoded_frames(data: bytes) -> list[Image.Image]:
    import av

    with av.open(io.BytesIO(data)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def test_video_upload_returns_the_colorized_video(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_gray_clip(tmp_path / "clip.mp4")
    uploads = tmp_path / "server-temp"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    reported: list[dict] = []
    real_advance = video_jobs.JobProgress.advance

    def recording_advance(self: video_jobs.JobProgress, frames: int) -> None:
        real_advance(self, frames)
        reported.append(self.snapshot())

    monkeypatch.setattr(video_jobs.JobProgress, "advance", recording_advance)
    response = client.post("/api/colorize-video", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    assert 'filename="clip-colorized.mp4"' in response.headers["content-disposition"]
    frames = decoded_frames(response.content)
    assert len(frames) == 6 == int(response.headers["x-chromalab-frames"])
    assert all(frame.size == (48, 32) for frame in frames)
    assert min(mean_chroma(frame) for frame in frames) > 3.0
    assert reported[-1] == {"name": "clip.mp4", "done": 6, "total": 6}
    assert client.get("/api/progress").json() == {}
    assert list(uploads.iterdir()) == []  # upload and result removed after the response

    gray = client.post("/api/colorize-video", data={"saturation": "0", "temporal": "false"},
                       files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert max(mean_chroma(frame) for frame in decoded_frames(gray.content)) < 1.5


def test_a_bad_video_gets_a_one_line_400_naming_the_upload(client: TestClient, tmp_path: Path) -> None:
    response = client.post("/api/colorize-video", files={"video": ("holiday.mp4", b"not a video" * 40, "video/mp4")})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("holiday.mp4: not a readable video") and "\n" not in detail
    assert tempfile.gettempdir() not in detail


# ---- the page --------------------------------------------------------------------------------


def test_page_and_assets_are_served_and_load_nothing_from_the_internet(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert f'"{asset}"' in page.text
        assert client.get(asset).status_code == 200
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), path.name
        assert "@import" not in text and "@font-face" not in text
    assert client.get("/docs").status_code == 404  # FastAPI's docs pull scripts from a CDN


# ---- limits under load -------------------------------------------------------------------------


def test_a_foreign_host_header_is_refused(tiny_model: Path) -> None:
    app = create_app([tiny_model], None)
    assert TestClient(app, base_url="http://localhost:7860").get("/api/info").status_code == 200
    rebinding = TestClient(app, base_url="http://attacker.example:7860").get("/api/info")
    assert rebinding.status_code == 400
    assert rebinding.json() == {"detail": "host 'attacker.example:7860' is not this server's address"}
    # Bound to every address, the user asked for any name to work.
    assert TestClient(create_app([tiny_model], None, host="0.0.0.0"), base_url="http://box.lan").get(
        "/api/info").status_code == 200


def test_pixel_budgets_refuse_before_decoding(client: TestClient, gray_photo: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    monkeypatch.setattr(jobs, "open_upload", lambda upload: decoded.append(upload.name))
    # A flat PNG declares many pixels in few bytes: refused from its header alone.
    bomb = io.BytesIO()
    Image.new("L", (9000, 6000)).save(bomb, format="PNG")
    assert len(bomb.getvalue()) < 200_000
    monkeypatch.setattr(jobs, "MAX_PHOTO_PIXELS", 50_000_000)
    response = client.post("/api/colorize", files={"images": ("bomb.png", bomb.getvalue(), "image/png")})
    assert response.status_code == 400 and decoded == []
    assert response.json()["detail"].startswith("bomb.png: too large for this server (9000x6000")
    # Several photos that each fit but not together.
    width, height = Image.open(gray_photo).size
    monkeypatch.setattr(jobs, "MAX_REQUEST_PIXELS", 2 * width * height)
    photo = gray_photo.read_bytes()
    response = client.post("/api/colorize", files=[("images", (f"p{i}.png", photo, "image/png")) for i in range(3)])
    assert response.status_code == 400 and decoded == []
    assert "per request" in response.json()["detail"]


def test_a_full_queue_answers_503_with_retry_after(tiny_model: Path, gray_photo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app([tiny_model], None, max_queue=1)
    release = threading.Event()
    real_job = jobs.colorize_uploads

    def slow_job(*args):
        release.wait(10)
        return real_job(*args)

    monkeypatch.setattr(jobs, "colorize_uploads", slow_job)

    async def three_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL) as http:
            photo = gray_photo.read_bytes()
            first = asyncio.create_task(http.post("/api/colorize", files={"images": ("a.png", photo, "image/png")}))
            await asyncio.sleep(0.3)  # the first job holds the single queue place
            others = await asyncio.gather(*[http.post("/api/colorize", files={"images": ("b.png", photo, "image/png")})
                                            for _ in range(2)])
            release.set()
            return [await first, *others]

    first, *refused = asyncio.run(three_at_once())
    assert first.status_code == 200
    assert [r.status_code for r in refused] == [503, 503]
    assert all(r.headers["retry-after"] == "5" and r.json()["detail"].startswith("the server is busy") for r in refused)


def test_video_size_and_length_limits(client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_gray_clip(tmp_path / "clip.mp4").read_bytes()
    monkeypatch.setattr(video_jobs, "MAX_VIDEO_SIDE", 40)  # the clip is 48x32
    response = client.post("/api/colorize-video", files={"video": ("clip.mp4", clip, "video/mp4")})
    assert response.status_code == 400 and response.json()["detail"].startswith("clip.mp4: frames of 48x32")
    monkeypatch.setattr(video_jobs, "MAX_VIDEO_SIDE", 3840)
    monkeypatch.setattr(video_jobs, "MAX_VIDEO_FRAMES", 4)  # the clip has 6
    response = client.post("/api/colorize-video", files={"video": ("clip.mp4", clip, "video/mp4")})
    assert response.status_code == 400 and "frames" in response.json()["detail"]


def test_a_stopping_server_ends_the_running_job_between_photos(tiny_model: Path, gray_photo: Path) -> None:
    app = create_app([tiny_model], None)
    worker: InferenceWorker = app.state.worker
    upload = jobs.Upload(gray_photo, "a.png")
    worker.close()  # what the server's shutdown does
    with pytest.raises(Stopping):
        jobs.colorize_uploads(worker, tiny_model, [upload, upload], jobs.Settings())


# ---- color points ------------------------------------------------------------------------------

RED = "#e01010"


def open_points(client: TestClient, path: Path, **form: str) -> dict:
    response = client.post("/api/points/edit", files={"image": (path.name, path.read_bytes(), "image/png")},
                           data=form)
    assert response.status_code == 200, response.text
    return response.json()


def render_points(client: TestClient, edit: str, points: list, **extra: object) -> httpx.Response:
    return client.post("/api/points/render", json={"edit": edit, "points": points, **extra})


def lab_window(image: Image.Image, x: int, y: int, reach: int = 3) -> np.ndarray:
    """Mean CIELAB (scikit-image) of the pixels within ``reach`` of (x, y)."""
    lab = rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)
    return lab[max(0, y - reach):y + reach + 1, max(0, x - reach):x + reach + 1].reshape(-1, 3).mean(axis=0)


@pytest.fixture(scope="module")
def wide_gray_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wide enough that a point's reach (3 x 0.35 x the shorter side) ends well before the far corner."""
    path = tmp_path_factory.mktemp("points") / "yard.png"
    synthetic_photo(11, width=128, height=72).convert("L").save(path)
    return path


def test_points_edit_renders_the_colorizer_result_with_and_without_points(
    client: TestClient, wide_gray_photo: Path, colorizer: Colorizer
) -> None:
    opened = open_points(client, wide_gray_photo)
    assert (opened["width"], opened["height"]) == (128, 72)
    photo = open_rgb(wide_gray_photo, keep_gray=True)

    plain = render_points(client, opened["edit"], [], seq=1)
    assert plain.status_code == 200 and plain.headers["content-type"] == "image/png"
    assert plain.headers["x-chromalab-size"] == plain.headers["x-chromalab-photo-size"] == "128x72"
    assert np.array_equal(pixels(Image.open(io.BytesIO(plain.content))), pixels(colorizer.colorize(photo)))

    near, far = (20, 20), (115, 62)
    points = [{"x": 20, "y": 20, "color": RED}]
    marked = render_points(client, opened["edit"], points, seq=2)
    assert marked.status_code == 200 and marked.headers["x-chromalab-seq"] == "2"
    result = Image.open(io.BytesIO(marked.content))
    # The same as colorizing with the points directly (the kept L* and guide change nothing)...
    assert np.array_equal(pixels(result), pixels(colorizer.colorize(photo, points=[(20, 20, RED)])))
    # ...red near the point, the far corner as the model left it.
    before, after = Image.open(io.BytesIO(plain.content)), result
    red_ab = rgb2lab(np.array([[[224, 16, 16]]]) / 255.0)[0, 0, 1:]
    towards_red = (lab_window(after, *near)[1:] - lab_window(before, *near)[1:]) @ (red_ab / np.linalg.norm(red_ab))
    assert towards_red > 20
    assert np.abs(lab_window(after, *far)[1:] - lab_window(before, *far)[1:]).max() < 2


def test_a_point_guided_model_sees_the_points_at_every_render(wide_gray_photo: Path, tmp_path: Path) -> None:
    from chromalab.checkpoint import ModelSpec, save_network
    from chromalab.models import create_model

    torch.manual_seed(0)
    kwargs = {"pretrained": False, "decoder_widths": [16, 16, 8, 8], "adapter_width": 8, "norm": "group"}
    net = create_model("effunet-guided", **kwargs).eval()
    for adapter in net.adapters:  # as if trained: the network answers the points itself
        torch.nn.init.normal_(adapter.out.weight, std=0.3)
    model = save_network(net, ModelSpec("effunet-guided", {"out_channels": 2, **kwargs}, size=32),
                         tmp_path / "guided.safetensors")
    photo = open_rgb(wide_gray_photo, keep_gray=True)
    direct = Colorizer.load(model)
    points = [{"x": 20, "y": 20, "color": RED}]
    with TestClient(create_app([model], None, max_upload_mb=2), base_url=LOCAL) as guided_client:
        edit = open_points(guided_client, wide_gray_photo)["edit"]
        plain = render_points(guided_client, edit, [], seq=1)
        marked = render_points(guided_client, edit, points, seq=2)
    assert np.array_equal(pixels(Image.open(io.BytesIO(plain.content))), pixels(direct.colorize(photo)))
    expected = direct.colorize(photo, points=[(20, 20, RED)])  # the network with hints, then propagation
    assert np.array_equal(pixels(Image.open(io.BytesIO(marked.content))), pixels(expected))
    direct.propagate_points = False
    assert not np.array_equal(pixels(direct.colorize(photo, points=[(20, 20, RED)])), pixels(direct.colorize(photo)))


def test_points_previews_and_full_resolution_downloads(client: TestClient, wide_gray_photo: Path) -> None:
    edit = open_points(client, wide_gray_photo)["edit"]
    preview = render_points(client, edit, [{"x": 5, "y": 5, "color": RED}], seq=1, max_side=64, format="jpeg")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert preview.headers["x-chromalab-size"] == "64x36" and Image.open(io.BytesIO(preview.content)).size == (64, 36)
    # Without a sequence number (a download): full size, named after the upload, never dropped.
    full = render_points(client, edit, [{"x": 5, "y": 5, "color": RED}], format="jpeg")
    assert full.status_code == 200 and Image.open(io.BytesIO(full.content)).size == (128, 72)
    assert 'filename="yard-colorized.jpg"' in full.headers["content-disposition"]


def test_points_model_color_is_the_rendered_color_there(client: TestClient, wide_gray_photo: Path) -> None:
    edit = open_points(client, wide_gray_photo)["edit"]
    plain = pixels(Image.open(io.BytesIO(render_points(client, edit, []).content)))
    for x, y in [(0, 0), (37, 21), (127, 71), (64, 40)]:
        answer = client.get("/api/points/color", params={"edit": edit, "x": x, "y": y})
        assert answer.status_code == 200
        color = answer.json()["color"]
        shown = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
        assert np.abs(np.array(shown) - plain[y, x].astype(int)).max() <= 1, (x, y, color, plain[y, x])
    outside = client.get("/api/points/color", params={"edit": edit, "x": 128, "y": 0})
    assert outside.status_code == 400 and "outside the 128x72 photo" in outside.json()["detail"]


def test_points_follow_the_model_and_controls_of_their_edit(
    client: TestClient, wide_gray_photo: Path
) -> None:
    gray = open_points(client, wide_gray_photo, saturation="0")["edit"]
    result = Image.open(io.BytesIO(render_points(client, gray, []).content))
    assert mean_chroma(result) < 1.0  # the edit's network colors carry its controls
    bad = client.post("/api/points/edit", files={"image": ("x.png", b"not an image", "image/png")})
    assert bad.status_code == 400 and bad.json()["detail"] == "x.png: not an image Pillow can read"
    assert client.post("/api/points/edit", data={"model": ""}).json()["detail"] == "no photo uploaded"


@pytest.mark.parametrize("body, message", [
    ('{"edit": "S", "points": [{"x": 128, "y": 3, "color": "#ff0000"}]}',
     "points: point 1 at (128, 3) is outside the 128x72 photo"),
    ('{"edit": "S", "points": [{"x": 1, "y": 3, "color": "red"}]}',
     "points: point 1: color 'red' is not an sRGB hex color like #b03a2e"),
    ('{"edit": "S", "points": [{"x": 1, "y": 3}]}', "points: point 1: missing color"),
    ('{"edit": "S", "points": [{"x": 1, "y": 3, "color": "#ff0000"', "points: not valid JSON"),
    ('{"edit": "S"}', 'points: expected {"points": [{"x": .., "y": .., "color": "#rrggbb"}, ...]}'),
    ('{"points": []}', 'render: "edit" is missing'),
    ('{"edit": "S", "points": [], "seq": -1}', "render: seq -1 is not a whole number >= 0"),
    ('{"edit": "S", "points": [], "format": "gif"}', "render: format 'gif'; choose png or jpeg"),
])
def test_bad_points_get_a_one_line_400(client: TestClient, wide_gray_photo: Path, body: str, message: str) -> None:
    edit = open_points(client, wide_gray_photo)["edit"]
    response = client.post("/api/points/render", content=body.replace('"S"', f'"{edit}"'),
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith(message) and "\n" not in detail


def test_an_unknown_or_closed_edit_is_404(client: TestClient, wide_gray_photo: Path) -> None:
    response = render_points(client, "nope", [])
    assert response.status_code == 404 and "expired or does not exist" in response.json()["detail"]
    edit = open_points(client, wide_gray_photo)["edit"]
    assert client.delete(f"/api/points/edit/{edit}").status_code == 204
    assert render_points(client, edit, []).status_code == 404


async def edit_behind_a_busy_worker(http: httpx.AsyncClient, app, photo: Path,  # noqa: ANN001
                                       release: threading.Event) -> tuple[str, asyncio.Task]:
    """A points edit on ``photo``, then a job that holds the inference worker until ``release``:
    renders sent next wait in the queue."""
    opened = await http.post("/api/points/edit", files={"image": (photo.name, photo.read_bytes(), "image/png")})
    blocker = asyncio.create_task(app.state.worker.run(release.wait, 10))
    await asyncio.sleep(0.1)
    return opened.json()["edit"], blocker


def test_an_outdated_render_is_dropped_without_computing(
    tiny_model: Path, wide_gray_photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app([tiny_model], None)
    rendered: list[int | None] = []
    real_render = point_edits.render
    def counted(store: point_edits.EditStore, order: point_edits.RenderOrder) -> point_edits.Rendered:
        rendered.append(order.seq)
        return real_render(store, order)

    monkeypatch.setattr(point_edits, "render", counted)
    with TestClient(app, base_url=LOCAL) as http:
        edit = open_points(http, wide_gray_photo)["edit"]
        assert render_points(http, edit, [], seq=5).status_code == 200
        late = render_points(http, edit, [{"x": 1, "y": 1, "color": RED}], seq=3)
        assert late.status_code == 409 and "replaced by change 5" in late.json()["detail"]
        assert render_points(http, edit, [], seq=5).status_code == 200  # the same change again: fine
    assert rendered == [5, 5]  # the outdated one never reached the worker


def test_a_render_overtaken_while_queued_is_dropped_by_the_worker(
    tiny_model: Path, wide_gray_photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quick clicking: renders 1 and 2 wait behind a running job; only 2 is computed."""
    app = create_app([tiny_model], None)
    release = threading.Event()
    computed: list[int] = []
    real_spread = point_edits.with_points

    def counted(image, ab, points, guide):  # noqa: ANN001, ANN202 - with_points' own signature
        computed.append(len(points))
        return real_spread(image, ab, points, guide)

    monkeypatch.setattr(point_edits, "with_points", counted)

    async def clicks() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL) as http:
            edit, blocker = await edit_behind_a_busy_worker(http, app, wide_gray_photo, release)
            first = asyncio.create_task(http.post("/api/points/render", json={
                "edit": edit, "seq": 1, "points": [{"x": 1, "y": 1, "color": RED}]}))
            await asyncio.sleep(0.1)  # queued behind the blocker
            second = asyncio.create_task(http.post("/api/points/render", json={
                "edit": edit, "seq": 2, "points": [{"x": 1, "y": 1, "color": RED}] * 2}))
            await asyncio.sleep(0.1)
            release.set()
            await blocker
            return [await first, await second]

    first, second = asyncio.run(clicks())
    assert first.status_code == 409 and second.status_code == 200
    assert computed == [2]


def test_points_renders_share_the_queue_bound(tiny_model: Path, wide_gray_photo: Path) -> None:
    """A full queue answers 503; a render refused so does not make the queued older one outdated
    (else the user's latest accepted change would never be rendered)."""
    app = create_app([tiny_model], None, max_queue=2)
    release = threading.Event()

    async def busy_renders() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL) as http:
            edit, blocker = await edit_behind_a_busy_worker(http, app, wide_gray_photo, release)
            queued = asyncio.create_task(http.post("/api/points/render",
                                                   json={"edit": edit, "points": [], "seq": 1}))
            await asyncio.sleep(0.1)
            refused = await http.post("/api/points/render", json={"edit": edit, "points": [], "seq": 2})
            release.set()
            await blocker
            return [await queued, refused]

    queued, refused = asyncio.run(busy_renders())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert queued.status_code == 200


def fake_edit(number: int, side: int = 100) -> point_edits.PointEdit:
    import torch

    from chromalab.inference.propagation import PointGuide

    photo = Image.new("L", (side, side), 128)
    return point_edits.PointEdit(
        id=f"s{number}", name="p.png", model_id="m", photo=photo,
        lightness=np.zeros((side, side), np.float32), ab_small=torch.zeros(2, 8, 8), guide=PointGuide(photo),
    )


def test_the_edit_store_is_bounded_in_count_bytes_and_idle_time() -> None:
    now = [0.0]
    store = point_edits.EditStore(max_edits=3, max_bytes=10**9, idle_seconds=60, clock=lambda: now[0])
    for number in range(5):
        store.add(fake_edit(number))
    assert len(store) == 3
    with pytest.raises(point_edits.EditGone):
        store.get("s0")  # the least recently used went first
    store.get("s2")  # used: now the most recent
    store.add(fake_edit(5))
    assert {"s2", "s4", "s5"} == {s for s in ("s2", "s3", "s4", "s5") if _kept(store, s)}
    # Bytes: a budget of two edits keeps two, but never refuses the newest.
    one = fake_edit(9).nbytes
    small = point_edits.EditStore(max_edits=10, max_bytes=2 * one, clock=lambda: now[0])
    for number in range(4):
        small.add(fake_edit(number))
    assert len(small) == 2 and small.nbytes <= 2 * one
    tiny = point_edits.EditStore(max_bytes=1, clock=lambda: now[0])
    tiny.add(fake_edit(1))
    assert len(tiny) == 1
    # Idle time: untouched edits expire.
    now[0] += 61
    with pytest.raises(point_edits.EditGone):
        store.get("s5")
    assert len(store) == 0


def _kept(store: point_edits.EditStore, edit_id: str) -> bool:
    try:
        store.get(edit_id)
        return True
    except point_edits.EditGone:
        return False


def test_the_app_keeps_at_most_max_edits(client: TestClient, wide_gray_photo: Path) -> None:
    store: point_edits.EditStore = client.app.state.point_edits
    ids = [open_points(client, wide_gray_photo)["edit"] for _ in range(point_edits.MAX_EDITS + 2)]
    assert len(store) == point_edits.MAX_EDITS
    assert render_points(client, ids[0], []).status_code == 404
    assert render_points(client, ids[-1], []).status_code == 200
