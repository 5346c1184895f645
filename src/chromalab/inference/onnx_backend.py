"""ONNX export of a colorization network and an onnxruntime backend for the Colorizer.

Only deterministic single-pass networks export: those whose ``predict`` is their ``forward``,
and those that declare ``traceable_predict`` (the classifiers: logits, then the annealed mean
at their fixed temperature, all in the graph). Sampling models (VAE with a random z,
diffusion loops) stay on PyTorch. Exported graphs take any batch size and any height/width.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from chromalab.atomic import atomic_target
from chromalab.errors import ChromalabError
from chromalab.models.base import ColorizationNet

OPSET = 17
PAD_MULTIPLE = 64  # covers every registered network's total stride; export sizes are multiples of it


def exportable(net: nn.Module) -> bool:
    """True when inference is one deterministic pass (see the module's docstring)."""
    return type(net).predict is ColorizationNet.predict or bool(getattr(net, "traceable_predict", False))


class PredictGraph(nn.Module):
    """``net.predict`` with its default options as a module's forward, for the tracer."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return self.net.predict(l_norm)


def export_onnx(net: nn.Module, path: str | Path, size: int = 256) -> Path:
    if not exportable(net):
        raise ChromalabError(
            f"{type(net).__name__} samples at inference (its predict() is not a single forward "
            "pass), so it cannot be exported to ONNX; use the PyTorch backend"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = -(-size // PAD_MULTIPLE) * PAD_MULTIPLE  # so the traced in-graph padding is zero
    example = torch.zeros(1, 1, size, size)
    with atomic_target(path) as temporary, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python code
        torch.onnx.export(
            PredictGraph(net).eval(), (example,), str(temporary), dynamo=False, opset_version=OPSET,
            input_names=["l_norm"], output_names=["prediction"],
            dynamic_axes={"l_norm": {0: "batch", 2: "height", 3: "width"},
                          "prediction": {0: "batch", 2: "height", 3: "width"}},
        )
    return path


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxBackend:
    """Callable like ``net.predict``: normalized L in, the model's prediction out."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: colorizing a folder decodes, merges and
        # writes photos on other threads meanwhile, and spinning took their cores (folder
        # photos/s +3-5% on 2 cores; the network alone within 5% either way).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, l_norm: torch.Tensor, **options: Any) -> torch.Tensor:
        # The networks pad odd sizes to a multiple of their stride in Python, which the ONNX
        # tracer freezes at the export size; padding here keeps the graph's own padding at 0.
        from chromalab.models.blocks import pad_to_multiple

        padded, (height, width) = pad_to_multiple(l_norm.cpu(), PAD_MULTIPLE)
        (prediction,) = self.session.run(None, {"l_norm": np.ascontiguousarray(padded.numpy(), dtype=np.float32)})
        return torch.from_numpy(prediction)[..., :height, :width]


def cached_onnx_path(model_file: Path) -> Path:
    """Where the ONNX export of a model file lives: beside it if shipped, else in the cache."""
    sibling = model_file.with_suffix(".onnx")
    if sibling.is_file():
        return sibling
    from chromalab.data.folder import cache_dir

    digest = hashlib.sha1(model_file.read_bytes()).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{model_file.stem}-{digest}.onnx"
