"""Colorizing video files: decode, colorize in batches, keep colors steady, re-encode with audio.

PyAV (FFmpeg inside the wheel) does the decoding, encoding and remuxing. The output keeps the
input's frame count, size, frame rate and timestamps; video is encoded as H.264 (VP9 for
.webm), 4:2:0 chroma (4:4:4 when a side is odd, which 4:2:0 cannot store). The first audio
stream is copied packet for packet when the output container can hold its codec, otherwise
re-encoded (the report says which). Other streams (subtitles, more audio tracks) are dropped.

Temporal consistency: a per-frame model colors the same wall slightly differently from frame
to frame (flicker). :class:`TemporalSmoother` carries the previous output's chroma along the
optical flow (OpenCV Farnebäck on L at model resolution) and blends it with the new
prediction wherever the flow is trustworthy: the forward and backward flows agree and the
warped previous L matches the current L. Static or smoothly moving regions keep their color;
occlusions, cuts and new content take the fresh prediction.

The output is written to a hidden temporary file beside the target and renamed at the end, so
a failure (corrupt input, unsupported codec, Ctrl-C) never leaves a partial file behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import av
import cv2
import numpy as np
import torch
from PIL import Image

from chromalab.atomic import atomic_target
from chromalab.data.images import resolved
from chromalab.errors import ChromalabError
from chromalab.inference.colorizer import AbTransform, Colorizer
from chromalab.inference.fullres import full_resolution_lightness, merge_full_resolution, model_input

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm"})
VIDEO_OPTIONS = {  # encoder -> options; quality high enough that colors are not smeared
    "libx264": {"crf": "18", "preset": "medium"},
    "libvpx-vp9": {"crf": "30", "b": "0", "row-mt": "1"},
}
TEMPORAL_BLEND = 0.85  # weight of the flow-warped previous chroma where the flow is reliable
L_TOLERANCE = 8.0  # L* units: a warped previous pixel this far off the current L gets weight 0
FLICKER_L_THRESHOLD = 1.0  # L* units: pixels whose L* changes less than this count for flicker


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS and not Path(path).name.startswith(".")


# --- temporal consistency ------------------------------------------------------------------


def _farneback(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dense flow (h, w, 2): where each pixel of ``source`` is found in ``target``."""
    return cv2.calcOpticalFlowFarneback(
        source, target, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
        poly_n=5, poly_sigma=1.2, flags=0,
    )


class TemporalSmoother:
    """Blends each frame's predicted chroma with the previous output warped along the flow.

    Call it on consecutive frames' model-size (1, 1, h, w) L and (1, 2, h, w) ab; ``reset()``
    between clips. ``blend`` is the previous frame's weight where the flow is fully reliable
    (0 = off); in a static region the output is an exponential moving average of the
    predictions, so frame-to-frame noise shrinks by about sqrt((1 - blend) / (1 + blend)).
    """

    def __init__(self, blend: float = TEMPORAL_BLEND, l_tolerance: float = L_TOLERANCE) -> None:
        self.blend = blend
        self.l_tolerance = l_tolerance
        self.reset()

    def reset(self) -> None:
        self._lightness: np.ndarray | None = None  # L* of the previous frame (h, w)
        self._ab: np.ndarray | None = None  # the previous *output* chroma (h, w, 2)

    def __call__(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        lightness = ((l_norm[0, 0].float().cpu().numpy() + 1.0) * 50.0).astype(np.float32)
        ab = ab_norm[0].float().cpu().numpy().transpose(1, 2, 0).copy()
        if self._lightness is not None and self._lightness.shape == lightness.shape:
            ab = self._blend(lightness, ab)
        self._lightness, self._ab = lightness, ab
        return torch.from_numpy(ab.transpose(2, 0, 1).copy()).unsqueeze(0).to(ab_norm)

    def _blend(self, lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
        assert self._lightness is not None and self._ab is not None
        current8 = np.clip(lightness * 2.55, 0, 255).round().astype(np.uint8)
        previous8 = np.clip(self._lightness * 2.55, 0, 255).round().astype(np.uint8)
        backward = _farneback(current8, previous8)  # current pixel -> its place in the previous
        forward = _farneback(previous8, current8)
        height, width = lightness.shape
        grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
        map_x, map_y = grid_x + backward[..., 0], grid_y + backward[..., 1]

        def warp(image: np.ndarray) -> np.ndarray:
            return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        warped_ab, warped_l, forward_there = warp(self._ab), warp(self._lightness), warp(forward)
        # Forward-backward check (Sundaram et al. 2010): going back and forth returns home.
        round_trip = np.square(backward + forward_there).sum(axis=2)
        tolerance = 0.01 * (np.square(backward).sum(axis=2) + np.square(forward_there).sum(axis=2)) + 0.5
        inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
        # Compared after a light blur, so grain and noise do not read as occlusions.
        error = np.abs(cv2.GaussianBlur(lightness, (5, 5), 1.0) - cv2.GaussianBlur(warped_l, (5, 5), 1.0))
        similarity = np.clip(1.0 - error / self.l_tolerance, 0.0, 1.0)
        weight = (self.blend * similarity * ((round_trip <= tolerance) & inside))[..., None]
        return (weight * warped_ab + (1.0 - weight) * ab).astype(np.float32)


# --- flicker ---------------------------------------------------------------------------------


class FlickerMeter:
    """Mean |Δab| (Euclidean, Lab units) between consecutive frames where L* barely changes.

    Only pixels whose L* changes by less than ``l_threshold`` between the two frames count:
    there the content is (nearly) the same, so any change of color is flicker, not motion.
    """

    def __init__(self, l_threshold: float = FLICKER_L_THRESHOLD) -> None:
        self.l_threshold = l_threshold
        self._previous: np.ndarray | None = None
        self.total = 0.0
        self.pixels = 0
        self.per_frame: list[float] = []  # mean |Δab| of each consecutive pair (nan: no pixel)

    def add(self, rgb: np.ndarray) -> None:
        """One frame, (H, W, 3) uint8 sRGB, in display order."""
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        if self._previous is not None and self._previous.shape == lab.shape:
            steady = np.abs(lab[..., 0] - self._previous[..., 0]) < self.l_threshold
            change = np.linalg.norm(lab[..., 1:] - self._previous[..., 1:], axis=2)
            self.total += float(change[steady].sum())
            self.pixels += int(steady.sum())
            self.per_frame.append(float(change[steady].mean()) if steady.any() else float("nan"))
        self._previous = lab

    @property
    def value(self) -> float:
        return self.total / self.pixels if self.pixels else 0.0


def measure_flicker(frames: Iterator[np.ndarray] | Sequence[np.ndarray], l_threshold: float = FLICKER_L_THRESHOLD) -> float:
    meter = FlickerMeter(l_threshold)
    for frame in frames:
        meter.add(frame)
    return meter.value


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded frames of a video as (H, W, 3) uint8 RGB (for checks and benchmarks)."""
    with _open_input(Path(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


# --- probing and opening ----------------------------------------------------------------------


@dataclass
class VideoInfo:
    frames: int  # from the container; an estimate for some formats (0 if unknown)
    width: int
    height: int
    fps: Fraction
    codec: str
    audio_codec: str | None


def _ffmpeg_reason(error: BaseException) -> str:
    if isinstance(error, av.FFmpegError):
        return error.strerror or type(error).__name__
    return str(error).split("\n")[0] or type(error).__name__


def _open_input(path: Path) -> "av.container.InputContainer":
    if not path.exists():
        raise ChromalabError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ChromalabError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise ChromalabError(f"{path}: not a readable video ({_ffmpeg_reason(error)})") from None
    if not container.streams.video:
        container.close()
        raise ChromalabError(f"{path}: contains no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.width or not stream.height:
        container.close()
        raise ChromalabError(f"{path}: video codec {stream.codec.name if stream.codec else '?'} cannot be decoded")
    return container


def _frame_rate(stream: "av.video.stream.VideoStream") -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise ChromalabError("video has no frame rate")
    return Fraction(rate)


def probe_video(path: str | Path) -> VideoInfo:
    path = Path(path)
    with _open_input(path) as container:
        stream = container.streams.video[0]
        fps = _frame_rate(stream)
        frames = stream.frames
        if not frames and stream.duration and stream.time_base:
            frames = int(round(float(stream.duration * stream.time_base) * fps))
        elif not frames and container.duration:
            frames = int(round(container.duration / av.time_base * fps))
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(frames, stream.width, stream.height, fps, stream.codec_context.name, audio)


# --- colorizing a file ------------------------------------------------------------------------


@dataclass
class VideoReport:
    source: Path
    target: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    codec: str  # the encoder used for the output video
    audio: str  # "none", "copied (aac)" or "re-encoded pcm_s16le -> aac (...)"
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def output_video_path(source: Path, out: Path) -> Path:
    """``--out`` naming a video file is the output; otherwise it is a folder for ``<name><ext>``."""
    return out if is_video_path(out) else out / source.name


class _AudioPassthrough:
    """Copies (or, where the container cannot hold the codec, re-encodes) one audio stream."""

    def __init__(self, source: "av.audio.stream.AudioStream", output: "av.container.OutputContainer") -> None:
        self.source = source
        self.output = output
        name = source.codec_context.name
        self.copy = name in output.supported_codecs
        if self.copy:
            self.stream = output.add_stream_from_template(source)
            self.description = f"copied ({name})"
            self.resampler = None
        else:
            encoder = "aac" if "aac" in output.supported_codecs else "libopus"
            rate = source.rate if encoder == "aac" else 48000  # Opus only runs at 48 kHz here
            self.stream = output.add_stream(encoder, rate=rate)
            self.resampler = av.AudioResampler(
                format=self.stream.format, layout=source.layout or "stereo", rate=rate
            )
            self.description = f"re-encoded {name} -> {encoder} ({Path(output.name).suffix} cannot hold {name})"

    def handle(self, packet: "av.Packet") -> None:
        if self.copy:
            if packet.dts is None:  # the demuxer's end-of-stream marker, not data
                return
            packet.stream = self.stream
            self.output.mux(packet)
            return
        for frame in packet.decode():
            assert self.resampler is not None
            for resampled in self.resampler.resample(frame):
                resampled.pts = None  # let the encoder number the (re-chunked) samples
                self.output.mux(self.stream.encode(resampled))

    def finish(self) -> None:
        if not self.copy:
            assert self.resampler is not None
            for resampled in self.resampler.resample(None):
                resampled.pts = None
                self.output.mux(self.stream.encode(resampled))
            self.output.mux(self.stream.encode(None))


def _video_encoder(target: Path) -> str:
    return "libvpx-vp9" if target.suffix.lower() == ".webm" else "libx264"


class FrameColorizer:
    """Colorizes consecutive frames of one clip: the network per batch, smoothing frame by frame.

    Frames are PIL images in display order; call it with successive batches, ``reset()``
    before another clip.
    """

    def __init__(self, colorizer: Colorizer, size: int | None = None, ab_transform: AbTransform | None = None,
                 temporal: bool = True, **options: Any) -> None:
        self.colorizer = colorizer
        self.size = size or colorizer.spec.size
        self.ab_transform = ab_transform
        self.smoother = TemporalSmoother() if temporal else None
        self.options = options

    def reset(self) -> None:
        if self.smoother is not None:
            self.smoother.reset()

    @torch.inference_mode()
    def __call__(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """(H, W, 3) uint8 sRGB for each frame, at the frame's own size."""
        l_small = torch.cat([model_input(image, self.size) for image in images])
        ab_small = self.colorizer.predict_ab(l_small, **self.options)
        if self.ab_transform is not None:
            ab_small = self.ab_transform(l_small, ab_small)
        results = []
        for index, image in enumerate(images):
            ab = ab_small[index : index + 1]
            if self.smoother is not None:
                ab = self.smoother(l_small[index : index + 1], ab)
            ab = self.colorizer.finish_ab([image], l_small[index : index + 1], ab)  # the model's smoothing
            results.append(merge_full_resolution(full_resolution_lightness(image), ab))
        return results


def colorize_video(
    colorizer: Colorizer,
    source: str | Path,
    target: str | Path,
    size: int | None = None,
    batch_size: int = 8,
    ab_transform: AbTransform | None = None,
    temporal: bool = True,
    overwrite: bool = False,
    on_progress: Callable[[int], None] | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
    **options: Any,
) -> VideoReport:
    """Colorize ``source`` into ``target`` (same frames, size, rate, timestamps, audio).

    ``on_progress(n)`` follows the frames; ``on_frame(rgb)`` sees every colorized frame before
    it is encoded (e.g. for a FlickerMeter).
    """
    source, target = Path(source), Path(target)
    if not is_video_path(target):
        raise ChromalabError(f"{target}: output must be a video file ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    if source.exists() and target.exists() and resolved(target) == resolved(source):
        raise ChromalabError(f"{target}: refusing to overwrite the input video")
    if target.exists() and not overwrite:
        raise ChromalabError(f"{target}: output exists (use --overwrite to replace it)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ChromalabError(f"{target.parent}: cannot create output folder ({error.strerror})") from None
    started = time.perf_counter()
    try:
        # replace=overwrite: a file saved at the target while the video was encoding is kept.
        with atomic_target(target, replace=overwrite) as temporary, _open_input(source) as container:
            report = _transcode(container, source, temporary, target, colorizer, size, batch_size,
                                ab_transform, temporal, on_progress, on_frame, options)
    except BaseException as error:
        if isinstance(error, (av.FFmpegError, OSError)) and not isinstance(error, ChromalabError):
            raise ChromalabError(f"{source}: {_ffmpeg_reason(error)} while colorizing the video") from None
        raise
    report.seconds = time.perf_counter() - started
    return report


def _transcode(
    container: "av.container.InputContainer", source: Path, temporary: Path, target: Path,
    colorizer: Colorizer, size: int | None, batch_size: int, ab_transform: AbTransform | None,
    temporal: bool, on_progress: Callable[[int], None] | None,
    on_frame: Callable[[np.ndarray], None] | None, options: dict[str, Any],
) -> VideoReport:
    video_in = container.streams.video[0]
    video_in.thread_type = "AUTO"  # frame-parallel decoding
    fps = _frame_rate(video_in)
    width, height = video_in.width, video_in.height
    encoder = _video_encoder(target)
    colorize_frames = FrameColorizer(colorizer, size, ab_transform, temporal, **options)
    frames_written = 0
    with av.open(str(temporary), mode="w") as output:
        video_out = output.add_stream(encoder, rate=fps, options=VIDEO_OPTIONS.get(encoder, {}))
        video_out.width, video_out.height = width, height
        # 4:2:0 needs even sides; odd-sized videos keep full chroma instead of being cropped.
        video_out.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        video_out.time_base = video_in.time_base or Fraction(1, 1) / fps
        audio = _AudioPassthrough(container.streams.audio[0], output) if container.streams.audio else None
        streams = [video_in] + ([audio.source] if audio else [])
        pending: list[av.VideoFrame] = []

        def flush() -> None:
            nonlocal frames_written
            for decoded, rgb in zip(pending, colorize_frames([f.to_image() for f in pending])):
                if on_frame:
                    on_frame(rgb)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = decoded.pts, decoded.time_base
                if frame.pts is None:  # containers without timestamps: number the frames
                    frame.pts, frame.time_base = frames_written, Fraction(1, 1) / fps
                output.mux(video_out.encode(frame))
                frames_written += 1
            if on_progress:
                on_progress(len(pending))
            pending.clear()

        for packet in container.demux(streams):
            if audio and packet.stream is audio.source:
                audio.handle(packet)
                continue
            for decoded in packet.decode():
                pending.append(decoded)
                if len(pending) >= batch_size:
                    flush()
        if pending:
            flush()
        if frames_written == 0:
            raise ChromalabError(f"{source}: no decodable video frames")
        output.mux(video_out.encode(None))
        if audio:
            audio.finish()
    return VideoReport(source, target, frames_written, width, height, fps, encoder,
                       audio.description if audio else "none", seconds=0.0)
