"""Inference precision: fp32, bf16 (PyTorch autocast) or int8 (onnxruntime, static QDQ).

The network is a small share of a photo's cost at 128 px (``benchmarks/pipeline.py``), but not
at 256 px or with a larger encoder, and not for large batches of small photos. So each model
can run in three precisions:

- ``fp32``: the reference, on either backend.
- ``bf16``: PyTorch under bf16 autocast with channels-last tensors. Fast only where the CPU has
  bf16 units (``chromalab.precision.cpu_has_bf16``); elsewhere emulated and slower than fp32.
- ``int8``: an onnxruntime graph with static QDQ quantization (int8 weights and activations,
  per-channel weights), calibrated on photos like the training photos. Made once by
  ``chromalab export --format onnx --int8 --calibration DIR`` (or shipped beside the weights).

``auto`` picks a faster precision only where a measurement says it keeps the quality: a model
file may record ``spec.extra["auto_precision"]``, which ``chromalab export --auto-precision``
writes after ``benchmarks/precision.py`` has compared FID and CIEDE2000 against fp32. Without
that record, and where the recorded precision cannot run here, ``auto`` is fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from chromalab.errors import ChromalabError

INFERENCE_PRECISIONS = ("auto", "fp32", "bf16", "int8")
CALIBRATION_PHOTOS = 300  # photos in the int8 calibration set (the "few hundred")


def check_precision(precision: str) -> str:
    if precision not in INFERENCE_PRECISIONS:
        raise ChromalabError(f"unknown precision {precision!r}; use {', '.join(INFERENCE_PRECISIONS)}")
    return precision


class Bf16TorchBackend:
    """``net.predict`` under bf16 autocast with channels-last input; returns fp32."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net.to(memory_format=torch.channels_last)

    def __call__(self, l_norm: torch.Tensor, **options: Any) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            prediction = self.net.predict(l_norm.contiguous(memory_format=torch.channels_last), **options)
        return prediction.float().contiguous()


def int8_onnx_path(model_file: Path) -> Path:
    """Where a model's int8 graph belongs: beside the model file (``model.int8.onnx``)."""
    return model_file.with_name(f"{model_file.stem}.int8.onnx")


def calibration_inputs(photos: Sequence[Path], size: int) -> Iterator[np.ndarray]:
    """Normalized L at the model's size, one photo at a time (as the network sees them)."""
    from chromalab.data.images import open_rgb
    from chromalab.inference.fullres import model_input
    from chromalab.inference.onnx_backend import PAD_MULTIPLE
    from chromalab.models.blocks import pad_to_multiple

    for path in photos:
        l_small = model_input(open_rgb(path), size)
        padded, _ = pad_to_multiple(l_small, PAD_MULTIPLE)
        yield np.ascontiguousarray(padded.numpy(), dtype=np.float32)


def quantize_int8(fp32_onnx: Path, out: Path, photos: Iterable[Path], size: int) -> Path:
    """Static QDQ int8 quantization of an exported graph, calibrated on ``photos``.

    Per-channel int8 weights and int8 activations with MinMax ranges (the onnxruntime
    defaults for CNNs on x86, where int8 convolutions use VNNI). The graph is pre-processed
    (shape inference, folding) first, as onnxruntime's quantization guide recommends.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from chromalab.atomic import atomic_target

    photos = sorted(photos)
    if not photos:
        raise ChromalabError("int8 calibration needs photos; none were found")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.inputs = calibration_inputs(photos, size)

        def get_next(self) -> dict[str, np.ndarray] | None:
            array = next(self.inputs, None)
            return None if array is None else {"l_norm": array}

    out.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    # onnxruntime's quantizer logs a line per adjusted bias scale on the root logger at INFO.
    root.setLevel(max(level, logging.WARNING))
    with atomic_target(out) as temporary:
        prepared = Path(str(temporary) + ".prep.onnx")
        try:
            quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(temporary), Reader(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
            )
        finally:
            prepared.unlink(missing_ok=True)
            root.setLevel(level)
    return out
