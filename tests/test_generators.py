"""The convnet and resnet generators, and Criss-Cross Attention in the U-Net."""

from __future__ import annotations


import pytest
import torch

from chromalab.checkpoint import ModelSpec
from chromalab.models.attention import CrissCrossAttention
from chromalab.models.registry import create_model, model_entry
from chromalab.models.unet import UNet



@pytest.mark.parametrize(
    ("name", "kwargs", "channels"),
    [
        ("convnet", {}, 3),
        ("convnet", {"depth": 2, "width": 8}, 3),
        ("resnet", {"width": 8, "blocks": 2}, 2),
        ("resnet", {"width": 8, "blocks": 1, "upsample": "transposed", "out_channels": 3}, 3),
        ("unet-tiny", {"attention": "criss-cross"}, 2),
    ],
)
@pytest.mark.parametrize("size", [(29, 37), (17, 16)])
def test_generators_keep_odd_sizes(name: str, kwargs: dict, channels: int, size: tuple[int, int]) -> None:
    net = create_model(name, **kwargs).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, *size) * 2 - 1)
    assert out.shape == (2, channels, *size)
    assert out.abs().max() <= 1.0  # tanh output, in the target's normalized range
    assert net.out_channels == channels


def test_convnet_trains_on_rgb_by_default() -> None:
    assert model_entry("convnet").color_space == "rgb"
    spec = ModelSpec.from_train_config({"model": {"name": "convnet"}, "data": {"size": 32}})
    assert spec.color_space == "rgb" and spec.kwargs["out_channels"] == 3
    assert spec.build().eval()(torch.zeros(1, 1, 8, 8)).shape == (1, 3, 8, 8)


def test_resnet_has_the_requested_number_of_residual_blocks() -> None:
    from chromalab.models.resnet import ResidualBlock

    for blocks in (1, 3):
        net = create_model("resnet", width=8, blocks=blocks)
        assert sum(isinstance(m, ResidualBlock) for m in net.modules()) == blocks


def naive_criss_cross(block: CrissCrossAttention, x: torch.Tensor) -> torch.Tensor:
    """One criss-cross step, pixel by pixel: softmax over the pixel's row and column."""
    q, k, v = block.query(x), block.key(x), block.value(x)
    _, _, height, width = x.shape
    out = torch.empty_like(x)
    for i in range(height):
        for j in range(width):
            # the column without the pixel itself, then the whole row (which contains it)
            positions = [(g, j) for g in range(height) if g != i] + [(i, u) for u in range(width)]
            keys = torch.stack([k[:, :, g, u] for g, u in positions], dim=-1)  # (B, C', N)
            values = torch.stack([v[:, :, g, u] for g, u in positions], dim=-1)  # (B, C, N)
            weights = torch.softmax((q[:, :, i, j].unsqueeze(-1) * keys).sum(1), dim=-1)  # (B, N)
            out[:, :, i, j] = (values * weights.unsqueeze(1)).sum(-1)
    return out


def test_criss_cross_matches_pixelwise_reference() -> None:
    torch.manual_seed(1)
    block = CrissCrossAttention(8, reduction=4, recurrence=1)
    x = torch.randn(2, 8, 5, 4)
    with torch.no_grad():
        torch.testing.assert_close(block.attend(x), naive_criss_cross(block, x), rtol=1e-4, atol=1e-5)
        block.gamma.fill_(0.5)
        torch.testing.assert_close(block(x), x + 0.5 * naive_criss_cross(block, x), rtol=1e-4, atol=1e-5)


def test_criss_cross_starts_as_identity_and_learns() -> None:
    block = CrissCrossAttention(8)
    assert block.gamma.item() == 0.0
    x = torch.randn(2, 8, 6, 7, requires_grad=True)
    out = block(x)
    assert torch.equal(out, x)
    (out * torch.randn_like(out)).sum().backward()
    assert block.gamma.grad is not None and block.gamma.grad.abs().item() > 0
    # once the gate opens, the attention's own weights get gradient too
    block.zero_grad()
    with torch.no_grad():
        block.gamma.fill_(0.1)
    (block(x) * torch.randn_like(x)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_unet_attention_is_additive() -> None:
    plain = UNet(depth=3, width=8, max_width=32)
    with_attention = UNet(depth=3, width=8, max_width=32, attention="criss-cross", attention_max_channels=16)
    # Decoder steps output 16, 8 and 8 channels: 16 <= the limit too, so all three get a block.
    channels = [step.conv.out_channels for step in with_attention.decoder]
    placed = [isinstance(a, CrissCrossAttention) for a in with_attention.attention]
    assert placed == [c <= 16 for c in channels] and any(placed)
    limited = UNet(depth=3, width=8, max_width=32, attention="criss-cross", attention_max_channels=8)
    assert [isinstance(a, CrissCrossAttention) for a in limited.attention] == [False, True, True]
    # Without attention the weights are those of before; with it, only new (gated) weights.
    assert not any("attention" in key for key in plain.state_dict())
    missing, unexpected = with_attention.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(key.startswith("attention.") for key in missing)
    plain.eval(), with_attention.eval()
    x = torch.rand(1, 1, 19, 23) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(with_attention(x), plain(x))


def test_unknown_attention_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown attention"):
        UNet(depth=2, width=8, attention="global")
