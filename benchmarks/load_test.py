"""Load test of `chromalab serve`: concurrent clients, good and hostile requests, on 127.0.0.1 only.

    python benchmarks/load_test.py [--requests 500] [--clients 20] [--model default] [--time-limit 900]

Starts the server in a child process (its own temporary folder, a free loopback port), then
`--clients` concurrent clients send `--requests` requests drawn in a fixed, seeded mix: gray
photos of three sizes, an upload over the size limit, truncated files, pixel bombs (flat PNGs
that declare 100 megapixels in a few hundred KB), slow uploads, requests cancelled mid-way and a
short video. Prints throughput, p50/p95/p99 latency per kind, status counts, the server's peak
resident memory, the temporary files left behind, and whether every good photo's result is
identical to `chromalab.colorize` on the same file. Bounded in count and time; it stops itself.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dev" / "kodak24"
MIX = {"photo-256": 30, "photo-768": 20, "photo-1024-jpeg": 10, "oversized": 6, "truncated": 8,
       "pixel-bomb": 8, "slow-upload": 6, "cancelled": 6, "video": 3, "foreign-host": 3}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def make_payloads(folder: Path) -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, bytes, content type) for each kind of request."""
    photos = sorted(KODAK.glob("*.png"))
    gray = Image.open(photos[0]).convert("L") if photos else Image.fromarray(
        (np.indices((512, 768)).sum(0) % 256).astype(np.uint8))
    jpeg = io.BytesIO()
    gray.resize((1024, 683)).save(jpeg, format="JPEG", quality=90)
    good_768 = png_bytes(gray.resize((768, 512)))
    bomb = png_bytes(Image.new("L", (10_000, 10_000)), optimize=True)
    clip = folder / "clip.mp4"
    import av

    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for index in range(10):
            frame = np.asarray(gray.resize((96, 64)).convert("RGB")).copy()
            frame[:, : index * 9] //= 2
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {
        "photo-256": ("small.png", png_bytes(gray.resize((256, 256))), "image/png"),
        "photo-768": ("kodak.png", good_768, "image/png"),
        "photo-1024-jpeg": ("scan.jpg", jpeg.getvalue(), "image/jpeg"),
        "oversized": ("huge.tif", os.urandom(26 * 2**20), "image/tiff"),
        "truncated": ("broken.png", good_768[: len(good_768) // 3], "image/png"),
        "pixel-bomb": ("bomb.png", bomb, "image/png"),
        "slow-upload": ("slow.png", good_768, "image/png"),
        "cancelled": ("cancel.png", good_768, "image/png"),
        "video": ("clip.mp4", clip.read_bytes(), "video/mp4"),
        "foreign-host": ("small.png", png_bytes(gray.resize((256, 256))), "image/png"),
    }


def multipart(field: str, name: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = "chromalab-load-test"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def one_request(http: httpx.AsyncClient, base: str, kind: str, payload: tuple[str, bytes, str]):
    """(kind, status or 'cancelled'/'error', seconds, body) of one request."""
    name, data, content_type = payload
    field, path = ("video", "/api/colorize-video") if kind == "video" else ("images", "/api/colorize")
    body, body_type = multipart(field, name, data, content_type)
    headers = {"content-type": body_type, "content-length": str(len(body))}
    if kind == "foreign-host":
        headers["host"] = "rebinding.example"
    started = time.perf_counter()
    try:
        if kind == "slow-upload":
            async def trickle():
                for start in range(0, len(body), 64 * 1024):
                    yield body[start : start + 64 * 1024]
                    await asyncio.sleep(0.05)
            response = await http.post(base + path, content=trickle(), headers=headers)
        elif kind == "cancelled":
            task = asyncio.create_task(http.post(base + path, content=body, headers=headers))
            await asyncio.sleep(0.02)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return kind, "cancelled", time.perf_counter() - started, b""
            response = task.result()
        else:
            response = await http.post(base + path, content=body, headers=headers)
    except httpx.HTTPError as error:
        return kind, f"error:{type(error).__name__}", time.perf_counter() - started, b""
    return kind, response.status_code, time.perf_counter() - started, response.content


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_load(base: str, payloads: dict, requests: int, clients: int, seed: int, deadline: float):
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=requests)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for kind in kinds:
        queue.put_nowait(kind)
    results = []
    retries: Counter = Counter()

    async def client() -> None:
        # A polite client: on 503 it waits as Retry-After says (capped at 2 s) and tries again.
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as http:
            while not queue.empty() and time.monotonic() < deadline:
                kind = queue.get_nowait()
                for attempt in range(30):
                    result = await one_request(http, base, kind, payloads[kind])
                    if result[1] != 503:
                        break
                    retries[kind] += 1
                    await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
                results.append(result)

    await asyncio.gather(*[client() for _ in range(clients)])
    print(f"503 answers retried: {sum(retries.values())} ({dict(retries)})")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--model", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds; the test stops itself")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chromalab-load-"))
    server_temp = work / "server-tmp"
    server_temp.mkdir()
    payloads = make_payloads(work)
    port = free_port()
    env = {**os.environ, "TMPDIR": str(server_temp)}
    server = subprocess.Popen([sys.executable, "-m", "chromalab", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--model", args.model, "--models-dir", str(work / "no-runs")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(base + "/api/info", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            print("the server did not start", file=sys.stderr)
            return 1
        # What the server made at start-up (torch's caches) is not request litter.
        existing = set(server_temp.rglob("*"))
        started = time.perf_counter()
        deadline = time.monotonic() + args.time_limit
        results = asyncio.run(run_load(base, payloads, args.requests, args.clients, args.seed, deadline))
        elapsed = time.perf_counter() - started
        peak = peak_rss_mb(server.pid)
        time.sleep(1.0)  # the last responses' background clean-up
        # Request litter: the request folders (chromalab-web-*) and anything inside them.
        left = [p for p in server_temp.rglob("chromalab-web-*")]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    report(results, elapsed, peak, left, payloads, args.model)
    return 0


def report(results, elapsed: float, peak: float, left: list[Path], payloads: dict, model: str) -> None:
    statuses = Counter((kind, status) for kind, status, _, _ in results)
    latency = defaultdict(list)
    for kind, status, seconds, _ in results:
        latency[kind].append(seconds)
    print(f"{len(results)} requests in {elapsed:.1f} s: {len(results) / elapsed:.2f} requests/s")
    print("| kind | count | statuses | p50 s | p95 s | p99 s |\n|---|---|---|---|---|---|")
    for kind in MIX:
        values = sorted(latency.get(kind, []))
        if not values:
            continue
        q = lambda p: values[min(len(values) - 1, int(p * len(values)))]  # noqa: E731
        codes = ", ".join(f"{status}: {n}" for (k, status), n in sorted(statuses.items(), key=str) if k == kind)
        print(f"| {kind} | {len(values)} | {codes} | {statistics.median(values):.2f} | {q(0.95):.2f} | {q(0.99):.2f} |")
    server_errors = sum(n for (_, status), n in statuses.items() if isinstance(status, int) and status >= 500 and status != 503)
    print(f"5xx other than 503: {server_errors}; server peak RSS {peak:.0f} MB; temporary files left: {len(left)}"
          + (f" ({', '.join(sorted(p.name for p in left)[:5])})" if left else ""))
    from chromalab import colorize, load_model

    colorizer = load_model(model)
    same = True
    for kind in ("photo-256", "photo-768", "photo-1024-jpeg", "slow-upload"):
        name, data, _ = payloads[kind]
        expected = np.asarray(colorize(Image.open(io.BytesIO(data)), model=colorizer))
        for k, status, _, body in results:
            if k == kind and status == 200:
                same &= np.array_equal(np.asarray(Image.open(io.BytesIO(body))), expected)
    print(f"every good photo identical to chromalab.colorize: {same}")


if __name__ == "__main__":
    sys.exit(main())
