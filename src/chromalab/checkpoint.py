"""Model files: a spec that rebuilds the network, and the weights, in one file.

Shipped models are safetensors files whose metadata holds the ModelSpec as JSON; Lightning
checkpoints (``.ckpt``) hold the whole training config in their hyper-parameters. Either is
enough on its own to rebuild and use the model: ``load_network(path)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from chromalab import __version__
from chromalab.atomic import atomic_target
from chromalab.color import NORMALIZATION, get_color_space
from chromalab.errors import ChromalabError
from chromalab.models.registry import create_model, model_entry

FORMAT = "chromalab-model/1"
# default: faithful, muted colors (L1). vivid: the same network after PatchGAN fine-tuning,
# saturated colors that are more often wrong (see the model card): DeOldify's stable/artistic pair.
SHIPPED_MODELS = {"default": "default.safetensors", "vivid": "vivid.safetensors"}


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained network and use it."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # constructor options, out_channels too
    color_space: str = "lab"
    size: int = 256  # the resolution it was trained at; inference default
    normalization: dict[str, float] = field(default_factory=lambda: dict(NORMALIZATION))
    extra: dict[str, Any] = field(default_factory=dict)  # training notes: data, recipe, metrics

    def build(self, weights_follow: bool = False) -> nn.Module:
        """The untrained network; ``weights_follow`` skips pretrained weights that trained ones replace."""
        return create_model(self.name, weights_follow=weights_follow, **self.kwargs)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        return cls(**json.loads(text))

    @classmethod
    def from_train_config(cls, config: dict[str, Any]) -> "ModelSpec":
        """The spec of the generator a training config builds (see training.config)."""
        model = config["model"]
        space = model.get("color_space") or model_entry(model["name"]).color_space
        kwargs = {"out_channels": get_color_space(space).channels} | dict(model.get("kwargs") or {})
        return cls(
            name=model["name"],
            kwargs=kwargs,
            color_space=space,
            size=int(config["data"]["size"]),
        )


def save_network(
    net: nn.Module, spec: ModelSpec, path: str | Path, half: bool = False, overwrite: bool = True
) -> Path:
    """Write weights (optionally as fp16) and the spec to one safetensors file.

    ``overwrite=False``: raise OutputExistsError rather than replace an existing file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in net.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor
    metadata = {"format": FORMAT, "spec": spec.to_json(), "chromalab_version": __version__}
    with atomic_target(path, replace=overwrite) as temporary:  # safetensors alone would leave the file owner-only
        save_file(tensors, str(temporary), metadata=metadata)
    return path


def _safetensors_spec(path: Path) -> ModelSpec:
    """The spec in a safetensors file's header; the weights are not read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ChromalabError(f"{path}: not a readable safetensors model ({error})") from None
    if metadata.get("format") != FORMAT or "spec" not in metadata:
        raise ChromalabError(f"{path}: safetensors file without a chromalab model spec")
    return ModelSpec.from_json(metadata["spec"])


def _read_safetensors(path: Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    return _safetensors_spec(path), load_file(str(path))


def _read_lightning(path: Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise ChromalabError(f"{path}: not a readable checkpoint ({error})".split("\n")[0]) from None
    config = checkpoint.get("hyper_parameters", {}).get("config")
    if config is None:
        raise ChromalabError(f"{path}: checkpoint has no chromalab training config")
    spec = ModelSpec.from_train_config(config)
    prefix = "net."
    state = {
        key[len(prefix):]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(prefix)
    }
    return spec, state


def resolve_model_path(name_or_path: str | Path | None) -> Path:
    """A shipped model's name, a model file, or a training run folder -> the file to load."""
    if name_or_path is None:
        name_or_path = "default"
    text = str(name_or_path)
    if text in SHIPPED_MODELS:
        shipped = resources.files("chromalab.weights") / SHIPPED_MODELS[text]
        if not shipped.is_file():
            raise ChromalabError(
                f"model {text!r} is not shipped in this installation; "
                "train one with `chromalab train` and pass --model PATH"
            )
        return Path(str(shipped))
    path = Path(text)
    if path.is_dir():
        for candidate in (path / "model.safetensors", path / "checkpoints" / "best.ckpt",
                          path / "checkpoints" / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise ChromalabError(f"{path}: run folder without model.safetensors or checkpoints")
    if not path.exists():
        raise ChromalabError(
            f"{path}: no such model file (shipped models: {', '.join(SHIPPED_MODELS)})"
        )
    return path


def read_spec(name_or_path: str | Path | None = None) -> ModelSpec:
    """The spec of a model file, run folder or shipped name, without building the network
    (a safetensors file's header only; a Lightning checkpoint has to be read whole)."""
    path = resolve_model_path(name_or_path)
    if path.suffix == ".ckpt":
        return _read_lightning(path)[0]
    return _safetensors_spec(path)


def load_network(name_or_path: str | Path | None = None) -> tuple[nn.Module, ModelSpec]:
    """Rebuild a network from a model file, run folder or shipped name; eval mode, fp32."""
    path = resolve_model_path(name_or_path)
    if path.suffix == ".ckpt":
        spec, state = _read_lightning(path)
    else:
        spec, state = _read_safetensors(path)
    net = spec.build(weights_follow=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        raise ChromalabError(f"{path}: weights do not fit model {spec.name!r} ({error})".split("\n")[0]) from None
    net.eval()
    return net, spec
