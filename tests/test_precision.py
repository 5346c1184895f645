"""Precision: bf16 only where the hardware has it, fp32 losses and colors inside bf16 steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chromalab import precision
from chromalab.checkpoint import load_network
from chromalab.precision import full_precision, resolve_precision
from chromalab.training.trainer import train
from tests.test_registry import TINY_KWARGS
from tests.test_training import tiny_config


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(precision.FORCE_FP32_ENV, raising=False)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512_bf16 amx_tile\nbugs\t\t: none\n")
    assert {"avx2", "avx512_bf16", "amx_tile"} <= precision.cpu_flags(info)
    assert precision.cpu_flags(tmp_path / "missing") == set()


def test_cpu_description_names_the_model_and_its_vector_units(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert precision.cpu_description(info) == "Some Xeon (avx2, avx512f, avx512_bf16, amx_bf16)"
    info.write_text("processor\t: 0\nmodel name\t: Old\nflags\t\t: fpu sse2\n")
    assert precision.cpu_description(info) == "Old (none of AVX2/AVX-512/AMX)"
    assert precision.cpu_description(tmp_path / "missing") == "unknown CPU"


def test_auto_is_bf16_only_on_bf16_hardware(bf16_cpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32-true"  # emulated bf16 is 10x slower than fp32
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # an explicit choice is kept
    assert resolve_precision("32-true", "cpu") == "32-true"


def test_forced_fp32_fallback(bf16_cpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(precision.FORCE_FP32_ENV, "1")
    assert resolve_precision("auto", "cpu") == "32-true"


def test_full_precision_leaves_autocast_and_casts_to_fp32() -> None:
    seen = {}

    @full_precision
    def loss(prediction: torch.Tensor, targets: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtypes"] = (prediction.dtype, targets[0].dtype, index.dtype)
        return (prediction @ prediction.T).sum()

    x = torch.randn(4, 4, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(x, [x], torch.arange(3))
    assert not seen["autocast"]
    assert seen["dtypes"] == (torch.float32, torch.float32, torch.int64)
    assert value.dtype == torch.float32


@pytest.mark.slow
@pytest.mark.parametrize("model, sections", [
    ("unet-tiny", {}),
    ("effunet", {}),  # EfficientNet's depthwise convolutions run in fp32 inside the bf16 step
    ("unet-tiny", {"gan": {"discriminator": "patch", "loss": "lsgan"}}),
    ("classify", {"model": {"kwargs": TINY_KWARGS["classify"]}}),
    ("vae", {}),
    ("diffusion", {"model": {"kwargs": TINY_KWARGS["diffusion"]}, "diffusion": {"timesteps": 100}}),
])
def test_bf16_training_keeps_fp32_weights_and_finite_losses(
    photo_dir: Path, tmp_path: Path, model: str, sections: dict
) -> None:
    config = tiny_config(photo_dir, tmp_path / "run", trainer={"precision": "bf16-mixed", "log_every": 1})
    config.model.name = model
    for section, values in sections.items():
        for key, value in values.items():
            config.set(f"{section}.{key}", value)
    run = train(config)
    state = torch.load(run / "checkpoints/last.ckpt", weights_only=False)["state_dict"]
    weights = [v for k, v in state.items() if k.startswith("net.") and v.is_floating_point()]
    assert weights and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights)
    import csv

    with (run / "logs/metrics.csv").open() as handle:
        losses = [float(row["val/loss"]) for row in csv.DictReader(handle) if row.get("val/loss")]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    net, _ = load_network(run / "model.safetensors")  # the exported file is plain and loadable
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_training_converts_the_network_to_channels_last(photo_dir: Path, tmp_path: Path) -> None:
    from chromalab.training.trainer import build_datamodule, build_objective, build_trainer

    config = tiny_config(photo_dir, tmp_path / "run", trainer={"precision": "32-true", "max_steps": 1})
    objective = build_objective(config)
    trainer = build_trainer(config, tmp_path / "run", manual_optimization=False)
    trainer.fit(objective, datamodule=build_datamodule(config))
    convs = [m.weight for m in objective.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


class _SeparableBlock(torch.nn.Module):
    """A depthwise 3x3 then a pointwise 1x1 convolution, as in EfficientNet's blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.depthwise = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pointwise = torch.nn.Conv2d(4, 6, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        middle = self.depthwise(x)
        return middle, self.pointwise(middle)


def test_depthwise_convolutions_stay_fp32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    block = _SeparableBlock()
    names = list(block.state_dict())
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        plain_middle, plain_out = block(x)

    assert precision.depthwise_in_fp32(block) == 1  # the pointwise convolution is not depthwise
    assert precision.depthwise_in_fp32(block) == 1
    assert len(block.depthwise._forward_pre_hooks) == 1  # calling it twice added no second hook
    assert list(block.state_dict()) == names and type(block.depthwise) is torch.nn.Conv2d

    with torch.no_grad():  # outside autocast the hooks change nothing
        middle, out = block(x)
    assert torch.equal(middle, plain_middle) and torch.equal(out, plain_out)

    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        middle, out = block(x)
        after = block.pointwise(middle)  # autocast is back on once the depthwise layer returns
    assert middle.dtype == torch.float32 and torch.allclose(middle, plain_middle, atol=1e-6)
    assert out.dtype == torch.bfloat16 and after.dtype == torch.bfloat16
    out.float().sum().backward()
    assert block.depthwise.weight.grad is not None and x.grad is not None and torch.isfinite(x.grad).all()


def test_training_keeps_depthwise_convolutions_in_fp32(photo_dir: Path, tmp_path: Path) -> None:
    from chromalab.training.trainer import build_datamodule, build_objective, build_trainer

    config = tiny_config(photo_dir, tmp_path / "run", model={"name": "effunet"},
                         trainer={"precision": "32-true", "max_steps": 1})
    objective = build_objective(config)
    trainer = build_trainer(config, tmp_path / "run", manual_optimization=False)
    trainer.fit(objective, datamodule=build_datamodule(config))
    depthwise = [m for m in objective.net.modules()
                 if isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels]
    assert depthwise and all(getattr(m, precision.DEPTHWISE_MARK, False) for m in depthwise)
