"""Point-guided regression: the generator gets simulated user points and learns to spread them.

Zhang et al. 2017's recipe: for every training photo, the number of points is drawn from a
geometric distribution (p = 1/8: about 1 photo in 8 has none, the mean is 7); each point is a
small square (1 to 9 px a side at the training size) at a uniform position, carrying the
truth's mean a*b* over that square. The loss is the same pixel loss as plain regression.
"""

from __future__ import annotations

from typing import Any

import torch

from chromalab.losses.reconstruction import ReconstructionLoss
from chromalab.models.guided import MAX_SIDE
from chromalab.precision import full_precision
from chromalab.training.objective import ColorizationObjective, register_objective

NO_POINT_CHANCE = 1 / 8  # P(no point) of the geometric distribution
MAX_POINTS = 64  # a cap on the geometric tail (P(N > 64) = (7/8)^65 < 0.02%)


def simulate_hints(target_ab: torch.Tensor, generator: torch.Generator | None = None,
                   no_point_chance: float = NO_POINT_CHANCE, max_side: int = MAX_SIDE) -> torch.Tensor:
    """(B, 3, H, W) hints (a, b, mask) drawn from normalized true a*b* (B, 2, H, W)."""
    batch, _, height, width = target_ab.shape
    device = target_ab.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=generator.device if generator else device).to(device)

    counts = torch.floor(torch.log(uniform(batch).clamp_min(1e-12)) / torch.log(torch.tensor(1 - no_point_chance)))
    counts = counts.clamp_max(MAX_POINTS).long()
    slots = max(1, int(counts.max()))
    sides = (uniform(batch, slots) * max_side).long() + 1  # 1 .. max_side
    tops = (uniform(batch, slots) * (height - sides + 1)).long()
    lefts = (uniform(batch, slots) * (width - sides + 1)).long()
    valid = torch.arange(slots, device=device)[None] < counts[:, None]
    rows = torch.arange(height, device=device).view(1, 1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, 1, width)
    inside = ((rows >= tops[..., None, None]) & (rows < (tops + sides)[..., None, None])
              & (cols >= lefts[..., None, None]) & (cols < (lefts + sides)[..., None, None]))
    masks = (inside & valid[..., None, None]).float()  # (B, P, H, W)
    area = masks.sum(dim=(2, 3)).clamp_min(1.0)
    colors = torch.einsum("bphw,bchw->bpc", masks, target_ab.float()) / area[..., None]  # each square's mean
    cover = masks.sum(dim=1, keepdim=True)
    hint_ab = torch.einsum("bphw,bpc->bchw", masks, colors) / cover.clamp_min(1.0)
    return torch.cat([hint_ab, (cover > 0).float()], dim=1)


@register_objective("guided", "regression with simulated user color points as extra input (Zhang et al. 2017)")
class GuidedObjective(ColorizationObjective):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.criterion = ReconstructionLoss(self.cfg.loss, self.space)

    @full_precision
    def hints_for(self, target: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        # Validation draws the same points every time (a seed per batch); training draws anew.
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return simulate_hints(target, generator)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.criterion(self.net(l_norm, self.hints_for(target)), target, l_norm)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=False)
        self.log("loss", terms["total"], prog_bar=True, logger=False)
        return terms["total"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.criterion(self.net(l_norm, self.hints_for(target, seed=batch_idx)), target, l_norm)
        self.log("val/loss", terms["total"], prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        # Only what the network leaves trainable (its point adapters, unless train_base).
        optimizer = self.make_optimizer([p for p in self.net.parameters() if p.requires_grad])
        return {"optimizer": optimizer, "lr_scheduler": self.make_scheduler(optimizer)}
