"""Classification over quantized a*b*: soft-encoded, class-rebalanced cross-entropy (Zhang 2016).

Class rebalancing. Most pixels of most photos are nearly gray, so plain cross-entropy learns
to predict desaturated colors. Zhang et al. weight each pixel by the rarity of its color:

    p  = the empirical distribution of a*b* cells over training pixels,
    p~ = p smoothed with a Gaussian kernel (sigma = 5 a*b* units) over the cells,
    w  proportional to ((1 - lambda) p~ + lambda / Q) ** -1,   lambda = 0.5,
    normalized so that the expected weight under p~ is 1:  sum_q p~_q w_q = 1.

Each pixel's cross-entropy is multiplied by w of its *nearest* cell.

Where p comes from: at setup, one pass over ``classify.prior_photos`` training photos (500
by default, the training size, no augmentation) counts the cells of every pixel. Without a
datamodule (a bare DataLoader), the first training batch is used instead. The weights live in
the objective (and so in Lightning checkpoints, for resuming) but not in the model file:
inference decodes with the annealed mean and never needs them.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from chromalab.color import denormalize_ab
from chromalab.errors import ChromalabError
from chromalab.models.blocks import pad_to_multiple
from chromalab.models.classify import NUM_BINS, bin_centers, nearest_bin, soft_encode
from chromalab.precision import full_precision
from chromalab.training.objective import ColorizationObjective, register_objective

log = logging.getLogger(__name__)
TARGET_STRIDE = 4  # the logits' resolution relative to the input


def smoothed_distribution(counts: torch.Tensor, centers: torch.Tensor, sigma: float) -> torch.Tensor:
    """Counts per cell -> p~: each cell's mass spread over the cells by a Gaussian in a*b*.

    The kernel is normalized per source cell, so mass is conserved (p~ sums to 1).
    """
    probabilities = counts.double() / counts.sum().clamp_min(1)
    distances = torch.cdist(centers.double(), centers.double()).square()
    kernel = torch.exp(-distances / (2.0 * sigma**2))
    kernel = kernel / kernel.sum(0, keepdim=True)  # column q' spreads p_q' over all q
    return (kernel @ probabilities).float()


def rebalancing_weights(smoothed: torch.Tensor, mix: float = 0.5) -> torch.Tensor:
    """w ~ ((1 - mix) p~ + mix / Q)^-1, scaled so that sum_q p~_q w_q = 1."""
    weights = 1.0 / ((1.0 - mix) * smoothed + mix / smoothed.numel())
    return weights / (smoothed * weights).sum()


@register_objective("classification", "Zhang et al.: rebalanced cross-entropy over quantized ab bins")
class ClassificationObjective(ColorizationObjective):
    def __init__(self, config: dict[str, Any]) -> None:
        config = copy.deepcopy(config)
        # The decoding temperature of the classify section is the model's inference default.
        section = config.get("classify") or {}
        config["model"]["kwargs"] = {"temperature": section.get("temperature", 0.38)} | dict(
            config["model"].get("kwargs") or {}
        )
        if (config["model"].get("color_space") or "lab").lower() != "lab":
            raise ChromalabError("the classify model classifies a*b* cells: train it with color_space lab")
        super().__init__(config)
        self.register_buffer("centers", bin_centers(), persistent=False)
        self.register_buffer("bin_weights", torch.ones(NUM_BINS))
        self.register_buffer("empirical", torch.zeros(NUM_BINS))  # p~, kept for inspection
        self.register_buffer("estimated", torch.zeros((), dtype=torch.bool))

    # --- the rebalancing prior ----------------------------------------------------------------
    @torch.no_grad()
    def estimate_rebalancing(self, batches: Iterable[torch.Tensor]) -> None:
        """Count the a*b* cells of uint8 RGB batches and set p~ and the weights from them."""
        counts = torch.zeros(NUM_BINS, dtype=torch.float64, device=self.centers.device)
        was_training = self.training
        self.train(False)  # no augmentation: the photos as they are
        for batch in batches:
            _, target, _ = self.prepare_batch(batch.to(self.centers.device))
            cells = nearest_bin(denormalize_ab(target), self.centers)
            counts += torch.bincount(cells.flatten(), minlength=NUM_BINS).double()
        self.train(was_training)
        cfg = self.cfg.classify
        smoothed = smoothed_distribution(counts, self.centers, cfg.sigma)
        self.empirical.copy_(smoothed)
        self.bin_weights.copy_(rebalancing_weights(smoothed, cfg.rebalance_lambda))
        self.estimated.fill_(True)

    def setup(self, stage: str) -> None:
        if stage != "fit" or bool(self.estimated):
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        dataset = getattr(datamodule, "train_set", None)
        if dataset is None:
            return  # estimated from the first training batch instead
        count = min(len(dataset), self.cfg.classify.prior_photos)
        subset = torch.utils.data.Subset(dataset, range(count))
        self.estimate_rebalancing(DataLoader(subset, batch_size=64, num_workers=0))
        log.info("class rebalancing estimated from %d training photos", count)

    # --- the loss -----------------------------------------------------------------------------
    def classification_loss(self, l_norm: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rebalanced soft cross-entropy at 1/4 resolution, plus its unweighted value."""
        net = self.net
        padded, _ = pad_to_multiple(l_norm, 2**net.depth)
        if padded.shape[-2:] != l_norm.shape[-2:]:
            pad = (0, padded.shape[-1] - l_norm.shape[-1], 0, padded.shape[-2] - l_norm.shape[-2])
            target = F.pad(target, pad, mode="replicate")
        return self.rebalanced_cross_entropy(net(padded), target)

    @full_precision  # a bf16 network's logits: the softmax and the sums in fp32
    def rebalanced_cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        # The target at the logits' resolution, as in the paper (chroma is smooth).
        ab = denormalize_ab(F.adaptive_avg_pool2d(target, logits.shape[-2:]))
        cfg = self.cfg.classify
        soft = soft_encode(ab, self.centers, cfg.neighbours, cfg.sigma)
        per_pixel = -(soft * F.log_softmax(logits, dim=1)).sum(1)  # (B, h, w)
        pixel_weights = self.bin_weights[nearest_bin(ab, self.centers)]
        return {"total": (pixel_weights * per_pixel).mean(), "cross_entropy": per_pixel.mean()}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if not bool(self.estimated):
            log.warning("no datamodule: class rebalancing estimated from the first training batch")
            self.estimate_rebalancing([batch])
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.classification_loss(l_norm, target)
        self.log_dict({f"train/{k}": v for k, v in terms.items()})
        self.log("loss", terms["total"], prog_bar=True, logger=False)
        return terms["total"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.classification_loss(l_norm, target)
        self.log("val/loss", terms["total"], prog_bar=True, sync_dist=True)
        self.log("val/cross_entropy", terms["cross_entropy"], sync_dist=True)
