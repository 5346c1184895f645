"""Numeric precision: bf16 where the processor has bf16 units, fp32 everywhere else.

A bf16 matrix product runs several times faster than fp32 on CPUs with AMX or AVX-512 BF16
(and on recent GPUs), but is *emulated*, about ten times slower than fp32, on CPUs without them
(an AVX2-only EPYC trained effunet at 3 img/s in bf16 against 33 in fp32). So ``auto`` asks the
hardware instead of assuming: the same config trains fast on either machine.

Only the networks run in bf16. Color conversions and losses stay in fp32 (:func:`full_precision`):
Lab's cube roots and a loss summed over a batch lose too much in bf16's 8-bit mantissa. On a
CPU the depthwise convolutions stay in fp32 too (:func:`depthwise_in_fp32`): oneDNN has no fast
bf16 kernel for them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import nn

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true", "bf16-true")
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
FORCE_FP32_ENV = "CHROMALAB_FP32"  # set to 1: "auto" never picks bf16 (the fp32 fallback)

F = TypeVar("F", bound=Callable[..., Any])


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The processor's feature flags (Linux); empty where they cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name and the vector units that decide bf16/int8 speed, for reports."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "unknown CPU"
    name = next((line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("model name")),
                "unknown CPU")
    flags = cpu_flags(cpuinfo)
    units = [unit for unit in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if unit in flags]
    return f"{name} ({', '.join(units) or 'none of AVX2/AVX-512/AMX'})"


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX-512 BF16)."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def bf16_is_fast(accelerator: str = "cpu") -> bool:
    """Whether bf16 beats fp32 on this device: the hardware has bf16 units, and fp32 is not forced."""
    if os.environ.get(FORCE_FP32_ENV, "") not in ("", "0"):
        return False
    if accelerator in ("cuda", "gpu"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """Lightning's precision for ``precision``; ``auto`` is bf16-mixed where bf16 is fast, else 32-true."""
    if precision != "auto":
        return precision
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16-mixed" if bf16_is_fast(accelerator) else "32-true"


def full_precision(function: F) -> F:
    """Run ``function`` outside autocast, with its floating-point tensor arguments in fp32.

    For losses and color conversions: under bf16 autocast the network's outputs arrive in bf16,
    and the loss must still be summed (and differentiated) in fp32.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            args = tuple(_to_fp32(a) for a in args)
            kwargs = {k: _to_fp32(v) for k, v in kwargs.items()}
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _to_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return type(value)(_to_fp32(v) for v in value)
    return value


DEPTHWISE_MARK = "_chromalab_depthwise_fp32"


def depthwise_in_fp32(module: nn.Module) -> int:
    """Run ``module``'s depthwise convolutions in fp32 even under bf16 autocast; returns how many.

    On a CPU, oneDNN has no fast bf16 kernel for depthwise convolutions (AVX-512 BF16 measured on
    an AMD EPYC, 16 photos: a 5x5 stride-2 layer's forward and backward take 38 ms in bf16
    against 6 in fp32; the backward kernels are the slow ones, so inference keeps them in bf16),
    and they are a small share of the FLOPs, so bf16 buys them nothing in training:
    with them in fp32, effunet trains 1.35x faster in bf16 than in fp32 instead of 1.03x
    (``benchmarks/foundation.py``). Forward hooks rather than new classes, so that the weights'
    names, the state dict and the module types (EfficientNet's same-padding convolutions) stay
    as they are; calling this twice adds nothing.
    """
    count = 0
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d) and layer.groups > 1 and layer.groups == layer.in_channels:
            if not getattr(layer, DEPTHWISE_MARK, False):
                layer.register_forward_pre_hook(_enter_fp32)
                layer.register_forward_hook(_leave_fp32, always_call=True)
                setattr(layer, DEPTHWISE_MARK, True)
            count += 1
    return count


def _enter_fp32(layer: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    device = args[0].device.type
    if device != "cpu" or not torch.is_autocast_enabled(device):  # GPUs have fast bf16 depthwise kernels
        return None
    context = torch.autocast(device_type=device, enabled=False)
    context.__enter__()
    layer.__dict__.setdefault("_fp32_contexts", []).append(context)
    return (args[0].float(), *args[1:])


def _leave_fp32(layer: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    contexts = layer.__dict__.get("_fp32_contexts")
    if contexts:
        contexts.pop().__exit__(None, None, None)


def channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout for 4-D tensors: oneDNN's convolutions run fastest on it (1.4x in fp32 here)."""
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor
