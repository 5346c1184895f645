"""Video colorization: round trip (frames, size, rate, audio), flicker, bad files, CLI."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from chromalab.cli import main
from chromalab.errors import ChromalabError
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.video import (
    FlickerMeter,
    FrameColorizer,
    TemporalSmoother,
    colorize_video,
    measure_flicker,
    probe_video,
    read_frames,
)
from tests.conftest import synthetic_photo

FPS = 10
SAMPLE_RATE = 8000


def pan_frames(count: int, width: int, height: int, noise: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    """A camera panning (1 px a frame) and slowly zooming over a photo, as gray frames."""
    canvas = synthetic_photo(seed, width=width * 2, height=height * 2).convert("L")
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        zoom = 1.0 + 0.01 * index
        crop_w, crop_h = width * 1.5 / zoom, height * 1.5 / zoom
        left, top = 4 + index, 4 + 0.5 * index
        view = canvas.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
        gray = np.asarray(view, dtype=np.float32) + rng.normal(0.0, noise, size=(height, width))
        frames.append(np.repeat(np.clip(gray, 0, 255).round().astype(np.uint8)[..., None], 3, axis=2))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = FPS, audio: str | None = "aac") -> Path:
    """Encode frames as H.264 (lossless, so the test input is exactly the frames) plus a tone."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=fps, options={"qp": "0"})
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        sound = output.add_stream(audio, rate=SAMPLE_RATE, layout="mono") if audio else None
        for frame in frames:
            output.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(video.encode(None))
        if sound is not None:
            seconds = np.arange(SAMPLE_RATE * len(frames) // fps) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                output.mux(sound.encode(chunk))
            output.mux(sound.encode(None))
    return path


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


@pytest.fixture(scope="module")
def colorizer(tiny_model: Path) -> Colorizer:
    return Colorizer.load(tiny_model)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", pan_frames(8, 48, 32))


def test_round_trip_keeps_frames_size_rate_and_audio(colorizer: Colorizer, clip: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "colorized.mp4"
    report = colorize_video(colorizer, clip, target, batch_size=3)
    source, result = probe_video(clip), probe_video(target)
    assert (result.width, result.height) == (source.width, source.height) == (48, 32)
    assert result.fps == source.fps == Fraction(FPS)
    assert len(list(read_frames(target))) == len(list(read_frames(clip))) == report.frames == 8
    assert result.codec == "h264" and report.audio == "copied (aac)"
    assert audio_packets(target) == audio_packets(clip)  # remuxed bit for bit, not re-encoded
    with av.open(str(clip)) as a, av.open(str(target)) as b:  # same timestamps, frame by frame
        assert [f.time for f in a.decode(video=0)] == pytest.approx([f.time for f in b.decode(video=0)])
    frames = list(read_frames(target))
    assert max(np.ptp(f.astype(int), axis=2).mean() for f in frames) > 1.0  # it is colored
    assert sorted(p.name for p in target.parent.iterdir()) == ["colorized.mp4"]  # no temp left


def test_odd_size_and_audio_reencoded_for_webm(colorizer: Colorizer, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "odd.mp4", pan_frames(4, 47, 33))
    target = tmp_path / "odd.webm"  # WebM cannot hold AAC: re-encoded (and said so)
    report = colorize_video(colorizer, clip, target)
    info = probe_video(target)
    assert (info.width, info.height, info.fps) == (47, 33, Fraction(FPS))
    assert len(list(read_frames(target))) == 4
    assert info.audio_codec == "opus" and report.audio.startswith("re-encoded aac -> libopus")


def test_video_without_audio(colorizer: Colorizer, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "silent.mp4", pan_frames(3, 32, 32), audio=None)
    report = colorize_video(colorizer, clip, tmp_path / "silent-out.mp4")
    assert report.audio == "none" and probe_video(tmp_path / "silent-out.mp4").audio_codec is None


def test_temporal_consistency_lowers_flicker(colorizer: Colorizer) -> None:
    # Film grain makes an independent per-frame colorization flicker; the smoother must not.
    frames = [Image.fromarray(f) for f in pan_frames(10, 64, 48, noise=12.0, seed=3)]
    flicker = {}
    for temporal in (True, False):
        colorize_frames = FrameColorizer(colorizer, temporal=temporal)
        outputs = colorize_frames(frames[:4]) + colorize_frames(frames[4:])  # state spans batches
        flicker[temporal] = measure_flicker(outputs)
    assert flicker[True] < 0.75 * flicker[False]


def test_on_frame_sees_what_is_encoded(colorizer: Colorizer, clip: Path, tmp_path: Path) -> None:
    seen: list[np.ndarray] = []
    colorize_video(colorizer, clip, tmp_path / "seen.mp4", on_frame=seen.append)
    decoded = list(read_frames(tmp_path / "seen.mp4"))
    assert len(seen) == len(decoded) == 8
    # H.264 at CRF 18 with 4:2:0 chroma: close to, not exactly, the colorized frames.
    assert np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(seen, decoded)]) < 4.0


def test_smoother_carries_color_along_the_motion() -> None:
    # A bright square moves 3 px right; the previous chroma must follow it, not stay behind.
    def frame(left: int) -> tuple[torch.Tensor, torch.Tensor]:
        lightness = torch.full((1, 1, 32, 32), -0.6)
        lightness[..., 10:20, left : left + 10] = 0.6
        ab = torch.zeros(1, 2, 32, 32)
        ab[:, 0, 10:20, left : left + 10] = 0.5  # the square is red
        return lightness, ab

    smoother = TemporalSmoother(blend=1.0)  # keep only the warped previous chroma where reliable
    smoother(*frame(8))
    lightness, _ = frame(11)
    out = smoother(lightness, torch.zeros(1, 2, 32, 32))  # new prediction says: no color at all
    assert out[0, 0, 12:18, 13:19].mean() > 0.4  # the red moved with the square
    assert out[0, 0, 12:18, 2:8].abs().max() < 0.05  # and did not stay where the square was


def test_flicker_meter_ignores_moving_content() -> None:
    still = np.full((16, 16, 3), 120, np.uint8)
    tinted = still.copy()
    tinted[..., 0] += 4  # same-ish lightness, different color: flicker
    assert measure_flicker([still, still, still]) == 0.0
    assert measure_flicker([still, tinted]) > 1.0
    meter = FlickerMeter(l_threshold=1.0)
    meter.add(still)
    meter.add(np.full((16, 16, 3), 200, np.uint8))  # brighter: motion, not counted
    assert meter.pixels == 0


@pytest.mark.parametrize("content", [b"not a video at all" * 50, "truncated"])
def test_corrupt_video_gives_one_line_and_no_output(
    colorizer: Colorizer, tiny_model: Path, clip: Path, tmp_path: Path, content: bytes | str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.mp4"
    data = clip.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    out_dir = tmp_path / "out"
    with pytest.raises(ChromalabError) as error:
        colorize_video(colorizer, bad, out_dir / "bad.mp4")
    assert "bad.mp4" in str(error.value) and "\n" not in str(error.value)
    assert not any(out_dir.iterdir())
    status = main(["colorize", str(bad), "--model", str(tiny_model), "--out", str(out_dir)])
    err = capsys.readouterr().err.strip()
    assert status != 0 and len(err.splitlines()) == 1 and "bad.mp4" in err
    assert not any(out_dir.iterdir())


def test_cli_colorizes_a_clip_and_keeps_existing_outputs(tiny_model: Path, clip: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "clip-color.mp4"
    assert main(["colorize", str(clip), "--model", str(tiny_model), "--out", str(target),
                 "--no-temporal", "--saturation", "0"]) == 0
    assert "8 frames" in capsys.readouterr().out
    gray = list(read_frames(target))
    assert max(np.ptp(f.astype(int), axis=2).max() for f in gray) <= 6  # saturation 0: gray
    before = target.read_bytes()
    assert main(["colorize", str(clip), "--model", str(tiny_model), "--out", str(target)]) == 1
    assert "exists" in capsys.readouterr().err
    assert target.read_bytes() == before
