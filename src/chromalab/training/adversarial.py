"""Adversarial training (pix2pix and relatives): any regression generator plus a discriminator.

The generator minimizes ``GAN loss + gan.l1_weight * reconstruction loss``; the
discriminator, conditioned on L, learns to tell real colorings from generated ones. Two
optimizers take turns, so the objective optimizes by hand (Lightning's manual optimization),
which also means gradient clipping is done here (Lightning only clips automatically).

* ``gan.pretrain_epochs``: the generator first trains on the reconstruction loss alone; a
  discriminator facing a generator that already colors plausibly gives more useful
  gradients than one facing noise.
* ``gan.n_critic``: the discriminator steps on every batch, the generator on every n-th
  (WGAN-GP uses 5).
* ``gan.g_lr`` / ``gan.d_lr``: separate learning rates (default ``optim.lr``), each with the
  base warm-up + cosine schedule. The generator's schedule advances every batch; the
  discriminator's every batch of the adversarial phase, so its warm-up is not spent during
  pre-training.

The generator stays under ``net.`` (a checkpoint still rebuilds only the colorizer); the
discriminator lives under ``disc.``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chromalab.losses.adversarial import (
    check_gan_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    mean_scores,
)
from chromalab.losses.reconstruction import ReconstructionLoss
from chromalab.models.discriminators import create_discriminator
from chromalab.training.objective import ColorizationObjective, register_objective


@register_objective("adversarial", "pix2pix-style GAN: a regression generator against a discriminator")
class AdversarialObjective(ColorizationObjective):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        gan = self.cfg.gan
        if not gan.discriminator:
            raise ValueError("adversarial training needs gan.discriminator (patch, pixel, critic, multiscale, unet)")
        self.gan_loss = check_gan_loss(gan.loss)
        if gan.n_critic < 1:
            raise ValueError("gan.n_critic must be at least 1")
        self.automatic_optimization = False
        self.criterion = ReconstructionLoss(self.cfg.loss, self.space)
        self.disc = self.build_discriminator()

    def build_discriminator(self) -> nn.Module:
        gan = self.cfg.gan
        kwargs = dict(gan.d_kwargs)
        if self.gan_loss == "wgan-gp" and gan.discriminator in ("patch", "pixel", "multiscale"):
            # The gradient penalty is per sample; batch statistics would couple the samples.
            kwargs.setdefault("norm", "instance")
        return create_discriminator(gan.discriminator, 1 + self.space.channels, **kwargs)

    # --- optimization -----------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        gan = self.cfg.gan
        opt_g = self.make_optimizer(self.net.parameters(), gan.g_lr)
        opt_d = self.make_optimizer(self.disc.parameters(), gan.d_lr)
        return (
            {"optimizer": opt_g, "lr_scheduler": self.make_scheduler(opt_g)},
            {"optimizer": opt_d, "lr_scheduler": self.make_scheduler(opt_d)},
        )

    def _step(self, optimizer: Any, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.cfg.optim.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.cfg.optim.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def pretraining(self) -> bool:
        return self.current_epoch < self.cfg.gan.pretrain_epochs

    def judge(self, l_norm: torch.Tensor, colors: torch.Tensor) -> Any:
        """The discriminator's verdict on a coloring, conditioned on the gray photo."""
        return self.disc(torch.cat([l_norm, colors], dim=1))

    # --- training ---------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        gan = self.cfg.gan
        l_norm, target, _ = self.prepare_batch(batch)
        logs: dict[str, torch.Tensor] = {}

        if self.pretraining():
            with self.toggled_optimizer(opt_g):
                rec = self.criterion(self.net(l_norm), target, l_norm)["total"]
                self._step(opt_g, rec)
            sched_g.step()
            self.log_dict({"train/g_rec": rec.detach(), "train/g_loss": rec.detach()})
            self.log("loss", rec.detach(), prog_bar=True, logger=False)
            return

        generator_turn = (batch_idx + 1) % gan.n_critic == 0
        with torch.set_grad_enabled(generator_turn):
            prediction = self.net(l_norm)

        # Discriminator: real colorings vs the generator's (detached) ones.
        with self.toggled_optimizer(opt_d):
            fake = prediction.detach()
            real_out = self.judge(l_norm, target)
            fake_out = self.judge(l_norm, fake)
            d_loss = discriminator_loss(self.gan_loss, real_out, fake_out, gan.real_label, gan.fake_label)
            if self.gan_loss == "wgan-gp":
                penalty = gradient_penalty(lambda colors: self.judge(l_norm, colors), target, fake)
                logs["train/gp"] = penalty.detach()
                d_loss = d_loss + gan.gp_weight * penalty
            self._step(opt_d, d_loss)
        sched_d.step()
        logs |= {
            "train/d_loss": d_loss.detach(),
            "train/d_real": mean_scores(self.gan_loss, real_out),
            "train/d_fake": mean_scores(self.gan_loss, fake_out),
        }

        # Generator: fool the discriminator while staying close to the truth.
        if generator_turn:
            with self.toggled_optimizer(opt_g):
                g_gan = generator_loss(self.gan_loss, self.judge(l_norm, prediction))
                g_rec = self.criterion(prediction, target, l_norm)["total"]
                g_loss = g_gan + gan.l1_weight * g_rec
                self._step(opt_g, g_loss)
            logs |= {"train/g_loss": g_loss.detach(), "train/g_gan": g_gan.detach(), "train/g_rec": g_rec.detach()}
            self.log("loss", g_loss.detach(), prog_bar=True, logger=False)
        sched_g.step()
        self.log_dict(logs)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        l_norm, target, _ = self.prepare_batch(batch)
        terms = self.criterion(self.net(l_norm), target, l_norm)
        # The reconstruction loss: comparable across GAN losses, and what checkpoints watch.
        self.log("val/loss", terms["total"], prog_bar=True, sync_dist=True)
