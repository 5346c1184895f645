"""Regression: the generator predicts chroma and is trained by the reconstruction loss."""

from __future__ import annotations

from typing import Any

import torch

from chromalab.losses.reconstruction import ReconstructionLoss
from chromalab.training.objective import ColorizationObjective, register_objective


@register_objective("regression", "a pixel loss (L1, L2, Huber) on the colors, plus an optional perceptual loss")
class RegressionObjective(ColorizationObjective):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.criterion = ReconstructionLoss(self.cfg.loss, self.space)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.criterion(self.net(l_norm), target, l_norm)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=False)
        self.log("loss", terms["total"], prog_bar=True, logger=False)
        return terms["total"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.criterion(self.net(l_norm), target, l_norm)
        self.log("val/loss", terms["total"], prog_bar=True, sync_dist=True)
