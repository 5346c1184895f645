"""GAN losses: vanilla (BCE with logits), LSGAN, WGAN-GP and hinge.

Discriminator outputs may be one tensor or a list (multiscale and U-Net discriminators);
every output is scored alike and the losses are averaged over outputs. Each output is
averaged over its batch and positions (patches, pixels), so a PatchGAN's loss is the mean
over its patches.

Label smoothing (``real_label`` < 1, e.g. 0.9) is one-sided, as Salimans et al. recommend:
only the discriminator's real targets are softened; the generator still aims at 1.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from chromalab.precision import full_precision

Outputs = torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]

GAN_LOSSES = ("vanilla", "lsgan", "wgan-gp", "hinge")


def as_list(outputs: Outputs) -> list[torch.Tensor]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _average(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(values).mean()


def check_gan_loss(kind: str) -> str:
    kind = kind.lower()
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; use {', '.join(GAN_LOSSES)}")
    return kind


@full_precision  # a bf16 discriminator's scores are judged in fp32
def discriminator_loss(
    kind: str, real: Outputs, fake: Outputs, real_label: float = 1.0, fake_label: float = 0.0
) -> torch.Tensor:
    """The discriminator's loss on its outputs for real and generated colorings.

    vanilla and lsgan are halved, as in pix2pix, so that D learns at half G's rate; the
    WGAN loss is the plain critic loss (the gradient penalty is added by the caller, see
    ``gradient_penalty``).
    """
    kind = check_gan_loss(kind)
    terms = []
    for r, f in zip(as_list(real), as_list(fake), strict=True):
        if kind == "vanilla":
            term = 0.5 * (
                F.binary_cross_entropy_with_logits(r, torch.full_like(r, real_label))
                + F.binary_cross_entropy_with_logits(f, torch.full_like(f, fake_label))
            )
        elif kind == "lsgan":
            term = 0.5 * (F.mse_loss(r, torch.full_like(r, real_label)) + F.mse_loss(f, torch.full_like(f, fake_label)))
        elif kind == "wgan-gp":
            term = f.mean() - r.mean()
        else:  # hinge
            term = F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
        terms.append(term)
    return _average(terms)


@full_precision
def generator_loss(kind: str, fake: Outputs) -> torch.Tensor:
    """The generator's adversarial loss on the discriminator's outputs for its colorings.

    vanilla is the non-saturating -log D(G(x)); lsgan pulls towards the real label 1;
    WGAN and hinge both maximize the critic's score.
    """
    kind = check_gan_loss(kind)
    terms = []
    for f in as_list(fake):
        if kind == "vanilla":
            term = F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
        elif kind == "lsgan":
            term = F.mse_loss(f, torch.ones_like(f))
        else:  # wgan-gp, hinge
            term = -f.mean()
        terms.append(term)
    return _average(terms)


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
