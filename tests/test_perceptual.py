"""Perceptual losses: ST-LPIPS (optional package) and EfficientNet-Lite0 features."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from chromalab.color import get_color_space, rgb_to_l_norm
from chromalab.errors import ChromalabError
from chromalab.losses.perceptual import make_perceptual_loss
from chromalab.losses.reconstruction import ReconstructionLoss
from chromalab.training.config import LossConfig

NAMES = ["effnet", pytest.param("stlpips", marks=pytest.mark.skipif(
    importlib.util.find_spec("stlpips_pytorch") is None, reason="optional extra stlpips-pytorch not installed"
))]



@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Two smooth color images (a perceptual net should see structure, not just noise)."""
    generator = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 48), indexing="ij")
    colors = torch.rand(2, 3, 1, 1, generator=generator)
    return (0.2 + 0.6 * colors * (0.5 + 0.5 * torch.sin(6 * x + 3 * y * colors))).clamp(0, 1)


@pytest.mark.parametrize("name", NAMES)
def test_distance_grows_with_the_distortion(name: str, photos: torch.Tensor) -> None:
    loss = make_perceptual_loss(name)
    noise = torch.randn(photos.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert loss(photos, photos).item() == pytest.approx(0.0, abs=1e-7)
        distances = [loss((photos + s * noise).clamp(0, 1), photos).item() for s in (0.02, 0.1, 0.3)]
        # also a pure color change (what a colorizer gets wrong): swap the red and blue channels
        swapped = loss(photos[:, [2, 1, 0]], photos).item()
    assert 0 < distances[0] < distances[1] < distances[2]
    assert swapped > 0
    # tiny crops are upsampled rather than failing in the trunk's pooling
    assert loss(photos[..., :9, :11], photos[..., :9, :11].flip(1)).item() > 0


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_prediction_only(name: str, photos: torch.Tensor) -> None:
    loss = make_perceptual_loss(name)
    prediction = (photos * 0.8 + 0.1).requires_grad_(True)
    target = photos.clone().requires_grad_(True)
    loss(prediction, target).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_the_frozen_network_stays_frozen_and_out_of_checkpoints(name: str) -> None:
    loss = make_perceptual_loss(name)
    loss.train()  # what Lightning does to every submodule at the start of training
    assert not any(m.training for m in loss.net.modules())
    assert loss.state_dict() == {}  # shipped weights are not copied into every checkpoint
    holder = torch.nn.ModuleDict({"perceptual": loss, "head": torch.nn.Linear(2, 1)})
    state = holder.state_dict()
    assert set(state) == {"head.weight", "head.bias"}
    holder.load_state_dict(state, strict=True)  # ... and such a checkpoint loads strictly


def test_stlpips_stand_ins_do_not_leak() -> None:
    pytest.importorskip("stlpips_pytorch")
    had = {name: name in sys.modules for name in ("torchvision", "IPython", "torchsummary")}
    make_perceptual_loss("stlpips")
    for name, present in had.items():
        if not present:
            assert name not in sys.modules


def test_missing_stlpips_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stlpips_pytorch", None)  # find_spec -> None: "not installed"
    with pytest.raises(ChromalabError, match=r"stlpips-pytorch.*chromalab\[lpips\]"):
        make_perceptual_loss("stlpips")
    with pytest.raises(ChromalabError, match="unknown perceptual loss"):
        make_perceptual_loss("vgg-gram")


def test_reconstruction_loss_adds_the_weighted_perceptual_term(photos: torch.Tensor) -> None:
    space = get_color_space("lab")
    config = LossConfig(pixel="l1", perceptual="effnet", perceptual_weight=0.5)
    criterion = ReconstructionLoss(config, space)
    l_norm = rgb_to_l_norm(photos)
    target = space.target(photos)
    prediction = (target * 0.5).requires_grad_(True)
    terms = criterion(prediction, target, l_norm)
    assert terms["perceptual"] > 0
    torch.testing.assert_close(terms["total"], terms["pixel"] + 0.5 * terms["perceptual"])
    terms["total"].backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
