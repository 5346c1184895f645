"""GAN losses: vanilla (BCE with logits), LSGAN, WGAN-GP and hinge.

Discriminator outputs may be one tensor or a list (multiscale and U-Net discriminators);
every output is scored alike and the losses are averaged over outputs. Each output is
averaged over its batch and positions (patches, pixels), so a PatchGAN's loss is the mean
over its patches.

Label smoothing (``real_label`` < 1, e.g. 0.9) is one-sided, as Salimans et al. recommend:
only the discriminator's real targets are softened; the generator still aims at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from chromalab.precision import full_precision
from chromalab.registry import Registry

Outputs = torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class GanLoss:
    """One GAN loss as its two per-output terms; ``discriminator_loss`` and ``generator_loss``
    average them over a discriminator's outputs."""

    # (real scores, fake scores, real label, fake label) -> the discriminator's loss
    discriminator_term: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]
    generator_term: Callable[[torch.Tensor], torch.Tensor]  # fake scores -> the generator's loss


GAN_LOSS_REGISTRY: Registry[GanLoss] = Registry("GAN loss")
# vanilla and lsgan halve the discriminator's loss, as in pix2pix, so that D learns at half G's
# rate; the WGAN loss is the plain critic loss (``gradient_penalty`` is added by the caller).
GAN_LOSS_REGISTRY.add("vanilla", GanLoss(
    lambda r, f, real, fake: 0.5 * (F.binary_cross_entropy_with_logits(r, torch.full_like(r, real))
                                    + F.binary_cross_entropy_with_logits(f, torch.full_like(f, fake))),
    # non-saturating: -log D(G(x))
    lambda f: F.binary_cross_entropy_with_logits(f, torch.ones_like(f)),
), "binary cross-entropy on logits (Goodfellow et al.; non-saturating generator loss)")
GAN_LOSS_REGISTRY.add("lsgan", GanLoss(
    lambda r, f, real, fake: 0.5 * (F.mse_loss(r, torch.full_like(r, real)) + F.mse_loss(f, torch.full_like(f, fake))),
    lambda f: F.mse_loss(f, torch.ones_like(f)),  # pulls towards the real label 1
), "least squares (Mao et al.): smoother gradients than vanilla")
GAN_LOSS_REGISTRY.add("wgan-gp", GanLoss(
    lambda r, f, real, fake: f.mean() - r.mean(),
    lambda f: -f.mean(),  # maximize the critic's score
), "Wasserstein critic loss plus a gradient penalty (gan.gp_weight); use gan.n_critic 5")
GAN_LOSS_REGISTRY.add("hinge", GanLoss(
    lambda r, f, real, fake: F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean(),
    lambda f: -f.mean(),
), "hinge loss (SAGAN, BigGAN): the discriminator stops pushing beyond a margin")

GAN_LOSSES = GAN_LOSS_REGISTRY.names()


def as_list(outputs: Outputs) -> list[torch.Tensor]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _average(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(values).mean()


def check_gan_loss(kind: str) -> str:
    """The registered name of GAN loss ``kind``; an unknown one is a one-line UnknownNameError."""
    return GAN_LOSS_REGISTRY.canonical(kind)


@full_precision  # a bf16 discriminator's scores are judged in fp32
def discriminator_loss(
    kind: str, real: Outputs, fake: Outputs, real_label: float = 1.0, fake_label: float = 0.0
) -> torch.Tensor:
    """The discriminator's loss on its outputs for real and generated colorings (see GAN_LOSS_REGISTRY)."""
    term = GAN_LOSS_REGISTRY.get(kind).discriminator_term
    return _average([term(r, f, real_label, fake_label) for r, f in zip(as_list(real), as_list(fake), strict=True)])


@full_precision
def generator_loss(kind: str, fake: Outputs) -> torch.Tensor:
    """The generator's adversarial loss on the discriminator's outputs for its colorings."""
    term = GAN_LOSS_REGISTRY.get(kind).generator_term
    return _average([term(f) for f in as_list(fake)])


def gradient_penalty(
    critic: Callable[[torch.Tensor], Outputs],
    real: torch.Tensor,
    fake: torch.Tensor,
    epsilon: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates.

    ``x_hat = eps * real + (1 - eps) * fake`` with eps ~ U(0, 1) per sample (or the given
    ``epsilon``, shape (B,)). ``critic`` maps colors to outputs (the caller joins the L
    condition, which is the same for real and fake, so only the colors are interpolated).
    A per-sample score is the mean of an output over its positions; the penalty is
    averaged over samples and over the critic's outputs. The graph is kept
    (``create_graph``) so the penalty itself can be minimized.
    """
    fake = fake.detach()
    real = real.detach()
    if epsilon is None:
        epsilon = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = epsilon.view(-1, *([1] * (real.dim() - 1)))
    interpolates = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    penalties = []
    for output in as_list(critic(interpolates)):
        score = output.flatten(1).mean(dim=1).sum()  # samples are independent: one backward
        (gradient,) = torch.autograd.grad(score, interpolates, create_graph=True)
        penalties.append(((gradient.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean())
    return _average(penalties)


def mean_scores(kind: str, outputs: Outputs) -> torch.Tensor:
    """A readable summary of D's outputs for logging: mean probability (vanilla) or mean score."""
    values = [torch.sigmoid(o).mean() if kind == "vanilla" else o.mean() for o in as_list(outputs)]
    return _average([v.detach() for v in values])
