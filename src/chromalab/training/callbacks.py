"""Callbacks: sample grids at each validation, images/s on the progress bar, model export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageDraw

from chromalab.checkpoint import save_network
from chromalab.color import compose_lab, float_to_uint8, gray_rgb_from_l_norm, rgb_to_l_norm, uint8_to_float


def grid_image(rows: list[list[np.ndarray]], labels: list[str] | None = None, pad: int = 2) -> Image.Image:
    """Tile equally sized HxWx3 uint8 arrays, a list per row, with optional column labels."""
    tile_h, tile_w = rows[0][0].shape[:2]
    columns = max(len(r) for r in rows)
    header = 14 if labels else 0
    canvas = Image.new(
        "RGB",
        (columns * (tile_w + pad) + pad, header + len(rows) * (tile_h + pad) + pad),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(labels or []):
        draw.text((pad + c * (tile_w + pad) + 2, 1), label, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            canvas.paste(Image.fromarray(tile), (pad + c * (tile_w + pad), header + pad + r * (tile_h + pad)))
    return canvas


def to_hwc(images: torch.Tensor) -> list[np.ndarray]:
    return [a for a in float_to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()]


class SampleGrid(L.Callback):
    """At each validation, colorize a fixed set of validation photos: gray | prediction | truth."""

    def __init__(self, count: int = 8) -> None:
        self.count = count
        self._photos: torch.Tensor | None = None

    def _fixed_photos(self, trainer: L.Trainer) -> torch.Tensor | None:
        if self._photos is None:
            dataset = getattr(trainer.datamodule, "val_set", None)
            if dataset is None or len(dataset) == 0:
                return None
            count = min(self.count, len(dataset))
            self._photos = torch.stack([dataset[i] for i in range(count)])
        return self._photos

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        photos = self._fixed_photos(trainer)
        if photos is None:
            return
        rgb = uint8_to_float(photos.to(module.device))
        l_norm = rgb_to_l_norm(rgb)
        was_training = module.training
        module.eval()
        ab = module.predict_ab(l_norm, generator=torch.Generator(device=l_norm.device).manual_seed(0))
        module.train(was_training)
        columns = [gray_rgb_from_l_norm(l_norm), compose_lab(l_norm, ab), rgb]
        rows = [list(tiles) for tiles in zip(*(to_hwc(c) for c in columns))]
        image = grid_image(rows, ["gray", "prediction", "truth"])
        folder = Path(trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"epoch{trainer.current_epoch:03d}-step{trainer.global_step:06d}.png")
        image.save(folder / "latest.png")
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("samples", np.asarray(image), trainer.global_step, dataformats="HWC")


class Throughput(L.Callback):
    """Images per second of training, on the progress bar and in the logs."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._seen = 0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start, self._seen = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._seen += len(batch) * trainer.world_size
        if self._start is not None:
            elapsed = time.perf_counter() - self._start
            if elapsed > 0:
                module.log("img/s", self._seen / elapsed, prog_bar=True, logger=True, rank_zero_only=True)


class ExportModel(L.Callback):
    """At the end of training write the weights as ``model.safetensors`` in the run folder.

    The best-by-val/loss weights, except with ``final=True`` (GAN objectives): there val/loss
    is the reconstruction term, which the adversarial phase trades away on purpose, so
    "best" would pick a pre-training epoch; the final weights are the trained model.
    """

    def __init__(self, run_dir: Path, final: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.final = final

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        net = module.net
        best = "" if self.final else getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best and Path(best).is_file():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            net = module.build_network()
            net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        save_network(net, module.spec, self.run_dir / "model.safetensors")


class SaveFinalState(L.Callback):
    """Write ``last.ckpt`` when fitting ends, whatever ended it.

    ModelCheckpoint saves at epoch ends; a run stopped mid-epoch by ``trainer.max_time`` was
    seen to end without saving its final steps (the last checkpoint stayed at the previous
    epoch), so ``--resume`` would redo them and the final weights were lost.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.saved_step = -1

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict) -> None:
        self.saved_step = trainer.global_step

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.global_step != self.saved_step:  # only when the last save is stale
            trainer.save_checkpoint(self.path)  # every rank calls it; only rank zero writes


class FreezeEncoder(L.Callback):
    """Keep a pretrained encoder (``net.encoder``) fixed for the first epochs.

    While frozen its parameters get no gradients (AdamW then leaves them untouched) and its
    batch-norm layers stay in eval mode, so the ImageNet statistics are not disturbed by the
    decoder's early, noisy gradients.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def _set(self, module: L.LightningModule, frozen: bool) -> None:
        encoder = getattr(module.net, "encoder", None)
        if encoder is None:
            return
        encoder.requires_grad_(not frozen)
        if frozen:
            encoder.eval()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._set(module, trainer.current_epoch < self.epochs)
