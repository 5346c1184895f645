"""The study file: what ``chromalab study`` trains and how it compares the results.

A study file is YAML, checked by pydantic before anything runs::

    name: families                  # optional; default: the file's name
    data: ../corpus/train           # training photos (relative to where the command runs)
    eval: {data: ../corpus/heldout, limit: 500}   # evaluation photos, shared by every entry
    size: 64                        # training and evaluation size, px
    seed: 0
    budget: {minutes: 7}            # per entry: minutes (wall clock) and/or images seen
    curve: {every_minutes: 2, photos: 200}        # weight snapshots for FID against time
    set: {data.val_fraction: 0.01}  # options for every entry (dotted, as `train --set`)
    entries:
      - name: unet
        config: ../unet-l1.yaml     # relative to the study file
      - name: pix2pix-l1-10
        config: ../pix2pix-patch-vanilla.yaml
        set: {gan.l1_weight: 10}

Everything that can be checked before training is checked here, each problem as one line
(a :class:`~chromalab.errors.ChromalabError`): unknown keys, configs that do not exist or do
not load, unknown option paths and values of the wrong type, missing data folders.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from chromalab.errors import ChromalabError
from chromalab.yaml_files import read_yaml_mapping
from chromalab.training.config import TrainConfig, flatten

# Entry names become folder names (OUT/runs/<name>) and table rows: keep them plain.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", max_length=64)]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]

# Options the study itself sets for every entry, so that they are equal: an entry's `set`
# may not change them (the budget, the size, the seed, the data and the run folder).
STUDY_OPTIONS = {
    "out": "the run folder is OUT/runs/<name>",
    "data.path": "the study's data",
    "data.size": "the study's size",
    "seed": "the study's seed",
    "data.seed": "the study's seed",
    "trainer.max_time": "the study's budget",
    "trainer.max_steps": "the study's budget",
}
# An images budget ends a run by itself; the epoch limit must not end it first.
UNLIMITED_EPOCHS = 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EntrySpec(_Strict):
    name: Name
    config: str = Field(min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set")


class EvalSpec(_Strict):
    data: str = Field(min_length=1)
    # At most this many photos, spread evenly over the folder's sorted list (every k-th), so
    # that a slice of a class-sorted folder still covers every class.
    limit: PositiveInt | None = None
    size: PositiveInt | None = None  # default: the study's size
    batch_size: PositiveInt = 16
    metrics: list[str] | None = None  # default: all of chromalab.evaluation.METRICS


class BudgetSpec(_Strict):
    minutes: PositiveFloat | None = None  # wall clock -> trainer.max_time
    images: PositiveInt | None = None  # training photos seen -> trainer.max_steps

    @model_validator(mode="after")
    def _one_at_least(self) -> "BudgetSpec":
        if self.minutes is None and self.images is None:
            raise ValueError("give minutes, images or both")
        return self


class CurveSpec(_Strict):
    every_minutes: PositiveFloat | None = None  # a weight snapshot every N minutes of training
    every_steps: PositiveInt | None = None  # ... or every N optimizer steps (trainer.snapshot_every_steps)
    photos: Annotated[int, Field(ge=2)] = 200  # FID of each snapshot on this many evaluation photos
    metric: str = "fid"  # what the curve plots (another evaluation metric is cheaper than FID)


class StudyFile(_Strict):
    name: Name | None = None
    data: str = Field(min_length=1)
    eval: EvalSpec
    size: Annotated[int, Field(ge=8)]
    seed: int = 0
    budget: BudgetSpec
    curve: CurveSpec = Field(default_factory=CurveSpec)
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set")
    entries: list[EntrySpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "StudyFile":
        seen: set[str] = set()
        for entry in self.entries:
            if entry.name in seen:
                raise ValueError(f"entry name {entry.name!r} is used twice")
            seen.add(entry.name)
        return self


@dataclass
class Entry:
    """One resolved entry: its name, where its config came from, and the config to train."""

    name: str
    config_path: Path
    overrides: dict[str, Any]
    config: TrainConfig


@dataclass
class Study:
    """A validated study file with every entry resolved to a training configuration."""

    path: Path
    name: str
    spec: StudyFile
    data: str
    eval_data: str
    eval_photos: list[Path]
    out: Path  # the study's folder
    entries: list[Entry] = field(default_factory=list)

    @property
    def eval_size(self) -> int:
        return self.spec.eval.size or self.spec.size

    def curve_photos(self) -> list[Path]:
        """The photos each snapshot's FID is measured on: spread evenly over the evaluation set."""
        return spread(self.eval_photos, self.spec.curve.photos)

    def describe_budget(self) -> str:
        budget = self.spec.budget
        parts = []
        if budget.minutes is not None:
            parts.append(f"{budget.minutes:g} min of training")
        if budget.images is not None:
            parts.append(f"{budget.images:,} training images")
        if len(parts) == 2:
            return f"{parts[0]} or {parts[1]} per entry, whichever comes first"
        return f"{parts[0]} per entry"


# --- reading -----------------------------------------------------------------------------------


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + {"overrides": "set"}.get(str(part), str(part))
    return text or "the study"


def _one_line(error: ValidationError, values: dict[str, Any]) -> str:
    """pydantic's first problem as one line that names the key (with the entry's name)."""
    problems = error.errors()
    # A misspelt key also makes the intended key "missing": name the misspelling first.
    first = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    loc = tuple(p for p in first["loc"] if p not in ("function-after",))
    where = _location(loc)
    if loc[:1] == ("entries",) and len(loc) > 1 and isinstance(loc[1], int):
        entries = values.get("entries") or []
        name = entries[loc[1]].get("name") if loc[1] < len(entries) and isinstance(entries[loc[1]], dict) else None
        if name:
            where = f"entry {name!r} ({where})"
    kind = first["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = ", ".join(("set" if f == "overrides" else f) for f in model.model_fields) if model else ""
        message = f"{where}: unknown key" + (f" (known: {known})" if known else "")
    elif kind == "missing":
        message = f"{where}: missing"
    else:
        message = f"{where}: {first['msg'].removeprefix('Value error, ')}"
    more = len(problems) - 1
    return message + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The part of the study file a location points into (to list its keys)."""
    if not loc:
        return StudyFile
    if loc[0] == "entries":
        return EntrySpec if len(loc) == 2 else None
    return {"eval": EvalSpec, "budget": BudgetSpec, "curve": CurveSpec}.get(str(loc[0])) if len(loc) == 1 else None


def read_study_file(path: Path) -> StudyFile:
    values = read_yaml_mapping(path, "study file", "name, data, eval, size, budget, entries, ...")
    try:
        return StudyFile.model_validate(values)
    except ValidationError as error:
        raise ChromalabError(f"{path}: {_one_line(error, values)}") from None


# --- photos ------------------------------------------------------------------------------------


def spread(paths: list[Path], count: int | None) -> list[Path]:
    """At most ``count`` of ``paths``, evenly spaced (first and last included), in order."""
    if count is None or count >= len(paths):
        return list(paths)
    indices = sorted({int(round(i)) for i in np.linspace(0, len(paths) - 1, count)})
    return [paths[i] for i in indices]


def evaluation_photos(folder: str, limit: int | None) -> list[Path]:
    from chromalab.evaluation.evaluate import collect_paths

    return spread(collect_paths(folder), limit)


# --- entries -----------------------------------------------------------------------------------


def _apply(config: TrainConfig, overrides: dict[str, Any], where: str) -> None:
    for path, value in flatten(overrides).items():
        if path in STUDY_OPTIONS:
            raise ChromalabError(f"{where}: {path!r} is set by the study ({STUDY_OPTIONS[path]})")
        try:
            config.set(path, value)
        except ChromalabError as error:
            raise ChromalabError(f"{where}: {error}") from None


def max_time(minutes: float) -> str:
    """Minutes -> Lightning's DD:HH:MM:SS (whole seconds)."""
    seconds = max(1, int(round(minutes * 60)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days:02d}:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def steps_per_batch(config: TrainConfig) -> int:
    """Optimizer steps (Lightning's global_step) per batch, at most: a GAN steps D and G."""
    from chromalab.training.trainer import objective_name

    return 2 if objective_name(config) == "adversarial" else 1


def apply_study_options(config: TrainConfig, spec: StudyFile, data: str, run_dir: Path, progress: bool) -> None:
    """The options every entry shares: data, size, seed, budget, snapshots, run folder."""
    config.data.path = data
    config.data.size = spec.size
    config.seed = spec.seed
    config.data.seed = spec.seed
    budget = spec.budget
    config.trainer.max_time = max_time(budget.minutes) if budget.minutes is not None else None
    if budget.images is not None:
        # max_steps lays the LR schedule over the budget; a GAN's steps per batch vary (its
        # pre-training steps G alone), so the upper bound is used and the study's ImageBudget
        # callback stops at the exact number of images.
        batches = math.ceil(budget.images / config.data.batch_size)
        config.trainer.max_steps = batches * steps_per_batch(config)
        config.trainer.epochs = UNLIMITED_EPOCHS
    else:
        config.trainer.max_steps = -1  # a config's own step limit would end the time budget early
    if spec.curve.every_steps is not None:
        config.trainer.snapshot_every_steps = spec.curve.every_steps
    config.out = str(run_dir)
    config.trainer.progress = progress


def resolve_entry(entry: EntrySpec, spec: StudyFile, study_path: Path, data: str, shared: dict[str, Any],
                  out: Path, progress: bool) -> Entry:
    from chromalab.models.registry import model_entry
    from chromalab.training.trainer import check_options

    where = f"{study_path}: entry {entry.name!r}"
    config_path = Path(entry.config)
    if not config_path.is_absolute():
        config_path = study_path.parent / config_path
    if not config_path.is_file():
        raise ChromalabError(f"{where}: config {entry.config}: no such file (paths are relative to the study file)")
    try:
        config = TrainConfig.from_yaml(config_path)
    except ChromalabError as error:
        raise ChromalabError(f"{where}: {error}") from None
    _apply(config, shared, f"{where}: shared set")
    _apply(config, entry.overrides, where)
    try:
        model_entry(config.model.name)
    except ValueError as error:
        raise ChromalabError(f"{where}: {error}") from None
    apply_study_options(config, spec, data, out / "runs" / entry.name, progress)
    try:
        check_options(config)
    except ChromalabError as error:
        raise ChromalabError(f"{where}: {error}") from None
    return Entry(entry.name, config_path, dict(entry.overrides), config)


def load_study(
    path: str | Path,
    out: str | Path | None = None,
    data: str | None = None,
    eval_data: str | None = None,
    sets: list[str] | None = None,
    progress: bool = True,
) -> Study:
    """Read and check a study file; ``data``/``eval_data``/``sets`` override it (the CLI's flags).

    Raises a one-line ChromalabError for anything wrong, before any training or writing.
    """
    path = Path(path)
    spec = read_study_file(path)
    name = spec.name or path.stem
    out = Path(out) if out is not None else Path("studies") / name
    shared = copy.deepcopy(spec.overrides)
    for item in sets or []:
        if "=" not in item:
            raise ChromalabError(f"--set {item!r}: expected PATH=VALUE")
        key, value = item.split("=", 1)
        shared[key.strip()] = value
    data = data or spec.data
    eval_data = eval_data or spec.eval.data
    if not Path(data).is_dir():
        raise ChromalabError(f"{path}: data {data}: no such folder")
    if not Path(eval_data).exists():
        raise ChromalabError(f"{path}: eval.data {eval_data}: no such folder")
    _check_metrics(path, "eval.metrics", spec.eval.metrics)
    _check_metrics(path, "curve.metric", [spec.curve.metric])
    entries = [resolve_entry(entry, spec, path, data, shared, out, progress) for entry in spec.entries]
    try:
        photos = evaluation_photos(eval_data, spec.eval.limit)
    except ChromalabError as error:
        raise ChromalabError(f"{path}: eval.data {error}") from None
    if len(photos) < 2:
        raise ChromalabError(f"{path}: eval.data {eval_data}: FID needs at least 2 photos, found {len(photos)}")
    return Study(path, name, spec, data, eval_data, photos, out, entries)


def _check_metrics(path: Path, key: str, metrics: list[str] | None) -> None:
    if metrics is None:
        return
    from chromalab.evaluation.evaluate import resolve_metrics

    try:
        resolve_metrics(metrics)
    except ChromalabError as error:
        raise ChromalabError(f"{path}: {key}: {error}") from None
