"""Conditional DDPM colorization: a denoiser learns to remove noise from a*b* given L*.

Training (chromalab.training.diffusion) noises the true chroma with diffusers' DDPMScheduler
and teaches the denoiser to predict, per ``prediction_type``, that noise (``epsilon``, Ho et
al.), the velocity ``v = sqrt(abar) * noise - sqrt(1 - abar) * x0`` (``v_prediction``, Salimans
& Ho 2022) or the clean chroma itself (``sample``). Colorizing runs the reverse process from
pure noise, conditioned on the photo's L*, with diffusers' DDPM or DDIM scheduler; different
noise gives different plausible colorizations.

Why v-prediction is the training default: a sampler turns the network's output into an
estimate of the clean chroma at every step. From an epsilon prediction that estimate is
``(x_t - sqrt(1 - abar) * eps) / sqrt(abar)``, and at the first, noisiest steps
``sqrt(abar)`` is ~0.01, so a small error in eps becomes a saturated, photo-wide color cast
(what briefly trained epsilon models showed with DDIM). From v it is
``sqrt(abar) * x_t - sqrt(1 - abar) * v``: no division, no amplification.

The denoiser is diffusers' ``UNet2DModel`` (ResNet blocks, sinusoidal timestep embedding);
only the conditioning and the resolution handling are chromalab's:

* the chroma is diffused at ``1/chroma_stride`` of the photo's resolution and upsampled
  bilinearly at the end (chroma is smooth; Zhang et al. predict it at 1/4 too). That makes
  the denoiser ``chroma_stride**2`` times cheaper, which is what makes CPU training feasible;
* L* is given at full detail through a space-to-depth rearrangement (``pixel_unshuffle``), so
  the input of the U-Net is ``cat(noisy ab, L as stride**2 channels)`` at the chroma's grid;
* the chroma is multiplied by ``chroma_gain`` before noising: normalized a*b* have a small
  spread (most photos stay within +-0.3), and without the gain the signal-to-noise ratio of
  every timestep would be far below what the noise schedule was designed for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from chromalab.models.base import ColorizationNet
from chromalab.models.blocks import pad_to_multiple
from chromalab.models.registry import register_model

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

SAMPLERS = ("ddpm", "ddim")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")  # diffusers' names


class DiffusionColorizer(ColorizationNet):
    """A denoising U-Net over (noisy chroma, L) and its samplers.

    Everything inference needs is a constructor argument, so a model file rebuilds it:
    ``num_train_timesteps``, ``beta_schedule`` and ``prediction_type`` define the noise
    schedule it was trained with and what its output means; ``sampler`` (ddpm or ddim) and
    ``steps`` are the sampling defaults. ``prediction_type`` defaults to epsilon here because
    model files written before it existed were epsilon models; new runs take the config's
    default (``diffusion.prediction_type``, v_prediction).
    """

    def __init__(
        self,
        out_channels: int = 2,
        widths: tuple[int, ...] = (32, 64, 128),
        layers_per_block: int = 1,
        chroma_stride: int = 4,
        chroma_gain: float = 2.0,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        sampler: str = "ddim",
        steps: int = 50,
        prediction_type: str = "epsilon",
    ) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; use {' or '.join(SAMPLERS)}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; use {', '.join(PREDICTION_TYPES)}")
        self.prediction_type = prediction_type
        self.out_channels = out_channels
        self.chroma_stride = chroma_stride
        self.chroma_gain = chroma_gain
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.sampler = sampler
        self.steps = steps
        # diffusers is imported here, not at module level: it takes seconds, and every model
        # module is imported whenever the registry is consulted.
        from diffusers import UNet2DModel

        widths = tuple(int(w) for w in widths)
        self.levels = len(widths)
        self.denoiser = UNet2DModel(
            in_channels=out_channels + chroma_stride**2,
            out_channels=out_channels,
            block_out_channels=widths,
            layers_per_block=layers_per_block,
            down_block_types=("DownBlock2D",) * len(widths),
            up_block_types=("UpBlock2D",) * len(widths),
            norm_num_groups=min(8, widths[0]),
        )
        # The training schedule; it holds no weights, only the noise schedule's constants.
        self.noise_scheduler = self.make_scheduler("ddpm")

    # --- the noise schedule ----------------------------------------------------------------
    def make_scheduler(self, sampler: str) -> "SchedulerMixin":
        """A fresh diffusers scheduler (sampling mutates its timestep state)."""
        from diffusers import DDIMScheduler, DDPMScheduler

        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; use {' or '.join(SAMPLERS)}")
        options: dict[str, Any] = {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": self.beta_schedule,
            "prediction_type": self.prediction_type,
            # Clip the predicted clean chroma to the range the data lives in.
            "clip_sample": True,
            "clip_sample_range": self.chroma_gain,
            # "trailing" starts sampling at the last training timestep (pure noise) whatever
            # the number of steps (Lin et al. 2024); "leading" would skip the noisiest steps.
            "timestep_spacing": "trailing",
        }
        if sampler == "ddim":
            return DDIMScheduler(**options)
        return DDPMScheduler(**options)

    # --- representation of the chroma being diffused ------------------------------------------
    def chroma_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.chroma_stride, width // self.chroma_stride

    def encode_chroma(self, ab_norm: torch.Tensor) -> torch.Tensor:
        """Target chroma (B, 2, H, W) -> the diffused variable x0 at the chroma grid."""
        if self.chroma_stride > 1:
            ab_norm = F.avg_pool2d(ab_norm, self.chroma_stride)
        return ab_norm * self.chroma_gain

    def decode_chroma(self, x0: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        ab = (x0 / self.chroma_gain).clamp(-1.0, 1.0)
        if self.chroma_stride > 1:
            ab = F.interpolate(ab, size=size, mode="bilinear", align_corners=False)
        return ab

    def _multiple(self) -> int:
        # L must tile into the chroma grid, and that grid must survive the U-Net's downsamplings.
        return self.chroma_stride * 2 ** (self.levels - 1)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the denoiser learns to output for ``add_noise(x0, noise, timesteps)``."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return x0
        return self.noise_scheduler.get_velocity(x0, noise, timesteps)

    # --- the denoiser ------------------------------------------------------------------------
    def forward(self, noisy: torch.Tensor, l_norm: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The prediction (noise, velocity or clean chroma, per ``prediction_type``) for noisy
        chroma (B, 2, h, w) at the chroma grid of L (B, 1, H, W).

        L must be a multiple of ``chroma_stride * 2**(levels-1)`` in size (``predict`` and the
        objective pad it); ``timesteps`` is (B,) or a scalar.
        """
        condition = F.pixel_unshuffle(l_norm, self.chroma_stride) if self.chroma_stride > 1 else l_norm
        return self.denoiser(torch.cat([noisy, condition], dim=1), timesteps).sample

    def pad(self, l_norm: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        return pad_to_multiple(l_norm, self._multiple())

    @torch.no_grad()
    def predict(
        self,
        l_norm: torch.Tensor,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Run the reverse process from noise: normalized ab (B, 2, H, W) in [-1, 1]."""
        padded, (height, width) = self.pad(l_norm)
        scheduler = self.make_scheduler(sampler or self.sampler)
        scheduler.set_timesteps(int(steps or self.steps), device=l_norm.device)
        grid = self.chroma_grid(*padded.shape[-2:])
        x = torch.randn(
            (l_norm.shape[0], self.out_channels, *grid),
            generator=generator, device=l_norm.device, dtype=l_norm.dtype,
        )
        for t in scheduler.timesteps:
            output = self(x, padded, t.expand(x.shape[0]))
            x = scheduler.step(output, t, x, generator=generator).prev_sample
        return self.decode_chroma(x, padded.shape[-2:])[..., :height, :width]


@register_model(
    "diffusion",
    "conditional DDPM on ab given L (diffusers U-Net and schedulers; v/epsilon/x0; DDPM or DDIM sampling)",
    objective="diffusion",
)
def diffusion(**kwargs: Any) -> DiffusionColorizer:
    return DiffusionColorizer(**kwargs)
