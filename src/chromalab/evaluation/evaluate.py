"""The evaluation loop: photos -> gray -> each colorizer -> metrics, streamed in batches.

Protocol, per photo: decode (``open_rgb``), resize the shorter side to ``size`` and center-crop
``size`` x ``size`` (``size=0``: keep the full resolution), make the gray version (every pixel
the neutral gray with the photo's CIELAB L*, as uint8 sRGB), colorize that gray image at the
crop's full resolution, and score the output against the original. Nothing but running sums,
per-image scores and a handful of sample thumbnails outlives a batch, so memory does not
grow with the number of photos.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from chromalab.color import (
    denormalize_l,
    float_to_uint8,
    gray_rgb_from_l_norm,
    normalize_l,
    rgb_to_l_norm,
    uint8_to_float,
)
from chromalab.data.folder import list_images
from chromalab.data.images import BadImageError, open_rgb, resize_center_crop
from chromalab.errors import ChromalabError
from chromalab.evaluation import metrics as M
from chromalab.evaluation.fid import FeatureStatistics, InceptionFeatures, fid_from_statistics
from chromalab.evaluation.lpips import LpipsScorer, stlpips_available
from chromalab.evaluation.simulated_points import photo_rng, simulate_points
from chromalab.inference.points import ColorPoint
from chromalab.evaluation.reference_cache import cache_enabled, load_reference, reference_key, save_reference

log = logging.getLogger(__name__)

SAMPLE_COUNT = 8  # photos kept for the sample sheet, spread evenly over the set
SAMPLE_SIDE = 256  # longest side of a kept sample (full-resolution runs keep thumbnails)


class ColorizerLike(Protocol):
    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None,
                        **options: Any) -> list[Image.Image]: ...


@dataclass
class Samples:
    """A few photos as the model saw and colored them, for the sample sheet."""

    paths: list[str] = field(default_factory=list)
    gray: list[Image.Image] = field(default_factory=list)
    truth: list[Image.Image] = field(default_factory=list)
    output: list[Image.Image] = field(default_factory=list)
    points: list[list[ColorPoint]] = field(default_factory=list)  # the color points each was given


@dataclass
class EvaluationResult:
    """One model's scores on one set of photos."""

    name: str
    summary: dict[str, float]
    per_image: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    samples: Samples = field(default_factory=Samples)
    notes: list[str] = field(default_factory=list)

    def write(self, out_dir: str | Path, overwrite: bool = False) -> dict[str, Path]:
        """metrics.json, metrics.md, per_image.csv and samples.png in ``out_dir``."""
        from chromalab.evaluation.report import write_report

        return write_report([self], out_dir, overwrite=overwrite)


# --- inputs ----------------------------------------------------------------------------------


def collect_paths(data: str | Path | Sequence[str | Path], limit: int | None = None) -> list[Path]:
    """A folder (recursive, sorted) or an explicit list of files -> the photos to evaluate."""
    if isinstance(data, (str, Path)):
        root = Path(data)
        if not root.exists():
            raise ChromalabError(f"{root}: no such file or folder")
        paths = list_images(root)
        if not paths:
            raise ChromalabError(f"{root}: contains no images")
    else:
        paths = [Path(p) for p in data]
        if not paths:
            raise ChromalabError("no photos to evaluate")
    if limit is not None:
        if limit < 1:
            raise ChromalabError(f"--limit must be at least 1 (got {limit})")
        paths = paths[:limit]
    return paths


def load_photo(path: Path, size: int) -> Image.Image:
    """Decode and apply the protocol's resize + center crop (``size=0``: as is)."""
    # No JPEG draft decoding: it would change pixel values, and the protocol must be exact.
    image = open_rgb(path)
    if size and image.size != (size, size):
        image = resize_center_crop(image, size)
    return image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 (3, H, W)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)


def to_image(tensor_u8: torch.Tensor) -> Image.Image:
    return Image.fromarray(tensor_u8.permute(1, 2, 0).contiguous().numpy())


def gray_version(truth_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> its neutral gray with the same L* (a* = b* = 0), uint8."""
    rgb = truth_u8.to(torch.float32) / 255.0
    # lab_to_rgb leaves the three channels of a neutral color a rounding error apart, which
    # could differ by one level in uint8; one shared channel makes the gray exactly neutral.
    gray = gray_rgb_from_l_norm(rgb_to_l_norm(rgb)).mean(dim=1, keepdim=True)
    return float_to_uint8(gray).expand(-1, 3, -1, -1).contiguous()


def resolve_metrics(requested: Iterable[str] | None) -> list[str]:
    if requested is None:
        return list(M.METRICS)
    names = list(dict.fromkeys(requested))
    unknown = [n for n in names if n not in M.METRICS]
    if unknown:
        raise ChromalabError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(M.METRICS)}")
    if "images_per_s" not in names:
        names.append("images_per_s")  # free to measure; always reported
    return names


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# --- scoring -----------------------------------------------------------------------------------


@dataclass
class _TruthGroup:
    """Ground truths of one image size, with what every model's scoring reuses."""

    indices: list[int]
    truth: torch.Tensor  # uint8 (B, 3, H, W)
    gray_l: torch.Tensor | None = None  # L* of the gray inputs (B, H, W)
    lab: torch.Tensor | None = None
    colorfulness: torch.Tensor | None = None


class MetricSuite:
    """Computes the requested metrics; loads Inception / ST-LPIPS only when asked for."""

    def __init__(self, names: Sequence[str], device: str) -> None:
        self.names = set(names)
        self.notes: list[str] = []
        self.inception = InceptionFeatures(device) if "fid" in self.names else None
        self.lpips: LpipsScorer | None = None
        if "lpips" in self.names:
            if stlpips_available():
                self.lpips = LpipsScorer(device)
            else:
                self.names.discard("lpips")
                self.notes.append("lpips skipped: stlpips-pytorch is not installed "
                                  "(pip install 'chromalab[lpips]')")
        self.needs_lab = bool(self.names & {"ssim_ab", "ciede2000", "delta_l"})

    def truth_groups(self, truths: list[torch.Tensor], grays: list[torch.Tensor]) -> list[_TruthGroup]:
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, truth in enumerate(truths):
            by_size.setdefault(tuple(truth.shape[-2:]), []).append(index)
        groups = []
        for indices in by_size.values():
            group = _TruthGroup(indices, torch.stack([truths[i] for i in indices]))
            if self.needs_lab:
                group.lab = M.lab_of(group.truth)
            if "delta_l" in self.names:
                group.gray_l = M.lab_of(torch.stack([grays[i] for i in indices]))[:, 0]
            if self.names & {"colorfulness_truth", "delta_colorfulness"}:
                group.colorfulness = M.colorfulness(group.truth)
            groups.append(group)
        return groups

    def features(self, images: list[torch.Tensor]) -> torch.Tensor | None:
        """Inception features of a batch (any sizes: each is resized to 299)."""
        if self.inception is None:
            return None
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(tuple(image.shape[-2:]), []).append(index)
        out = torch.empty(len(images), 2048, dtype=torch.float64)
        for indices in by_size.values():
            out[indices] = self.inception(torch.stack([images[i] for i in indices]))
        return out

    def score(self, group: _TruthGroup, outputs: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """{model: {metric: (B,) scores}} of each model's outputs (B, 3, H, W) uint8."""
        scores = {name: self._score_one(group, output) for name, output in outputs.items()}
        if self.lpips is not None:
            for name, values in self.lpips.distances(group.truth, outputs).items():
                scores[name]["lpips"] = values
        return scores

    def _score_one(self, group: _TruthGroup, output: torch.Tensor) -> dict[str, torch.Tensor]:
        names, truth, scores = self.names, group.truth, {}
        if "psnr" in names:
            scores["psnr"] = M.psnr(output, truth)
        if "ssim" in names:
            scores["ssim"] = M.ssim(output, truth, data_range=255.0)
        if self.needs_lab:
            lab = M.lab_of(output)
            if "ssim_ab" in names:
                scores["ssim_ab"] = M.ssim(lab[:, 1:], group.lab[:, 1:], data_range=M.AB_DATA_RANGE)
            if "ciede2000" in names:
                scores["ciede2000"] = M.ciede2000(group.lab, lab).flatten(1).mean(dim=1)
            if "delta_l" in names:
                scores["delta_l"] = (lab[:, 0] - group.gray_l).abs().flatten(1).mean(dim=1)
        if names & {"colorfulness", "delta_colorfulness"}:
            colorfulness = M.colorfulness(output)
            if "colorfulness" in names:
                scores["colorfulness"] = colorfulness
            if "delta_colorfulness" in names:
                scores["delta_colorfulness"] = colorfulness - group.colorfulness
        if "colorfulness_truth" in names:
            scores["colorfulness_truth"] = group.colorfulness
        return scores


# --- the loop ----------------------------------------------------------------------------------


def _batches(paths: list[Path], batch_size: int, size: int) -> Iterator[list[tuple[Path, Image.Image | str]]]:
    """Decoded batches, the next one decoding in a thread while the current one is scored."""

    def load(chunk: list[Path]) -> list[tuple[Path, Image.Image | str]]:
        loaded: list[tuple[Path, Image.Image | str]] = []
        for path in chunk:
            try:
                loaded.append((path, load_photo(path, size)))
            except BadImageError as error:
                loaded.append((path, error.reason))
        return loaded

    chunks = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future | None = pool.submit(load, chunks[0]) if chunks else None
        for index in range(len(chunks)):
            batch = pending.result()  # type: ignore[union-attr]
            pending = pool.submit(load, chunks[index + 1]) if index + 1 < len(chunks) else None
            yield batch


def damaged_gray(gray_u8: torch.Tensor, path: Path) -> torch.Tensor:
    """A neutral gray uint8 (3, H, W) -> the same photo as an old print (chromalab.data.damage)."""
    from chromalab.data.damage import damage_lightness, photo_generator

    lightness = denormalize_l(rgb_to_l_norm(uint8_to_float(gray_u8.unsqueeze(0))[:, :3]))[:, :1]
    damaged = damage_lightness(lightness, photo_generator(path))
    return gray_version(float_to_uint8(gray_rgb_from_l_norm(normalize_l(damaged))))[0]


def _thumbnail(image: Image.Image) -> Image.Image:
    if max(image.size) <= SAMPLE_SIDE:
        return image.copy()
    small = image.copy()
    small.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.LANCZOS)
    return small


def model_name(colorizer: Any, fallback: str = "model") -> str:
    name = getattr(colorizer, "name", None)
    if name:
        return str(name)
    spec = getattr(colorizer, "spec", None)
    return str(getattr(spec, "name", None) or fallback)


def evaluate_models(
    colorizers: Mapping[str, ColorizerLike],
    data: str | Path | Sequence[str | Path],
    size: int = 256,
    limit: int | None = None,
    batch_size: int = 16,
    metrics: Iterable[str] | None = None,
    progress: bool = True,
    device: str | None = None,
    on_error: Callable[[str], None] | None = None,
    reference_cache: bool | None = None,
    points: int = 0,
    damage: bool = False,
) -> list[EvaluationResult]:
    """Score several colorizers on the same photos in one pass (ground-truth work shared).

    An unreadable photo is skipped (listed in the settings' ``skipped``) and reported once,
    as ``path: reason``, to ``on_error`` (default: the log). ``reference_cache``: read and save
    the ground truths' Inception statistics in the user cache (evaluation.reference_cache;
    None = on unless ``CHROMALAB_FID_CACHE=off``), which halves a one-model FID evaluation
    the second time the same photos are evaluated. ``points``: that many color points per
    photo, simulated from the truth (evaluation.simulated_points), given to every colorizer.
    ``damage``: the gray inputs get old-photo damage (chromalab.data.damage: fade, blur, grain,
    JPEG), seeded by each photo's name; the truth stays the clean photo.
    """
    on_error = on_error or (lambda message: log.warning("skipping %s", message))
    if not colorizers:
        raise ChromalabError("nothing to evaluate: no models given")
    if size < 0:
        raise ChromalabError(f"--size must be 0 (full resolution) or positive (got {size})")
    if batch_size < 1:
        raise ChromalabError(f"--batch-size must be at least 1 (got {batch_size})")
    if points < 0:
        raise ChromalabError(f"--points must be 0 or more (got {points})")
    names = resolve_metrics(metrics)
    paths = collect_paths(data, limit)
    suite = MetricSuite(names, device or default_device())
    sample_at = {int(round(i)) for i in np.linspace(0, len(paths) - 1, min(SAMPLE_COUNT, len(paths)))}

    reference = FeatureStatistics() if suite.inception else None
    measure_reference = reference is not None  # False once the cache has given it
    cache_key = None
    if suite.inception is not None and (cache_enabled() if reference_cache is None else reference_cache):
        cache_key = reference_key(paths, size, suite.inception.identity)
        cached = load_reference(cache_key)
        if cached is not None:
            log.info("FID reference statistics of %d photos from the cache", cached.count)
            reference, measure_reference = cached, False
    statistics = {name: FeatureStatistics() for name in colorizers} if suite.inception else {}
    seconds = dict.fromkeys(colorizers, 0.0)
    per_image: dict[str, list[dict[str, Any]]] = {name: [] for name in colorizers}
    samples = {name: Samples() for name in colorizers}
    skipped: dict[str, str] = {}
    position = 0
    # Without a terminal (logs, CI) the bar is off: a line every tenth of the set instead.
    report_every = max(1, len(paths) // 10)
    next_report = report_every
    started = time.perf_counter()

    with Progress(TextColumn("evaluating {task.fields[what]}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True, disable=not progress) as bar:
        task = bar.add_task("evaluate", total=len(paths), what=", ".join(colorizers))
        for batch_number, batch in enumerate(_batches(paths, batch_size, size)):
            good: list[tuple[Path, Image.Image]] = []
            keep: list[int] = []  # indices into ``good`` of the photos kept as samples
            for path, item in batch:
                if isinstance(item, str):
                    skipped[str(path)] = item
                    on_error(f"{path}: {item}")
                else:
                    if position in sample_at:
                        keep.append(len(good))
                    good.append((path, item))
                position += 1
            bar.advance(task, len(batch) - len(good))
            if not good:
                continue
            truths = [to_tensor(image) for _, image in good]
            grays = [gray_version(t.unsqueeze(0))[0] for t in truths]
            if damage:
                grays = [damaged_gray(gray, path) for gray, (path, _) in zip(grays, good)]
            gray_images = [to_image(g) for g in grays]
            groups = suite.truth_groups(truths, grays)
            if measure_reference:
                reference.update(suite.features(truths))

            # The same points for every model (seeded by the photo's name), from the truth.
            point_sets = [simulate_points(image, points, photo_rng(path)) for path, image in good] if points else None
            for i in keep:
                for samples_of in samples.values():
                    samples_of.points.append(point_sets[i] if point_sets else [])
            outputs: dict[str, list[torch.Tensor]] = {}
            # The models take turns at running first. The model that runs right after the last
            # batch's Inception pass runs up to 2x slower (cold caches, fresh memory), so a fixed
            # order made infer img/s depend on a model's place in the list.
            names_in_turn = list(colorizers)
            turn = batch_number % len(names_in_turn)
            for name in names_in_turn[turn:] + names_in_turn[:turn]:
                colorizer = colorizers[name]
                start = time.perf_counter()
                colored = (colorizer.colorize_images(gray_images, points=point_sets) if point_sets
                           else colorizer.colorize_images(gray_images))
                seconds[name] += time.perf_counter() - start
                outputs[name] = _check_outputs(name, colored, good)
                for i in keep:
                    samples[name].output.append(_thumbnail(colored[i]))
            for name, statistics_of in statistics.items():
                statistics_of.update(suite.features(outputs[name]))
            rows = {name: [{"path": str(path), "width": image.width, "height": image.height}
                           for path, image in good] for name in colorizers}
            for group in groups:
                stacked = {name: torch.stack([images[i] for i in group.indices]) for name, images in outputs.items()}
                for name, scores in suite.score(group, stacked).items():
                    for metric, values in scores.items():
                        for i, value in zip(group.indices, values.tolist()):
                            rows[name][i][metric] = float(value)
            for name in colorizers:
                per_image[name].extend(rows[name])
            for i in keep:
                gray_small, truth_small = _thumbnail(gray_images[i]), _thumbnail(good[i][1])
                for samples_of in samples.values():
                    samples_of.paths.append(str(good[i][0]))
                    samples_of.gray.append(gray_small)
                    samples_of.truth.append(truth_small)
            bar.advance(task, len(good))
            if not progress and position >= next_report:
                elapsed = time.perf_counter() - started
                log.info("evaluated %d/%d photos (%.0f s, about %.0f s left)", position, len(paths),
                         elapsed, elapsed * (len(paths) - position) / position)
                next_report += report_every

    count = len(paths) - len(skipped)
    if count == 0:
        raise ChromalabError(f"none of the {len(paths)} photo(s) could be read (e.g. {next(iter(skipped))})")
    if measure_reference and cache_key is not None and reference.count >= 2:
        save_reference(cache_key, reference)  # only a complete pass gets here
    settings = {
        "data": str(data) if isinstance(data, (str, Path)) else f"{len(paths)} files",
        "size": size,
        "limit": limit,
        "images": count,
        "skipped": skipped,
        "metrics": names,
        "points": points,
        "damage": damage,
        "protocol": (f"shorter side to {size}, center crop {size}x{size}" if size else "full resolution")
        + "; gray input = L* of the photo with a*=b*=0; FID reference = the ground-truth photos"
        + (f"; {points} color point(s) per photo from the truth (uniform, 3x3 mean, seeded by name)" if points else "")
        + ("; gray input damaged as an old photo (fade, blur, grain, JPEG; seeded by name)" if damage else ""),
    }
    results = []
    for name in colorizers:
        fid = fid_from_statistics(reference, statistics[name]) if reference is not None else None
        summary = _summary(suite.names, per_image[name], fid, count / seconds[name] if seconds[name] else math.inf)
        notes = list(suite.notes)
        if fid is not None and count < 2048:
            notes.append(f"fid from {count} photos (fewer than 2048, the feature size: biased upward); "
                         "compare only FIDs measured on the same photos")
        results.append(EvaluationResult(name, summary, per_image[name], dict(settings), samples[name], notes))
    return results


def _summary(names: set[str], rows: list[dict[str, Any]], fid: float | None, images_per_s: float) -> dict[str, float]:
    """Set-level numbers in METRICS order: FID, speed, and the mean of each per-image metric."""
    summary: dict[str, float] = {}
    for metric in M.METRICS:
        if metric not in names:
            continue
        if metric == "fid":
            summary[metric] = math.nan if fid is None else fid
        elif metric == "images_per_s":
            summary[metric] = images_per_s
        else:
            values = [row[metric] for row in rows if metric in row]
            summary[metric] = float(np.mean(values)) if values else math.nan
    return summary


def _check_outputs(name: str, colored: list[Image.Image], good: list[tuple[Path, Image.Image]]) -> list[torch.Tensor]:
    if len(colored) != len(good):
        raise ChromalabError(f"{name}: returned {len(colored)} image(s) for {len(good)} input(s)")
    outputs = []
    for image, (path, truth) in zip(colored, good):
        if image.size != truth.size:
            raise ChromalabError(f"{name}: output for {path} is {image.size}, input was {truth.size}")
        outputs.append(to_tensor(image))
    return outputs


def evaluate(
    colorizer: ColorizerLike,
    data: str | Path | Sequence[str | Path],
    size: int = 256,
    limit: int | None = None,
    batch_size: int = 16,
    metrics: Iterable[str] | None = None,
    progress: bool = True,
    device: str | None = None,
    name: str | None = None,
    reference_cache: bool | None = None,
) -> EvaluationResult:
    """Score one colorizer (a ``Colorizer`` or a baseline) on a folder or list of photos.

    ``size``: shorter side resized to ``size`` and center-cropped square; 0 = full resolution.
    ``metrics``: None = all of ``METRICS``, else a subset. ``device``: where Inception and
    ST-LPIPS run (default: CUDA when available). ``reference_cache``: see ``evaluate_models``.
    See docs/evaluation.md for the protocol.
    """
    label = name or model_name(colorizer)
    return evaluate_models({label: colorizer}, data, size=size, limit=limit, batch_size=batch_size,
                           metrics=metrics, progress=progress, device=device,
                           reference_cache=reference_cache)[0]
