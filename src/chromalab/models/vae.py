"""Conditional VAEs: colors = decoder(L, z), with z from the photo's colors (training) or the prior.

Training (chromalab.training.variational) encodes the true chroma into a posterior
q(z | L, ab) = N(mu, exp(logvar)), decodes a sample of it, and pays reconstruction plus
beta x KL(q || N(0, I)). Colorizing draws z ~ N(0, temperature^2 I): each z is one plausible
colorization, and a seeded generator makes a draw reproducible.

Two families share one U-Net over L (pix2pix Down/UpBlocks from models/blocks.py):

* ``vae`` - a *global* latent vector (one per photo, like "a warmer or a cooler version"),
  injected into every decoder step by FiLM (per-channel scale and shift);
* ``unet-vae`` - a *spatial* latent at the U-Net's bottleneck (1/2**depth resolution), so
  different regions can take different colors; it is concatenated with the bottleneck.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chromalab.models.base import ColorizationNet
from chromalab.models.blocks import DownBlock, UpBlock, pad_to_multiple
from chromalab.models.registry import register_model


def encoder_widths(depth: int, width: int, max_width: int) -> list[int]:
    return [min(width * 2**i, max_width) for i in range(depth)]


def sample_prior(
    shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None, temperature: float
) -> torch.Tensor:
    noise = torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    return noise * temperature


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


class LTrunk(nn.Module):
    """A pix2pix U-Net over L whose decoder accepts a latent code.

    ``bottleneck_extra`` channels are concatenated to the bottleneck (the spatial latent);
    ``film`` gives per-channel (scale, shift) pairs for every decoder step (the global latent).
    """

    def __init__(self, out_channels: int, depth: int, width: int, max_width: int, norm: str,
                 bottleneck_extra: int = 0) -> None:
        super().__init__()
        self.depth = depth
        widths = encoder_widths(depth, width, max_width)
        self.encoder = nn.ModuleList(
            DownBlock(1 if i == 0 else widths[i - 1], widths[i], norm, first=i == 0) for i in range(depth)
        )
        decoder, self.decoder_widths = [], []
        for i in reversed(range(depth)):
            cin = widths[i] + bottleneck_extra if i == depth - 1 else widths[i] * 2
            cout = widths[i - 1] if i > 0 else width
            decoder.append(UpBlock(cin, cout, norm))
            self.decoder_widths.append(cout)
        self.decoder = nn.ModuleList(decoder)
        self.head = nn.Sequential(
            nn.Conv2d(width + 1, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1), nn.Tanh(),
        )

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.encoder:
            x = block(x)
            features.append(x)
        return features

    def decode(
        self, x: torch.Tensor, features: list[torch.Tensor],
        bottleneck_extra: torch.Tensor | None = None, film: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        skips = list(features)
        h = skips.pop()
        if bottleneck_extra is not None:
            h = torch.cat([h, bottleneck_extra], dim=1)
        for step, block in enumerate(self.decoder):
            h = block(h)
            if film is not None:
                scale, shift = film[step]
                h = h * (1.0 + scale[..., None, None]) + shift[..., None, None]
            if skips:
                h = torch.cat([h, skips.pop()], dim=1)
        return self.head(torch.cat([h, x], dim=1))


class VaeColorizer(ColorizationNet):
    """Global latent: an encoder over (L, ab) -> (mu, logvar) of ``latent_dim``; FiLM decoder."""

    def __init__(
        self,
        out_channels: int = 2,
        latent_dim: int = 32,
        depth: int = 4,
        width: int = 24,
        max_width: int = 128,
        encoder_width: int = 16,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.latent_dim = latent_dim
        self.trunk = LTrunk(out_channels, depth, width, max_width, norm)
        widths = encoder_widths(depth, encoder_width, max_width)
        self.posterior = nn.Sequential(
            *(DownBlock(1 + out_channels if i == 0 else widths[i - 1], widths[i], norm, first=i == 0)
              for i in range(depth)),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], 2 * latent_dim),
        )
        self.film = nn.ModuleList(nn.Linear(latent_dim, 2 * c) for c in self.trunk.decoder_widths)

    def decode(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        film = [tuple(layer(z).chunk(2, dim=1)) for layer in self.film]
        return self.trunk.decode(x, self.trunk.encode(x), film=film)  # type: ignore[arg-type]

    def forward(
        self, l_norm: torch.Tensor, target: torch.Tensor | None = None, sample: bool = True,
        generator: torch.Generator | None = None, temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction, mu, logvar): z from q(z | L, target) (its mean if not ``sample``), or
        from the prior when no target is given (then mu = logvar = 0)."""
        x, (height, width) = pad_to_multiple(l_norm, 2**self.trunk.depth)
        batch = l_norm.shape[0]
        if target is None:
            mu = logvar = l_norm.new_zeros(batch, self.latent_dim)
            z = sample_prior((batch, self.latent_dim), l_norm, generator, temperature)
        else:
            target, _ = pad_to_multiple(target, 2**self.trunk.depth)
            mu, logvar = self.posterior(torch.cat([x, target], dim=1)).chunk(2, dim=1)
            z = reparameterize(mu, logvar) if sample else mu
        return self.decode(x, z)[..., :height, :width], mu, logvar

    @torch.no_grad()
    def predict(self, l_norm: torch.Tensor, generator: torch.Generator | None = None,
                temperature: float = 1.0, **options: Any) -> torch.Tensor:
        return self(l_norm, generator=generator, temperature=temperature)[0]


class UNetVae(ColorizationNet):
    """Spatial latent: ``latent_channels`` maps at the bottleneck, from (L features, ab)."""

    def __init__(
        self,
        out_channels: int = 2,
        latent_channels: int = 4,
        depth: int = 4,
        width: int = 24,
        max_width: int = 128,
        encoder_width: int = 16,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.latent_channels = latent_channels
        self.trunk = LTrunk(out_channels, depth, width, max_width, norm, bottleneck_extra=latent_channels)
        widths = encoder_widths(depth, encoder_width, max_width)
        self.chroma_encoder = nn.Sequential(
            *(DownBlock(out_channels if i == 0 else widths[i - 1], widths[i], norm, first=i == 0)
              for i in range(depth))
        )
        bottleneck = encoder_widths(depth, width, max_width)[-1]
        # The posterior sees what the decoder will see (L's bottleneck) plus the colors.
        self.posterior_head = nn.Conv2d(bottleneck + widths[-1], 2 * latent_channels, 3, padding=1)

    def forward(
        self, l_norm: torch.Tensor, target: torch.Tensor | None = None, sample: bool = True,
        generator: torch.Generator | None = None, temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction, mu, logvar) with latents (B, latent_channels, H/2**depth, W/2**depth)."""
        x, (height, width) = pad_to_multiple(l_norm, 2**self.trunk.depth)
        features = self.trunk.encode(x)
        bottleneck = features[-1]
        shape = (l_norm.shape[0], self.latent_channels, *bottleneck.shape[-2:])
        if target is None:
            mu = logvar = l_norm.new_zeros(shape)
            z = sample_prior(shape, l_norm, generator, temperature)
        else:
            target, _ = pad_to_multiple(target, 2**self.trunk.depth)
            colors = self.chroma_encoder(target)
            mu, logvar = self.posterior_head(torch.cat([bottleneck, colors], dim=1)).chunk(2, dim=1)
            z = reparameterize(mu, logvar) if sample else mu
        prediction = self.trunk.decode(x, features, bottleneck_extra=z)
        return prediction[..., :height, :width], mu, logvar

    @torch.no_grad()
    def predict(self, l_norm: torch.Tensor, generator: torch.Generator | None = None,
                temperature: float = 1.0, **options: Any) -> torch.Tensor:
        return self(l_norm, generator=generator, temperature=temperature)[0]


@register_model("vae", "conditional VAE: global latent from (L, ab), FiLM-modulated U-Net decoder over L",
                objective="variational")
def vae(**kwargs: Any) -> VaeColorizer:
    return VaeColorizer(**kwargs)


@register_model("unet-vae", "U-Net over L with a spatial latent bottleneck (conditional VAE)",
                objective="variational")
def unet_vae(**kwargs: Any) -> UNetVae:
    return UNetVae(**kwargs)
