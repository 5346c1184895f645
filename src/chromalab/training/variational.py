"""Variational: reconstruction of a posterior sample + beta x KL(q(z | L, ab) || N(0, I)).

The KL is in nats per photo (summed over the latent's dimensions, averaged over the batch);
with the default beta = 0.001 it is a light pull toward the prior, enough for prior samples
to decode into plausible colors while z still carries the photo's color choices.
Validation decodes the posterior *mean* (no sampling), so val/loss is deterministic.
"""

from __future__ import annotations

from typing import Any

import torch

from chromalab.losses.reconstruction import ReconstructionLoss
from chromalab.precision import full_precision
from chromalab.training.objective import ColorizationObjective, register_objective


@full_precision
def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dims, batch mean."""
    per_element = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)
    return per_element.flatten(1).sum(1).mean()


@register_objective("variational", "VAE: reconstruction loss plus beta x KL divergence of the latent")
class VariationalObjective(ColorizationObjective):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.criterion = ReconstructionLoss(self.cfg.loss, self.space)

    def variational_terms(self, l_norm: torch.Tensor, target: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
        prediction, mu, logvar = self.net(l_norm, target, sample=sample)
        terms = self.criterion(prediction, target, l_norm)
        terms["recon"] = terms.pop("total")
        terms["kl"] = kl_to_standard_normal(mu, logvar)
        terms["total"] = terms["recon"] + self.cfg.vae.beta * terms["kl"]
        return terms

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.variational_terms(l_norm, target)
        self.log_dict({f"train/{k}": v for k, v in terms.items()})
        self.log("loss", terms["total"], prog_bar=True, logger=False)
        return terms["total"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.variational_terms(l_norm, target, sample=False)
        self.log("val/loss", terms["total"], prog_bar=True, sync_dist=True)
        self.log_dict({f"val/{k}": v for k, v in terms.items() if k != "total"}, sync_dist=True)
