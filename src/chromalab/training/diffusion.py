"""Diffusion: noise the true chroma at a random timestep, predict the noise, velocity or clean
chroma (``diffusion.prediction_type``; DDPM, Ho et al.; v-prediction, Salimans & Ho).

The noise schedule and sampler settings of the ``diffusion`` config section are copied into
the model's constructor options, so the trained model file carries them and ``colorize``
samples exactly as configured (``--sampler ddim --steps 50``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from chromalab.errors import ChromalabError
from chromalab.models.diffusion import PREDICTION_TYPES, SAMPLERS
from chromalab.precision import full_precision
from chromalab.training.config import DiffusionConfig
from chromalab.training.objective import ColorizationObjective, register_objective

fp32_mse = full_precision(F.mse_loss)  # a bf16 network's prediction is scored in fp32

VALIDATION_TIMESTEPS = 10  # the fixed t grid of val/loss


# Constructor options that must be one of a few names, and the names.
CHOICES = {"sampler": SAMPLERS, "prediction_type": PREDICTION_TYPES}


def diffusion_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """Constructor options from the ``diffusion`` section; explicit model.kwargs win."""
    section = DiffusionConfig(**(config.get("diffusion") or {}))  # its defaults, stated once
    from_section = {
        "num_train_timesteps": section.timesteps,
        "beta_schedule": section.beta_schedule,
        "sampler": section.sampler,
        "steps": section.steps,
        "prediction_type": section.prediction_type,
    }
    return from_section | dict(config["model"].get("kwargs") or {})


@register_objective("diffusion", "denoising diffusion on the colors, conditioned on L")
class DiffusionObjective(ColorizationObjective):
    def __init__(self, config: dict[str, Any]) -> None:
        config = copy.deepcopy(config)
        config["model"]["kwargs"] = diffusion_kwargs(config)
        for option, allowed in CHOICES.items():
            value = config["model"]["kwargs"][option]
            if value not in allowed:
                raise ChromalabError(f"diffusion.{option} {value!r}: use {', '.join(allowed[:-1])} or {allowed[-1]}")
        # The saved hyper-parameters (and so .ckpt files) now rebuild the same sampler too.
        super().__init__(config)

    def diffusion_terms(
        self, l_norm: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor,
        noise_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """MSE of the prediction (noise, velocity or clean chroma) for the given timesteps (B,)."""
        net = self.net
        padded, (height, width) = net.pad(l_norm)
        if padded.shape[-2:] != l_norm.shape[-2:]:
            target = F.pad(target, (0, padded.shape[-1] - width, 0, padded.shape[-2] - height), mode="replicate")
        x0 = net.encode_chroma(target)
        noise = torch.randn(x0.shape, generator=noise_generator, device=x0.device, dtype=x0.dtype)
        noisy = net.noise_scheduler.add_noise(x0, noise, timesteps)
        return fp32_mse(net(noisy, padded, timesteps), net.training_target(x0, noise, timesteps))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        l_norm, target, _ = self.prepare_batch(batch)
        timesteps = torch.randint(0, self.net.num_train_timesteps, (l_norm.shape[0],), device=l_norm.device)
        loss = self.diffusion_terms(l_norm, target, timesteps)
        self.log("train/mse", loss)
        self.log("loss", loss, prog_bar=True, logger=False)
        return loss

    def validation_loss(self, l_norm: torch.Tensor, target: torch.Tensor, batch_idx: int = 0) -> torch.Tensor:
        """Prediction MSE averaged over a fixed grid of timesteps with seeded noise: deterministic."""
        total = self.net.num_train_timesteps
        grid = torch.linspace(0, total - 1, VALIDATION_TIMESTEPS).round().long().tolist()
        generator = torch.Generator(device=l_norm.device).manual_seed(batch_idx)
        losses = [
            self.diffusion_terms(l_norm, target, torch.full((l_norm.shape[0],), t, device=l_norm.device), generator)
            for t in grid
        ]
        return torch.stack(losses).mean()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        l_norm, target, _ = self.prepare_batch(batch)
        self.log("val/loss", self.validation_loss(l_norm, target, batch_idx), prog_bar=True, sync_dist=True)
