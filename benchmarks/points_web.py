"""How fast the web page's color points update: per render on the server, and through HTTP.

    python benchmarks/points_web.py [--model default] [--repeats 9] [--points 5]

For a 12-megapixel and a ~1-megapixel gray photo (Kodak kodim23, upscaled): opens the photo for
editing as the page does (decode, network, L*, guide: once per photo), then times

- on the server, the job a render runs on the inference thread (spread + merge with the kept
  L* + encode), split into its stages, for the live preview the page asks for (longest side
  2048, JPEG 90) and for the full-resolution downloads (JPEG 95, PNG);
- end to end, a real ``chromalab serve`` in a child process and an HTTP client on this side:
  POST /api/points/render until the last byte of the image has arrived (the browser's decode
  of the image is not included);
- quick clicking: 10 renders sent at once with rising sequence numbers, as a page that did
  not keep one in flight would; the server drops the overtaken ones (409) without computing;
- with ``--browser``, the page itself in Debian's headless Chromium: from a point's color
  change to the new picture decoded on the page (what a person waits for).

Medians over ``--repeats``; the machine's load average is printed with them, since the
figures are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "dev" / "kodak24" / "kodim23.png"
SIZES = {"12 MP": (4000, 3000), "1 MP": (1152, 864)}


def gray_photo(size: tuple[int, int], folder: Path) -> Path:
    path = folder / f"photo-{size[0]}x{size[1]}.jpg"
    Image.open(PHOTO).convert("L").resize(size, Image.Resampling.BICUBIC).save(path, quality=92)
    return path


def some_points(size: tuple[int, int], count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    colors = ["#c8201c", "#f2c318", "#2f7fa8", "#5f9e3a", "#d9a47e"]
    return [{"x": int(rng.integers(0, size[0])), "y": int(rng.integers(0, size[1])), "color": colors[i % len(colors)]}
            for i in range(count)]


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.1f} ms"


def server_side(model: str, path: Path, points: list[dict], repeats: int) -> None:
    """The render job itself, as the inference thread runs it, and its stages."""
    from chromalab.checkpoint import resolve_model_path
    from chromalab.inference.colorizer import with_points
    from chromalab.inference.fullres import merge_full_resolution
    from chromalab.inference.points import make_points
    from chromalab.web import jobs, point_edits
    from chromalab.web.worker import InferenceWorker

    worker = InferenceWorker()
    store = point_edits.EditStore()
    upload = jobs.Upload(path, path.name)
    model_file = resolve_model_path(model)
    point_edits.open_edit(worker, store, model_file, model, upload, jobs.Settings())  # loads the model
    opens = []
    for _ in range(3):
        started = time.perf_counter()
        info = point_edits.open_edit(worker, store, model_file, model, upload, jobs.Settings())
        opens.append(time.perf_counter() - started)
    editing = store.get(info["edit"])  # the photo's editing state on the server
    chosen = make_points(points)
    print(f"  open the photo for editing (decode, network, L*, guide; once per photo): {median_ms(opens)}")
    for label, max_side, image_format in (("live preview, 2048 px JPEG 90", point_edits.PREVIEW_SIDE, "jpeg"),
                                          ("full size JPEG 95", 0, "jpeg"), ("full size PNG", 0, "png")):
        order = point_edits.RenderOrder(info["edit"], chosen, None, max_side, image_format)
        point_edits.render(store, order)  # the preview's L* is made on the first render, then kept
        totals, stages = [], {"spread": [], "merge": [], "encode": []}
        for _ in range(repeats):
            started = time.perf_counter()
            rendered = point_edits.render(store, order)
            totals.append(time.perf_counter() - started)
            t0 = time.perf_counter()
            ab = with_points(editing.photo, editing.ab_small, chosen, editing.guide)
            t1 = time.perf_counter()
            pixels = merge_full_resolution(editing.lightness_at(max_side), ab.unsqueeze(0))
            t2 = time.perf_counter()
            point_edits.encode_pixels(pixels, image_format, preview=max_side > 0)
            t3 = time.perf_counter()
            for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
                stages[stage].append(seconds)
        parts = ", ".join(f"{stage} {statistics.median(values) * 1000:.0f}" for stage, values in stages.items())
        print(f"  server, {label:30s} {median_ms(totals)}  ({parts} ms; {rendered.width}x{rendered.height}, "
              f"{len(rendered.data) / 1e6:.2f} MB)")
    worker.close()


def start_server(model: str, port: int, folder: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; from chromalab.cli import main; sys.exit(main())", "serve",
               "--model", model, "--port", str(port), "--models-dir", str(folder / "no-runs")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=1)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise SystemExit(f"chromalab serve did not start: {process.stderr.read()}")
            time.sleep(0.2)
    process.kill()
    raise SystemExit("chromalab serve did not start within 120 s")


def end_to_end(base: str, model: str, path: Path, points: list[dict], repeats: int) -> None:
    with httpx.Client(base_url=base, timeout=120) as http:
        opens = []
        for _ in range(4):  # the first loads the model into the server: not counted
            started = time.perf_counter()
            opened = http.post("/api/points/edit", files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                               data={"model": model})
            opens.append(time.perf_counter() - started)
            opened.raise_for_status()
        print(f"  HTTP, open the photo for editing ({path.stat().st_size / 1e6:.1f} MB upload included): {median_ms(opens[1:])}")
        photo_id = opened.json()["edit"]
        for label, extra in (("live preview, 2048 px JPEG 90", {"max_side": 2048, "format": "jpeg"}),
                             ("full size JPEG 95", {"format": "jpeg"}), ("full size PNG", {"format": "png"})):
            http.post("/api/points/render", json={"edit": photo_id, "points": points, **extra}).raise_for_status()
            samples, server = [], []
            for seq in range(repeats):
                started = time.perf_counter()
                response = http.post("/api/points/render", json={"edit": photo_id, "points": points, **extra})
                data = response.content
                samples.append(time.perf_counter() - started)
                response.raise_for_status()
                server.append(float(response.headers["x-chromalab-seconds"]))
            print(f"  HTTP,   {label:30s} {median_ms(samples)}  (server part {median_ms(server).strip()}, "
                  f"{len(data) / 1e6:.2f} MB)")
        burst(base, photo_id, points)


def burst(base: str, photo_id: str, points: list[dict], changes: int = 10) -> None:
    """Ten changes at once, sequence numbers rising: the overtaken ones are dropped unrendered."""
    async def send_all() -> tuple[list[int], float]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            started = time.perf_counter()
            first = 1_000_000  # above every seq this photo has had
            responses = await asyncio.gather(*[
                http.post("/api/points/render", json={"edit": photo_id, "points": points[: 1 + i % len(points)],
                                                      "seq": first + i, "max_side": 2048, "format": "jpeg"})
                for i in range(changes)])
            return [r.status_code for r in responses], time.perf_counter() - started

    codes, seconds = asyncio.run(send_all())
    print(f"  HTTP, {changes} changes at once: {codes.count(200)} rendered, {codes.count(409)} dropped (409), "
          f"{codes.count(503)} busy (503); all answered in {seconds * 1000:.0f} ms")


def in_browser(base: str, path: Path, repeats: int) -> None:
    """From a color change in the popup to the new picture decoded on the page, in Chromium."""
    from playwright.sync_api import expect, sync_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from browser_points import open_points_editor

    with sync_playwright() as playwright:
        browser, page, card = open_points_editor(playwright, base, path, (1200, 800), 120_000)
        card.locator(".points-layer").click(position={"x": 100, "y": 100})
        expect(card).to_have_attribute("data-points", "ready")
        samples = []
        for number in range(repeats):
            samples.append(page.evaluate("""async (color) => {
                const card = document.querySelector(".card");
                const input = document.querySelector("#point-color");
                const started = performance.now();
                input.value = color;
                input.dispatchEvent(new Event("input", { bubbles: true }));
                while (card.dataset.points !== "ready") await new Promise((r) => setTimeout(r, 2));
                await card.querySelector(".after").decode();
                return performance.now() - started;
            }""", f"#{(number * 40) % 256:02x}20{255 - (number * 40) % 256:02x}") / 1000)
        browser.close()
    print(f"  Chromium, color change -> new picture shown: {median_ms(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--browser", action="store_true", help="also time the page in headless Chromium")
    args = parser.parse_args()
    import torch

    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; model {args.model}, {args.points} points")
    with tempfile.TemporaryDirectory(prefix="chromalab-bench-") as name:
        folder = Path(name)
        photos = {label: gray_photo(size, folder) for label, size in SIZES.items()}
        for label, path in photos.items():
            print(f"{label} gray photo ({Image.open(path).width}x{Image.open(path).height}):")
            server_side(args.model, path, some_points(Image.open(path).size, args.points), args.repeats)
        process = start_server(args.model, args.port, folder)
        try:
            for label, path in photos.items():
                print(f"{label} gray photo, through a running `chromalab serve`:")
                end_to_end(f"http://127.0.0.1:{args.port}", args.model, path,
                           some_points(Image.open(path).size, args.points), args.repeats)
                if args.browser:
                    in_browser(f"http://127.0.0.1:{args.port}", path, args.repeats)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
