"""Two-process DDP on the CPU (gloo), through the real command line, for a few steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chromalab.checkpoint import load_network


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu(photo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", CHROMALAB_CACHE=str(tmp_path / "cache"))
    command = [
        sys.executable, "-m", "chromalab", "train", "--data", str(photo_dir), "--model", "unet-tiny",
        "--size", "32", "--batch-size", "2", "--epochs", "1", "--workers", "0", "--val-fraction", "0.2",
        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--out", str(out), "--no-progress",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training finished" in result.stdout
    # 10 training photos, batch 2 per process, 2 processes: 2 or 3 steps (DistributedSampler pads).
    import torch

    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] in (2, 3)
    net, spec = load_network(out)
    assert spec.name == "unet-tiny"
