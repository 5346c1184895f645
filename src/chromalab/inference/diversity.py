"""Diverse outputs: several plausible colorizations of one photo, and how different they are.

A model can be sampled in one of two ways:

* **generator** — stochastic models (VAE, diffusion) take ``predict(l_norm, generator=...)``;
  variant k uses ``torch.Generator().manual_seed(k)``. A model says it is one by naming a
  ``generator`` parameter in ``predict`` (or setting ``stochastic = True`` on the network).
* **dropout** — a deterministic network trained with dropout (pix2pix-style ``unet`` with
  ``dropout > 0``) is sampled by switching *only* its Dropout modules to training mode
  (batch-norm statistics stay frozen); variant k seeds the global RNG with k inside a fork.

A network with neither cannot give variants: a one-line ChromalabError says so.

The diversity score is the mean pairwise CIEDE2000 colour difference (ΔE00) between the
variants of a photo, over all pixels (on a copy at most ``SCORE_SIDE`` px long, so the score
costs little on big photos): 0 = identical, ~2 = barely visible, >10 = clearly different
colorizations. ST-LPIPS is added when ``stlpips_pytorch`` can be imported (it needs torchvision).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab
from torch import nn

from chromalab.data.images import BadImageError, check_writable_folder, open_rgb, resolved, save_image_atomic
from chromalab.errors import ChromalabError
from chromalab.inference.colorize import Job, plan_jobs
from chromalab.inference.colorizer import AbTransform, Colorizer

log = logging.getLogger(__name__)

SamplingMode = Literal["generator", "dropout"]
SCORE_SIDE = 256  # diversity is measured on copies at most this many pixels long
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def sampling_mode(net: nn.Module) -> SamplingMode:
    """How this network gives different outputs for one input; ChromalabError if it cannot."""
    predict = getattr(net, "predict", None)
    if getattr(net, "stochastic", False) or (
        predict is not None and "generator" in inspect.signature(predict).parameters
    ):
        return "generator"
    if any(isinstance(m, DROPOUT_TYPES) and m.p > 0 for m in net.modules()):
        return "dropout"
    raise ChromalabError(
        f"model {type(net).__name__} is deterministic (no sampling generator and no dropout), "
        "so --samples cannot give variants; use a VAE or diffusion model, or a U-Net trained with dropout"
    )


@contextlib.contextmanager
def test_time_dropout(net: nn.Module, seed: int) -> Iterator[None]:
    """Dropout modules (only) in training mode, with a seeded RNG that is restored afterwards."""
    dropouts = [m for m in net.modules() if isinstance(m, DROPOUT_TYPES)]
    modes = [m.training for m in dropouts]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            for module in dropouts:
                module.train()
            yield
        finally:
            for module, mode in zip(dropouts, modes):
                module.train(mode)


def sample_variants(
    colorizer: Colorizer,
    images: Sequence[Image.Image],
    samples: int,
    size: int | None = None,
    ab_transform: AbTransform | None = None,
    **options: Any,
) -> list[list[Image.Image]]:
    """``samples`` colorizations of every image (variant k is reproducible: seed k)."""
    if samples < 1:
        raise ChromalabError(f"--samples must be at least 1, got {samples}")
    mode = sampling_mode(colorizer.net)
    if getattr(colorizer, "backend_name", "torch") != "torch":
        # An exported graph has its dropout frozen and no generator: sample the PyTorch network.
        colorizer = Colorizer(colorizer.net, colorizer.spec)
    variants: list[list[Image.Image]] = [[] for _ in images]
    for seed in range(samples):
        if mode == "generator":
            outputs = colorizer.colorize_images(
                images, size=size, ab_transform=ab_transform,
                generator=torch.Generator().manual_seed(seed), **options,
            )
        else:
            with test_time_dropout(colorizer.net, seed):
                outputs = colorizer.colorize_images(images, size=size, ab_transform=ab_transform, **options)
        for index, output in enumerate(outputs):
            variants[index].append(output)
    return variants


def _score_copy(image: Image.Image) -> np.ndarray:
    small = image.convert("RGB")
    small.thumbnail((SCORE_SIDE, SCORE_SIDE), Image.Resampling.BILINEAR)
    return rgb2lab(np.asarray(small, dtype=np.float64) / 255.0)


def mean_pairwise_delta_e(variants: Sequence[Image.Image]) -> float:
    """Mean CIEDE2000 difference over all pixels and all pairs of variants (0 for one)."""
    labs = [_score_copy(image) for image in variants]
    pairs = list(itertools.combinations(labs, 2))
    if not pairs:
        return 0.0
    return float(np.mean([deltaE_ciede2000(a, b).mean() for a, b in pairs]))


@functools.lru_cache(maxsize=1)
def _load_stlpips() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    try:  # optional: stlpips_pytorch imports torchvision, which may not be installed
        from stlpips_pytorch import stlpips

        metric = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False)
    except Exception as error:  # noqa: BLE001 — any import/weights problem means "not available"
        log.debug("ST-LPIPS not available: %s", error)
        return None
    return lambda a, b: metric(a, b, normalize=True)


def mean_pairwise_stlpips(variants: Sequence[Image.Image]) -> float | None:
    """Mean pairwise ST-LPIPS between variants, or None when ST-LPIPS is not available."""
    metric = _load_stlpips()
    if metric is None:
        return None
    tensors = [
        torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        for image in variants
    ]
    with torch.inference_mode():
        scores = [float(metric(a, b).mean()) for a, b in itertools.combinations(tensors, 2)]
    return float(np.mean(scores)) if scores else 0.0


# --- files ------------------------------------------------------------------------------------


@dataclass
class SamplesReport:
    written: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    diversity: dict[Path, float] = field(default_factory=dict)  # input -> mean pairwise ΔE00
    stlpips: dict[Path, float] = field(default_factory=dict)  # input -> mean pairwise ST-LPIPS

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def mean_diversity(self) -> float | None:
        return float(np.mean(list(self.diversity.values()))) if self.diversity else None


def variant_path(target: Path, index: int) -> Path:
    """``photo.png`` -> ``photo-s0.png``, ``photo-s1.png``, ..."""
    return target.with_name(f"{target.stem}-s{index}{target.suffix}")


def colorize_samples(
    colorizer: Colorizer,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    samples: int,
    size: int | None = None,
    batch_size: int = 8,
    overwrite: bool = False,
    image_format: str | None = None,
    ab_transform: AbTransform | None = None,
    with_stlpips: bool = True,
    on_progress: Callable[[int], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> SamplesReport:
    """Write ``samples`` variants of every input photo (``name-s0.png`` ...) and score them."""
    sampling_mode(colorizer.net)  # fail before any work if the model cannot be sampled
    report = SamplesReport()
    on_error = on_error or (lambda message: log.error(message))
    jobs, missing = plan_jobs(inputs, Path(out_dir), image_format)
    for path, reason in missing.items():
        report.failed[path] = reason
        on_error(f"{path}: {reason}")
    if not jobs:
        return report
    check_writable_folder(Path(out_dir))
    protected = frozenset(resolved(job.source) for job in jobs)
    pending: list[Job] = []
    for job in jobs:
        targets = [variant_path(job.target, k) for k in range(samples)]
        clash = next((t for t in targets if resolved(t) in protected or (t.exists() and not overwrite)), None)
        if clash is None:
            pending.append(job)
            continue
        reason = ("output would overwrite an input file" if resolved(clash) in protected
                  else f"output {clash} exists (use --overwrite to replace it)")
        report.failed[job.source] = reason
        on_error(f"{job.source}: {reason}")
    for start in range(0, len(pending), batch_size):
        batch, images = [], []
        for job in pending[start : start + batch_size]:
            try:
                images.append(open_rgb(job.source))
                batch.append(job)
            except BadImageError as error:
                report.failed[job.source] = error.reason
                on_error(str(error))
        for job, variants in zip(batch, sample_variants(colorizer, images, samples, size, ab_transform)):
            try:
                for index, variant in enumerate(variants):
                    target = variant_path(job.target, index)
                    save_image_atomic(variant, target, overwrite=overwrite, protected=protected)
                    report.written.append(target)
            except BadImageError as error:
                report.failed[job.source] = error.reason
                on_error(f"{job.source}: {error.reason}")
                continue
            report.diversity[job.source] = mean_pairwise_delta_e(variants)
            if with_stlpips and (score := mean_pairwise_stlpips(variants)) is not None:
                report.stlpips[job.source] = score
        if on_progress:
            on_progress(len(pending[start : start + batch_size]))
    return report
