"""The point-guided model: it starts (and without points stays) exactly its effunet; training
points follow Zhang et al.'s recipe; color points reach the network where they belong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chromalab.color import AB_SCALE
from chromalab.inference.colorizer import Colorizer
from chromalab.inference.hints import points_to_hints
from chromalab.inference.points import ColorPoint, hex_to_ab
from chromalab.models import create_model
from chromalab.training.guided import simulate_hints
from tests.conftest import synthetic_photo

TINY = {"pretrained": False, "decoder_widths": [16, 16, 8, 8], "adapter_width": 8}


def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A tiny effunet (batch norm, as the shipped one) and a guided model built on its weights."""
    torch.manual_seed(0)
    base = create_model("effunet", pretrained=False, decoder_widths=[16, 16, 8, 8]).eval()
    guided = create_model("effunet-guided", **TINY)
    missing = guided.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(name.startswith("adapters.") for name in missing)
    return base, guided.eval()


def test_it_starts_exactly_where_its_effunet_is() -> None:
    base, guided = pair()
    l_norm = torch.rand(3, 1, 64, 64) * 2 - 1
    hints = simulate_hints(torch.rand(3, 2, 64, 64) - 0.5, torch.Generator().manual_seed(0), no_point_chance=0.01)
    with torch.no_grad():
        assert torch.equal(guided(l_norm, hints), base(l_norm))  # zero-initialized adapters
        assert torch.equal(guided(l_norm), base(l_norm))


def test_without_points_it_is_its_effunet_even_when_trained() -> None:
    base, guided = pair()
    for adapter in guided.adapters:  # as if trained: the adapters now change what they see
        torch.nn.init.normal_(adapter.out.weight, std=0.5)
    l_norm = torch.rand(2, 1, 64, 64) * 2 - 1
    hints = torch.zeros(2, 3, 64, 64)
    hints[0, :, 10:13, 10:13] = torch.tensor([0.4, -0.2, 1.0]).view(3, 1, 1)  # photo 0 has a point
    with torch.no_grad():
        out, plain = guided(l_norm, hints), base(l_norm)
    assert torch.equal(out[1], plain[1])  # photo 1 has none: bit for bit
    assert not torch.equal(out[0], plain[0])


def test_only_the_adapters_learn_and_batch_norm_statistics_stay() -> None:
    base, guided = pair()
    trainable = {name for name, p in guided.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("adapters.") for name in trainable)
    before = {name: value.clone() for name, value in guided.state_dict().items() if "running" in name}
    guided.train()
    for module in guided.modules():  # what Lightning does when it restores modes after validation
        module.training = True
    optimizer = torch.optim.SGD([p for p in guided.parameters() if p.requires_grad], lr=0.1)
    l_norm = torch.rand(4, 1, 64, 64) * 2 - 1
    target = torch.rand(4, 2, 64, 64) * 0.6 - 0.3
    for step in range(3):
        loss = (guided(l_norm, simulate_hints(target, torch.Generator().manual_seed(step))) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = guided.state_dict()
    assert all(torch.equal(value, after[name]) for name, value in before.items())
    assert any(adapter.out.weight.abs().sum() > 0 for adapter in guided.adapters)


def test_training_points_follow_the_recipe() -> None:
    target = torch.rand(4000, 2, 32, 32) * 0.4 - 0.2
    hints = simulate_hints(target, torch.Generator().manual_seed(0))
    covered = hints[:, 2].flatten(1).sum(dim=1)
    assert 0.10 < (covered == 0).float().mean() < 0.15  # about 1 photo in 8 without points
    assert torch.equal(hints[:, :2] * (1 - hints[:, 2:]), torch.zeros_like(hints[:, :2]))  # color only on points
    # Each photo's points cover squares of 1 to 9 px: at least 1 px, at most 64 squares of 81 px.
    assert covered[covered > 0].min() >= 1 and covered.max() <= 64 * 81


def test_a_single_training_point_carries_the_truths_mean() -> None:
    target = torch.zeros(1, 2, 16, 16)
    target[0, 0, :, 8:] = 0.5  # a* 0 on the left half, 0.5 on the right
    for seed in range(40):
        hints = simulate_hints(target, torch.Generator().manual_seed(seed), no_point_chance=0.6)
        mask = hints[0, 2] > 0
        if 0 < mask.sum() <= 81 and mask.any(dim=1).sum() * mask.any(dim=0).sum() == mask.sum():
            expected = target[0, 0][mask].mean()  # one square: its mean, everywhere on it
            assert torch.allclose(hints[0, 0][mask], expected.expand(int(mask.sum())), atol=1e-6)
            return
    pytest.fail("no single-square draw in 40 seeds")


def test_points_land_on_the_network_pixels_of_their_place() -> None:
    points = [ColorPoint(0, 0, "#c0392b"), ColorPoint(199, 99, "#2e5cb0", radius=10)]
    hints = points_to_hints([points], [(200, 100)], 64)
    mask = hints[0, 2] > 0
    assert mask[0:3, 0:3].all() and mask[:, 40:].sum() > 0  # 3x3 at the top left corner
    assert mask[-1, -1] and int(mask[:, 32:].sum()) == 7 * 7  # radius 10 px -> 7 network px (scale 0.32)
    a, b = hex_to_ab("#c0392b")
    assert hints[0, 0, 1, 1] == pytest.approx(a / AB_SCALE) and hints[0, 1, 1, 1] == pytest.approx(b / AB_SCALE)


def test_the_colorizer_gives_a_guided_network_its_points() -> None:
    from chromalab.checkpoint import ModelSpec

    _, guided = pair()
    for adapter in guided.adapters:
        torch.nn.init.normal_(adapter.out.weight, std=0.2)
    spec = ModelSpec(name="effunet-guided", kwargs={"out_channels": 2, **TINY}, size=64)
    colorizer = Colorizer(guided, spec)
    assert colorizer.takes_points
    photo = synthetic_photo(1, 80, 60).convert("L")
    plain = np.asarray(colorizer.colorize(photo))
    colorizer.propagate_points = False  # the network's own answer to the point
    alone = np.asarray(colorizer.colorize(photo, points=[(40, 30, "#c0392b")]))
    assert not np.array_equal(plain, alone)
    colorizer.propagate_points = True
    both = np.asarray(colorizer.colorize(photo, points=[(40, 30, "#c0392b")]))
    assert not np.array_equal(alone, both)
