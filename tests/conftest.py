"""Shared fixtures: tiny synthetic photos and a tiny trained model, made once per test run."""

from __future__ import annotations

import importlib.util
import os
import signal
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

# Tiny tensors gain nothing from a second thread, and thread hand-offs cost a lot whenever
# the machine is busy: one thread keeps the suite fast and its timing steady.
torch.set_num_threads(1)
# Indexes and decoded caches of test runs never touch the user's cache (see _isolated_cache).
os.environ.setdefault("CHROMALAB_CACHE", tempfile.mkdtemp(prefix="chromalab-test-cache-"))


def load_script(name: str) -> ModuleType:
    """A script of scripts/ (not a package) as a module, for its tests."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_then_sigterm(real_train, worker_error: bool):
    """train() that receives SIGTERM after its first batch, as ``kill`` or ``pkill -f`` sends it.

    With ``worker_error`` the signal also "kills a DataLoader worker": the error PyTorch raises
    then replaces the interruption, which is the race a process-group SIGTERM produces.
    """
    import lightning as L

    class SigtermAfterFirstBatch(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            if trainer.global_step == 1:
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(1)  # the handler runs at the next bytecode; this is never reached
                except KeyboardInterrupt:
                    if not worker_error:
                        raise
                    raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated. ") from None

    def train(config, resume=None, callbacks=()):
        return real_train(config, resume=resume, callbacks=[*callbacks, SigtermAfterFirstBatch()])

    return train


def synthetic_photo(seed: int, width: int = 48, height: int = 40) -> Image.Image:
    """A smooth, colorful test picture: a colored gradient plus a few flat colored shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3)
    slope = rng.uniform(-2.0, 2.0, size=(3, 2))
    image = base + x[..., None] * slope[:, 0] + y[..., None] * slope[:, 1]
    for _ in range(3):
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(4, 12)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        image[mask] = rng.uniform(0, 255, size=3)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Folder indexes and decoded caches go to a temp dir of this test run, never to ~/.cache.
    monkeypatch.setenv("CHROMALAB_CACHE", str(tmp_path_factory.getbasetemp() / "chromalab-cache"))


@pytest.fixture(autouse=True)
def _fp32_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same numbers on every machine: precision "auto" would train in bf16 on CPUs with AMX.
    # tests/test_precision.py covers the bf16 path explicitly.
    monkeypatch.setenv("CHROMALAB_FP32", "1")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 small color photos (PNG and JPEG) in two subfolders."""
    root = tmp_path_factory.mktemp("photos")
    for index in range(12):
        folder = root / ("a" if index % 2 else "b")
        folder.mkdir(exist_ok=True)
        suffix = ".png" if index % 3 else ".jpg"
        synthetic_photo(index).save(folder / f"photo{index:02d}{suffix}")
    return root


@pytest.fixture(scope="session")
def tiny_model(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with a unet-tiny trained for a few steps on ``photo_dir`` (seconds)."""
    os.environ["CHROMALAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    from chromalab.training.config import TrainConfig
    from chromalab.training.trainer import train

    config = TrainConfig.from_dict({
        "model": {"name": "unet-tiny"},
        "data": {"path": str(photo_dir), "size": 32, "batch_size": 4, "workers": 0, "val_fraction": 0.2},
        "trainer": {"epochs": 2, "progress": False, "accelerator": "cpu", "devices": 1, "samples": 2},
        "optim": {"warmup_steps": 2},
        "out": str(tmp_path_factory.mktemp("runs") / "tiny"),
    })
    return train(config)
