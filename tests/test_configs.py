"""Every experiment file in configs/ loads and builds its training objective (no training)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from chromalab.cli import train as train_cli
from chromalab.training.config import TrainConfig
from chromalab.training.trainer import build_objective, objective_name

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))



def test_the_model_zoo_configs_exist() -> None:
    names = {path.stem for path in CONFIGS}
    assert names >= {
        "unet-l1", "unet-l2", "unet-huber", "unet-perceptual", "pix2pix-patch-vanilla",
        "pix2pix-patch-lsgan", "pix2pix-patch-wgangp", "resnet-gan", "critic-gan", "pixel-gan",
        "cca-unet-multiscale-gan", "cgan-unet-d-rgb", "cgan-unet-d-hsv", "cgan-unet-d-ycbcr",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_its_objective(path: Path) -> None:
    config = TrainConfig.from_yaml(path)
    objective = build_objective(config)
    assert objective.net.out_channels == objective.space.channels
    if config.gan.discriminator:
        assert objective_name(config) == "adversarial"
        assert not objective.automatic_optimization
        # the discriminator sees cat(L, colors of the configured space)
        size = 16
        l_norm = torch.zeros(1, 1, size, size)
        colors = torch.zeros(1, objective.space.channels, size, size)
        objective.disc.eval()
        with torch.no_grad():
            objective.judge(l_norm, colors)


def test_gan_configs_say_what_their_names_say() -> None:
    def load(name: str) -> TrainConfig:
        return TrainConfig.from_yaml(Path(__file__).parent.parent / "configs" / f"{name}.yaml")

    assert load("pix2pix-patch-vanilla").gan.real_label == 0.9
    assert (load("pix2pix-patch-wgangp").gan.loss, load("critic-gan").gan.discriminator) == ("wgan-gp", "critic")
    assert load("cca-unet-multiscale-gan").model.kwargs["attention"] == "criss-cross"
    for space in ("rgb", "hsv", "ycbcr"):
        config = load(f"cgan-unet-d-{space}")
        assert (config.model.color_space, config.gan.discriminator) == (space, "unet")


def test_command_line_gan_flags_select_adversarial_training() -> None:
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args([
        "train", "--model", "unet", "--discriminator", "patch", "--gan-loss", "lsgan", "--l1-weight", "100",
        "--attention", "criss-cross",
    ])
    config = train_cli.resolve_config(args)
    assert objective_name(config) == "adversarial"
    objective = build_objective(config)
    assert type(objective.disc).__name__ == "PatchDiscriminator" and objective.gan_loss == "lsgan"
    assert any(type(m).__name__ == "CrissCrossAttention" for m in objective.net.modules())
