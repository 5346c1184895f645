"""The study's training callbacks: a clock of training time per step (with weight snapshots
every N minutes) and a stop after a number of training images.

The clock is what the FID-against-time plot reads: ``clock.csv`` in the run folder maps each
optimizer step to the seconds of training before it, counted from the start of training
(after the data is indexed) and carried across interruptions — the seconds a resumed run had
reached are saved in its checkpoints, and steps redone after a resume replace the old rows.
"""

from __future__ import annotations

import bisect
import csv
import io
import time
from pathlib import Path
from typing import Any

import lightning as L

from chromalab.atomic import write_text_atomic

CLOCK_FILE = "clock.csv"
WRITE_EVERY_S = 10.0  # how often the clock file is rewritten while training


def read_clock(run_dir: Path) -> list[tuple[int, float]]:
    """(step, seconds of training) rows of a run's clock, in step order; [] without one."""
    path = Path(run_dir) / CLOCK_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = [(int(row["step"]), float(row["seconds"])) for row in csv.DictReader(handle)]
    return sorted(rows)


def seconds_at(clock: list[tuple[int, float]], step: int) -> float | None:
    """Training seconds when ``step`` was reached (the last row at or before it)."""
    index = bisect.bisect_right([s for s, _ in clock], step) - 1
    return clock[index][1] if index >= 0 else None


def snapshot_path(run_dir: Path, step: int) -> Path:
    # The trainer's own step snapshots (trainer.snapshot_every_steps) have the same names.
    return Path(run_dir) / "checkpoints" / f"step{step:06d}.ckpt"


class TrainingClock(L.Callback):
    """Training seconds per step in ``clock.csv``; a weight snapshot every ``snapshot_every_s``."""

    def __init__(self, run_dir: Path, snapshot_every_s: float | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.snapshot_every_s = snapshot_every_s
        self.offset = 0.0  # training seconds before this resume (restored from the checkpoint)
        self.started: float | None = None
        self.rows: dict[int, float] = {}
        self.next_snapshot = snapshot_every_s
        self.last_write = 0.0

    @property
    def state_key(self) -> str:
        return "StudyTrainingClock"

    def seconds(self) -> float:
        return self.offset + (time.perf_counter() - self.started if self.started is not None else 0.0)

    # Saved in full checkpoints (last.ckpt), so a resumed run continues the count.
    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.offset = float(state_dict.get("seconds", 0.0))

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        step = trainer.global_step
        # Rows past the resumed step are about to be trained again.
        self.rows = {s: t for s, t in read_clock(self.run_dir) if s <= step}
        if step and not self.offset and self.rows:
            self.offset = self.rows[max(self.rows)]  # resumed from a checkpoint without the clock
        self.rows.setdefault(step, self.offset)
        self.started = time.perf_counter()
        if self.snapshot_every_s:
            done = int(self.offset // self.snapshot_every_s)
            self.next_snapshot = (done + 1) * self.snapshot_every_s
        self._write()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = self.seconds()
        step = trainer.global_step
        self.rows.setdefault(step, now)
        if self.snapshot_every_s and self.next_snapshot is not None and now >= self.next_snapshot:
            trainer.save_checkpoint(snapshot_path(self.run_dir, step), weights_only=True)
            while self.next_snapshot <= now:
                self.next_snapshot += self.snapshot_every_s
        if now - self.last_write >= WRITE_EVERY_S:
            self._write()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.rows[trainer.global_step] = self.seconds()
        self._write()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if self.started is not None:
            self._write()

    def _write(self) -> None:
        if not self.run_dir.is_dir():
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["step", "seconds"])
        writer.writerows((step, f"{seconds:.3f}") for step, seconds in sorted(self.rows.items()))
        write_text_atomic(self.run_dir / CLOCK_FILE, buffer.getvalue())
        self.last_write = self.seconds()


class ImageBudget(L.Callback):
    """Stop training once ``images`` training photos have been seen (across resumes)."""

    def __init__(self, images: int, batch_size: int) -> None:
        self.images = images
        self.batch_size = batch_size

    def seen(self, trainer: L.Trainer) -> int:
        # Batches started so far in the whole fit, restored from the checkpoint on resume.
        batches = trainer.fit_loop.epoch_loop.batch_progress.total.ready
        return batches * self.batch_size * trainer.world_size

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.seen(trainer) >= self.images:
            trainer.should_stop = True
