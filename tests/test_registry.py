"""Every registered model, whatever its family: shapes, gradients, its own objective learns,
model files round-trip, and the Colorizer turns it into same-size color photos.

New model families are covered automatically (the tests iterate ``list_models()``); a family
whose defaults are slow gets a small configuration in TINY_KWARGS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from chromalab.checkpoint import load_network, save_network
from chromalab.color import rgb_to_l_norm, uint8_to_float
from chromalab.inference.colorizer import Colorizer
from chromalab.models import count_parameters, list_models, model_entry
from chromalab.models.classify import NUM_BINS
from chromalab.training.config import TrainConfig
from chromalab.training.objective import ColorizationObjective, objective_class
from tests.conftest import synthetic_photo

# Narrow versions of each family (and no batch norm: a few steps on one batch leave its
# running statistics far from the batch's, which would blur "did the loss go down").
TINY_KWARGS: dict[str, dict[str, Any]] = {
    "unet": {"depth": 3, "width": 8, "max_width": 16, "norm": "group"},
    "unet-tiny": {"depth": 3, "width": 8, "max_width": 16, "norm": "group"},
    "effunet": {"pretrained": False, "decoder_widths": [16, 16, 8, 8], "norm": "group"},
    "convnet": {"depth": 2, "width": 8, "max_width": 16, "norm": "group"},
    "resnet": {"width": 8, "blocks": 1, "norm": "group"},
    "vae": {"depth": 3, "width": 8, "max_width": 16, "encoder_width": 8, "latent_dim": 4, "norm": "group"},
    "unet-vae": {"depth": 3, "width": 8, "max_width": 16, "encoder_width": 8, "latent_channels": 2, "norm": "group"},
    "classify": {"widths": [8, 16, 32], "norm": "group"},
    "effunet-guided": {"pretrained": False, "decoder_widths": [16, 16, 8, 8], "norm": "group", "adapter_width": 8},
    "effclassify": {"pretrained": False, "decoder_widths": [16, 16, 8], "head_width": 16, "norm": "group"},
    "diffusion": {"widths": [16, 32], "chroma_stride": 2, "steps": 3},
}
SIZE = 32
TRAIN_STEPS = 8
MODELS = [entry.name for entry in list_models()]


def tiny_config(name: str) -> dict[str, Any]:
    config = TrainConfig.from_dict({
        "model": {"name": name, "kwargs": TINY_KWARGS.get(name, {})},
        "data": {"size": SIZE, "batch_size": 4, "workers": 0, "min_crop_scale": 1.0},
        "optim": {"lr": 3e-3, "warmup_steps": 0, "weight_decay": 0.0},
        "diffusion": {"timesteps": 100},
        "gan": {"pretrain_epochs": 0},
    })
    return config.to_dict()


def photo_batch(count: int = 4, size: int = SIZE) -> torch.Tensor:
    photos = [np.asarray(synthetic_photo(seed, size, size)) for seed in range(count)]
    return torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).contiguous()


_OBJECTIVES: dict[str, ColorizationObjective] = {}



def build(name: str) -> ColorizationObjective:
    """One freshly initialized objective (and network) per model, seeded."""
    if name not in _OBJECTIVES:
        torch.manual_seed(0)
        _OBJECTIVES[name] = objective_class(model_entry(name).objective)(tiny_config(name))
    return _OBJECTIVES[name]


def forward_output(objective: ColorizationObjective, l_norm: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """What ``forward`` returns for the model's objective, and the shape it must have."""
    net, kind = objective.net, objective.__class__.__name__
    batch, channels, height, width = target.shape
    if kind == "VariationalObjective":
        return net(l_norm, target)[0], tuple(target.shape)
    if kind == "DiffusionObjective":
        grid = net.chroma_grid(height, width)
        noisy = torch.randn(batch, channels, *grid)
        return net(noisy, l_norm, torch.full((batch,), 5)), (batch, channels, *grid)
    if kind == "ClassificationObjective":
        return net(l_norm), (batch, NUM_BINS, height // 4, width // 4)
    if kind == "GuidedObjective":  # its trainable part (the point adapters) acts only on points
        return net(l_norm, objective.hints_for(target, seed=0)), tuple(target.shape)
    return net(l_norm), tuple(target.shape)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_gradients(name: str) -> None:
    objective = build(name)
    objective.train()
    l_norm, target, _ = objective.prepare_batch(photo_batch(2))
    output, shape = forward_output(objective, l_norm, target)
    assert tuple(output.shape) == shape
    output.square().mean().backward()
    grads = [p.grad for p in objective.net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    objective.net.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", MODELS)
def test_predict_shape_any_size(name: str) -> None:
    net = build(name).net.eval()
    l_norm = torch.rand(2, 1, 24, 40) * 2 - 1  # not a multiple of any network stride
    colors = net.predict(l_norm, generator=torch.Generator().manual_seed(0))
    assert colors.shape == (2, net.out_channels, 24, 40)
    assert torch.isfinite(colors).all()


def _trainer(steps: int) -> L.Trainer:
    return L.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=1 if steps == 0 else 0,
    )


@pytest.mark.parametrize("name", MODELS)
def test_own_objective_reduces_loss_on_a_fixed_batch(name: str) -> None:
    torch.manual_seed(0)
    objective = objective_class(model_entry(name).objective)(tiny_config(name))
    batch = photo_batch(4)
    loader = torch.utils.data.DataLoader([batch], batch_size=None)
    before = _trainer(0).validate(objective, loader, verbose=False)[0]["val/loss"]
    _trainer(TRAIN_STEPS).fit(objective, train_dataloaders=loader)
    after = _trainer(0).validate(objective, loader, verbose=False)[0]["val/loss"]
    assert np.isfinite(after)
    assert after < before, f"{name}: val/loss {before:.4f} -> {after:.4f} after {TRAIN_STEPS} steps"


@pytest.mark.parametrize("name", MODELS)
def test_model_file_round_trip(name: str, tmp_path: Path) -> None:
    objective = build(name)
    net = objective.net.eval()
    path = save_network(net, objective.spec, tmp_path / f"{name}.safetensors")
    loaded, spec = load_network(path)
    assert spec == objective.spec
    assert count_parameters(loaded) == count_parameters(net)
    l_norm = rgb_to_l_norm(uint8_to_float(photo_batch(2)))
    expected = net.predict(l_norm, generator=torch.Generator().manual_seed(3))
    actual = loaded.predict(l_norm, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("name", MODELS)
def test_colorizer_keeps_the_photo_size(name: str) -> None:
    objective = build(name)
    photo = synthetic_photo(7, width=45, height=30).convert("L").convert("RGB")
    result = Colorizer(objective.net, objective.spec).colorize(photo, size=SIZE)
    assert result.size == photo.size and result.mode == "RGB"
