"""Resuming a run: find its checkpoint and its recipe, and keep the recipe.

A run folder holds its resolved ``config.yaml`` and ``checkpoints/last.ckpt``. Resuming loads
both and continues exactly that recipe. A few options may change on the way, because they do
not change what is learned: how long to train (only longer), how the photos are read, how
often the run validates, logs and snapshots, and the hardware it runs on. Everything else
(model, losses, optimizer, size, batch, data, precision, seed, devices) is the recipe: a
change there is refused with one line that points to ``--init-from`` (a new run that starts
from these weights). Every resume goes through :func:`recipe_change` — the command line, the
Python API, and a study entry that resumes after an interruption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chromalab.errors import ChromalabError
from chromalab.training.config import TrainConfig, flatten

CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"

# Options a resumed run may change, and why each leaves the recipe alone.
FREE_ON_RESUME: dict[str, str] = {
    "data.workers": "how photos are decoded",
    "data.cache": "how photos are decoded",
    "trainer.max_time": "a new time budget",
    "trainer.patience": "when to stop early",
    "trainer.accelerator": "the hardware, not the recipe",
    "trainer.val_every": "how often it validates",
    "trainer.limit_val_batches": "how much it validates",
    "trainer.log_every": "logging",
    "trainer.samples": "logging",
    "trainer.progress": "logging",
    "trainer.snapshot_every": "extra snapshots",
    "trainer.snapshot_every_steps": "extra snapshots",
}
# Options that may only grow: a resumed run is extended, never cut short (Ctrl+C stops it).
EXTEND_ON_RESUME = ("trainer.epochs", "trainer.max_steps")
# Where the run lives: on resume it is the run's own folder, whatever the request said.
IGNORED_ON_RESUME = ("out",)


@dataclass(frozen=True)
class RecipeChange:
    """One option that differs between a run's recipe and a resume request."""

    path: str
    trained: Any
    requested: Any
    shortened: bool = False  # an extendable option asked to shrink

    def message(self, run: Path | str, option: str | None = None) -> str:
        """One line naming the option (``option``: how the user gave it, e.g. ``--batch-size``)."""
        named = option or self.path
        if self.shortened:
            return (f"{named} {_show(self.requested)}: {run} is set to {self.path}={_show(self.trained)}; "
                    "a resumed run can be extended, not shortened (stop it with Ctrl+C)")
        return (f"{named} {_show(self.requested)}: {run} was trained with {self.path}={_show(self.trained)}; "
                f"a resumed run keeps its recipe: start a new run from its weights with --init-from {run}")


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


def _grows(path: str, trained: Any, requested: Any) -> bool:
    if path == "trainer.max_steps":  # -1: no step limit, the largest value there is
        return requested == -1 or (trained != -1 and requested >= trained)
    return requested >= trained


def recipe_changes(trained: TrainConfig, requested: TrainConfig) -> list[RecipeChange]:
    """The options of ``requested`` that a resume of ``trained`` may not take, in config order."""
    before = flatten(trained.to_dict())
    after = flatten(requested.to_dict())
    changes = []
    for path in dict.fromkeys([*before, *after]):
        old, new = before.get(path), after.get(path)
        if _same(old, new) or path in FREE_ON_RESUME or path in IGNORED_ON_RESUME:
            continue
        if path in EXTEND_ON_RESUME:
            if not _grows(path, old, new):
                changes.append(RecipeChange(path, old, new, shortened=True))
            continue
        changes.append(RecipeChange(path, old, new))
    return changes


def _same(a: Any, b: Any) -> bool:
    # An empty kwargs mapping flattens to itself and a full one to its keys: the keys compare.
    if (a == {} and b is None) or (a is None and b == {}):
        return True
    # YAML gives lists where the config holds tuples (betas); the values are what matter.
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def find_run(resume: str | Path) -> tuple[Path, Path]:
    """``(run folder, checkpoint)`` for a run folder or a checkpoint inside one; one line if neither."""
    path = Path(resume)
    if path.is_dir():
        run, checkpoint = path, path / LAST_CHECKPOINT
    elif path.suffix == ".ckpt":
        if not path.is_file():
            raise ChromalabError(f"{path}: no such checkpoint")
        run, checkpoint = path.parent.parent if path.parent.name == "checkpoints" else path.parent, path
    elif not path.exists():
        raise ChromalabError(f"{path}: no such run folder")
    else:
        raise ChromalabError(f"{path}: neither a run folder nor a .ckpt checkpoint")
    if not (run / CONFIG_FILE).is_file():
        raise ChromalabError(f"{run}: no {CONFIG_FILE}, so not a chromalab run folder: nothing tells how it was trained")
    if not checkpoint.is_file():
        raise ChromalabError(f"{checkpoint}: no checkpoint to resume from (the run saves one at its first validation)")
    return run, checkpoint


def trained_config(run: Path) -> TrainConfig:
    """The recipe a run folder was trained with (its ``config.yaml``)."""
    return TrainConfig.from_yaml(run / CONFIG_FILE)
