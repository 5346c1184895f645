"""Discriminators, GAN losses and the adversarial training objective."""

from __future__ import annotations


import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from chromalab.checkpoint import load_network
from chromalab.losses.adversarial import discriminator_loss, generator_loss, gradient_penalty, mean_scores
from chromalab.models.discriminators import DISCRIMINATORS, create_discriminator
from chromalab.models.registry import create_model, list_models
from chromalab.training.config import TrainConfig
from chromalab.training.trainer import build_objective, objective_name, train


SMALL_D = {
    "patch": {"width": 8},
    "pixel": {"width": 8},
    "critic": {"width": 8, "layers": 3},
    "multiscale": {"width": 8},
    "unet": {"width": 8, "depth": 3},
}


def outputs_of(result: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return result if isinstance(result, list) else [result]


@pytest.mark.parametrize("name", DISCRIMINATORS)
@pytest.mark.parametrize("size", [(29, 37), (7, 9)])
def test_discriminators_judge_any_size(name: str, size: tuple[int, int]) -> None:
    disc = create_discriminator(name, 3, **SMALL_D[name]).eval()
    with torch.no_grad():
        outputs = outputs_of(disc(torch.randn(2, 3, *size)))
    assert all(o.shape[0] == 2 and o.shape[1] == 1 and torch.isfinite(o).all() for o in outputs)
    if name == "critic":
        assert outputs[0].shape == (2, 1)  # one score per image
    if name in ("pixel", "unet"):
        assert outputs[-1].shape == (2, 1, *size)  # one logit per pixel
    if name == "multiscale":
        assert len(outputs) == 3
    if name == "unet":
        assert outputs[0].shape == (2, 1)  # plus the encoder's global score


def test_discriminators_stay_out_of_the_generator_registry() -> None:
    names = {entry.name for entry in list_models()}
    assert not names & set(DISCRIMINATORS) - {"unet"}  # "unet" is the U-Net *generator*
    assert names >= {"convnet", "resnet", "unet"}
    with pytest.raises(ValueError, match="unknown discriminator"):
        create_discriminator("nope", 3)


def test_patch_discriminator_sees_70_pixel_patches() -> None:
    # A logit's receptive field: perturb one input pixel and see which logits change.
    disc = create_discriminator("patch", 1, width=4, norm="none").eval()
    x = torch.zeros(1, 1, 140, 140, requires_grad=True)
    out = disc(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    assert rows.max() - rows.min() + 1 == 70


@pytest.mark.parametrize(
    ("disc_name", "loss"),
    [(d, loss) for d in DISCRIMINATORS for loss in ("vanilla", "lsgan")]
    + [("critic", "wgan-gp"), ("unet", "hinge"), ("patch", "hinge")],
)
def test_manual_gan_steps_update_generator_and_discriminator(disc_name: str, loss: str) -> None:
    torch.manual_seed(0)
    generator = create_model("unet-tiny", depth=2, width=8, max_width=16)
    kwargs = dict(SMALL_D[disc_name])
    if loss == "wgan-gp" and disc_name != "critic":
        kwargs["norm"] = "instance"
    disc = create_discriminator(disc_name, 1 + 2, **kwargs)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    g_before = [p.detach().clone() for p in generator.parameters()]
    d_before = [p.detach().clone() for p in disc.parameters()]
    l_norm = torch.rand(2, 1, 24, 24) * 2 - 1
    target = torch.rand(2, 2, 24, 24) * 0.6 - 0.3
    for _ in range(2):
        fake = generator(l_norm)
        d_loss = discriminator_loss(
            loss, disc(torch.cat([l_norm, target], 1)), disc(torch.cat([l_norm, fake.detach()], 1)), 0.9
        )
        if loss == "wgan-gp":
            d_loss = d_loss + 10 * gradient_penalty(lambda c: disc(torch.cat([l_norm, c], 1)), target, fake)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(loss, disc(torch.cat([l_norm, fake], 1))) + 10 * (fake - target).abs().mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert any(not torch.equal(a, p) for a, p in zip(g_before, generator.parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(d_before, disc.parameters()))
    # every discriminator weight gets a gradient from the D loss (no dead branch, e.g. heads)
    assert all(p.grad is not None for p in disc.parameters())


def test_gradient_penalty_of_a_linear_critic() -> None:
    # D(x) = <w, x>: its input gradient is w everywhere, so the penalty is (|w| - 1)^2.
    torch.manual_seed(0)
    w = torch.randn(1, 2, 4, 5)

    def critic(colors: torch.Tensor) -> torch.Tensor:
        return (colors * w).sum(dim=(1, 2, 3)).unsqueeze(1)

    real, fake = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    expected = (w.norm().item() - 1.0) ** 2
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_taken_at_the_interpolates() -> None:
    # D(x) = |x|^2 / 2 has gradient x, so its norm tells where the gradient was taken.
    def critic(colors: torch.Tensor) -> torch.Tensor:
        return 0.5 * colors.pow(2).sum(dim=(1, 2, 3)).unsqueeze(1)

    n = 2 * 3 * 3
    real, fake = torch.full((2, 2, 3, 3), 2.0), torch.full((2, 2, 3, 3), -1.0)
    epsilon = torch.tensor([0.25, 0.75])
    points = epsilon * 2.0 + (1 - epsilon) * -1.0  # -0.25 and 1.25 in every element
    expected = ((points.abs() * math.sqrt(n) - 1.0) ** 2).mean().item()
    assert gradient_penalty(critic, real, fake, epsilon).item() == pytest.approx(expected, rel=1e-5)
    # Random eps ~ U(0, 1): every sample's point lies on the segment between fake and real.
    torch.manual_seed(3)
    sampled = gradient_penalty(critic, real, fake).item()
    worst = max((abs(v) * math.sqrt(n) - 1.0) ** 2 for v in (2.0, -1.0))
    assert 0.0 <= sampled <= worst
    # ... and the penalty can itself be minimized (it keeps its graph)
    scale = torch.tensor(1.0, requires_grad=True)
    gradient_penalty(lambda c: scale * critic(c), real, fake, epsilon).backward()
    assert scale.grad is not None and scale.grad != 0


def bce(logit: float, label: float) -> float:
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def test_vanilla_label_smoothing() -> None:
    real = torch.tensor([[3.0], [0.5]])
    fake = torch.tensor([[-2.0], [1.0]])
    for real_label in (1.0, 0.9):
        expected = 0.5 * (
            sum(bce(x, real_label) for x in (3.0, 0.5)) / 2 + sum(bce(x, 0.0) for x in (-2.0, 1.0)) / 2
        )
        got = discriminator_loss("vanilla", real, fake, real_label=real_label).item()
        assert got == pytest.approx(expected, rel=1e-6)
    # Smoothing penalizes over-confidence: a very sure "real" now costs more ...
    sure = torch.tensor([[8.0]])
    zero = torch.zeros(1, 1) - 20
    assert discriminator_loss("vanilla", sure, zero, 0.9) > discriminator_loss("vanilla", sure, zero, 1.0)
    # ... and the best real logit is log(0.9 / 0.1), where D would say "90 % real".
    logit = torch.tensor([[math.log(9.0)]], requires_grad=True)
    discriminator_loss("vanilla", logit, zero, real_label=0.9).backward()
    assert abs(logit.grad.item()) < 1e-6
    # The generator's target stays 1 (one-sided smoothing).
    assert generator_loss("vanilla", torch.tensor([[2.0]])).item() == pytest.approx(bce(2.0, 1.0))


def test_losses_average_over_multiple_outputs() -> None:
    a_real, a_fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    b_real, b_fake = torch.randn(2, 1), torch.randn(2, 1)
    for kind in ("vanilla", "lsgan", "wgan-gp", "hinge"):
        both = discriminator_loss(kind, [a_real, b_real], [a_fake, b_fake])
        single = (discriminator_loss(kind, a_real, a_fake) + discriminator_loss(kind, b_real, b_fake)) / 2
        torch.testing.assert_close(both, single)
        g_both = generator_loss(kind, [a_fake, b_fake])
        torch.testing.assert_close(g_both, (generator_loss(kind, a_fake) + generator_loss(kind, b_fake)) / 2)
    assert discriminator_loss("hinge", torch.full((1, 1), 2.0), torch.full((1, 1), -2.0)).item() == 0.0
    assert mean_scores("vanilla", torch.zeros(1, 1)).item() == 0.5


# --- the Lightning objective -----------------------------------------------------------


def objective_config(**gan: object) -> dict:
    return TrainConfig.from_dict({
        "model": {"name": "unet-tiny", "kwargs": {"depth": 2, "width": 8, "max_width": 16}},
        "data": {"size": 16},
        "optim": {"warmup_steps": 1, "lr": 1e-3},
        "gan": {"discriminator": "patch", "d_kwargs": {"width": 8}} | gan,
    })


def fit(config: TrainConfig, batches: int, epochs: int = 1) -> L.LightningModule:
    objective = build_objective(config)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (batches * 2, 3, 16, 16), dtype=torch.uint8)
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
        num_sanity_val_steps=0, limit_val_batches=0,
    )
    before = {k: v.clone() for k, v in objective.state_dict().items()}
    trainer.fit(objective, DataLoader(images, batch_size=2))
    objective.before = before  # type: ignore[attr-defined]
    objective.metrics = dict(trainer.logged_metrics)  # type: ignore[attr-defined]
    return objective


def changed(objective: L.LightningModule, prefix: str) -> bool:
    state = objective.state_dict()
    return any(
        not torch.equal(value, state[key]) for key, value in objective.before.items()
        if key.startswith(prefix) and value.is_floating_point()
    )


@pytest.mark.parametrize(
    "gan",
    [
        {"loss": "vanilla", "real_label": 0.9},
        {"loss": "wgan-gp", "n_critic": 2, "discriminator": "multiscale"},
        {"loss": "hinge", "discriminator": "unet", "d_kwargs": {"width": 8, "depth": 2}, "d_lr": 1e-4},
    ],
)
def test_objective_trains_generator_and_discriminator(gan: dict) -> None:
    config = objective_config(**gan)
    assert objective_name(config) == "adversarial"
    objective = fit(config, batches=2)
    assert changed(objective, "net.") and changed(objective, "disc.")
    for key in ("train/d_loss", "train/g_loss", "train/g_gan", "train/g_rec", "train/d_real", "train/d_fake"):
        assert torch.isfinite(objective.metrics[key])
    if gan["loss"] == "vanilla":
        assert 0.0 < objective.metrics["train/d_real"] < 1.0  # a probability
    if gan["loss"] == "wgan-gp":
        assert "train/gp" in objective.metrics
        # WGAN-GP's per-sample penalty: instance norm replaces batch norm in the critic
        assert not any(isinstance(m, nn.BatchNorm2d) for m in objective.disc.modules())
    opt_g, opt_d = objective.trainer.optimizers
    assert opt_g.param_groups[0]["initial_lr"] == (config.gan.g_lr or config.optim.lr)
    assert opt_d.param_groups[0]["initial_lr"] == (config.gan.d_lr or config.optim.lr)


def test_pretraining_leaves_the_discriminator_alone() -> None:
    objective = fit(objective_config(loss="lsgan", pretrain_epochs=1), batches=2)
    assert changed(objective, "net.") and not changed(objective, "disc.")
    assert "train/d_loss" not in objective.metrics and "train/g_rec" in objective.metrics


def test_train_with_a_discriminator_gives_a_loadable_model(photo_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig.from_dict({
        "model": {"name": "unet-tiny"},
        "data": {"path": str(photo_dir), "size": 32, "batch_size": 4, "workers": 0, "val_fraction": 0.2},
        "trainer": {"epochs": 2, "progress": False, "accelerator": "cpu", "devices": 1, "samples": 2,
                    "log_every": 1},
        "optim": {"warmup_steps": 2, "lr": 2e-4},
        "gan": {"discriminator": "patch", "loss": "lsgan", "l1_weight": 100, "pretrain_epochs": 1,
                "d_kwargs": {"width": 16}},
        "out": str(tmp_path / "gan"),
    })
    run = train(config)
    net, spec = load_network(run)
    assert spec.name == "unet-tiny" and spec.color_space == "lab"
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("disc.") for k in checkpoint["state_dict"])
    load_network(run / "checkpoints" / "last.ckpt")  # the generator alone, from the checkpoint
    with open(run / "logs" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    assert {"train/d_loss", "train/g_gan", "train/g_rec", "val/loss"} <= columns
    assert any(row["train/d_loss"] for row in rows)  # the adversarial epoch ran
    assert (run / "samples" / "latest.png").is_file()
