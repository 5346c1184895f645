"""``train(config)``: a run folder, the data, the objective, and a Lightning Trainer around them.

The run folder holds ``config.yaml`` (the resolved configuration), ``checkpoints/`` (``best``
and ``last``), ``logs/metrics.csv``, TensorBoard events in ``tb/``, sample grids in
``samples/`` and, at the end, ``model.safetensors`` (the best weights, ready to colorize).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from chromalab.atomic import first_free_folder, write_text_atomic
from chromalab.data.datamodule import PhotoDataModule
from chromalab.data.shards import ShardDataModule, is_shard_source
from chromalab.errors import ChromalabError
from chromalab.models.registry import model_entry
from chromalab.precision import resolve_precision
from chromalab.training.callbacks import ExportModel, FreezeEncoder, SampleGrid, SaveFinalState, Throughput
from chromalab.training.config import TrainConfig
from chromalab.training.objective import ColorizationObjective, objective_class
from chromalab.training.resume import find_run, recipe_changes, trained_config

log = logging.getLogger(__name__)
# Lightning announces every default (devices found, tips about its cloud services) at INFO.
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def objective_name(config: TrainConfig) -> str:
    """The model's own objective, or adversarial training when a discriminator is set."""
    objective = model_entry(config.model.name).objective
    if config.gan.discriminator and objective == "regression":
        return "adversarial"
    return objective


def build_objective(config: TrainConfig) -> ColorizationObjective:
    return objective_class(objective_name(config))(config.to_dict())


def initialize_weights(objective: ColorizationObjective, source: str) -> None:
    """Start the network from a trained model's weights (fine-tuning, or a later phase).

    A model of the same family must fit exactly. One of another family (an ``effunet`` that
    starts an ``effclassify``, say) gives every tensor whose name and shape match, as timm
    does when a pretrained backbone gets a new head; the rest keep their initialization.
    """
    from chromalab.checkpoint import load_network

    net, spec = load_network(source)
    mine = objective.spec
    if spec.color_space != mine.color_space:
        raise ChromalabError(f"{source}: a {spec.name} model in {spec.color_space}; this run trains "
                             f"{mine.name} in {mine.color_space}")
    if spec.name == mine.name:
        try:
            objective.net.load_state_dict(net.state_dict())
        except RuntimeError:
            raise ChromalabError(f"{source}: its weights do not fit this run's {mine.name} options "
                                 f"(it was built with {spec.kwargs})") from None
        return
    target = objective.net.state_dict()
    shared = {name: value for name, value in net.state_dict().items()
              if name in target and target[name].shape == value.shape}
    if not shared:
        raise ChromalabError(f"{source}: a {spec.name} model shares no weights with this run's {mine.name}")
    objective.net.load_state_dict(shared, strict=False)
    fresh = sorted({name.split(".")[0] for name in target if name not in shared})
    log.info("started from %s (%s): %d of %d tensors; fresh: %s", source, spec.name, len(shared),
             len(target), ", ".join(fresh) or "none")


MAX_TIME = re.compile(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}")  # Lightning's Timer format, DD:HH:MM:SS


def check_options(config: TrainConfig) -> None:
    """Options Lightning would reject with a traceback, and only after the data is indexed."""
    max_time = config.trainer.max_time
    if max_time is not None and not MAX_TIME.fullmatch(str(max_time)):
        raise ChromalabError(f"trainer.max_time {max_time!r}: expected DD:HH:MM:SS, e.g. 00:01:30:00")


def build_datamodule(config: TrainConfig) -> L.LightningDataModule:
    data = config.data
    if not data.path:
        raise ChromalabError("no training data: give --data DIR (or data.path in the config)")
    if not Path(data.path).exists() and not any(c in data.path for c in "{*"):
        raise ChromalabError(f"{data.path}: no such folder")
    # Tar shards (chromalab prepare --shards) or a photo folder: the same options either way.
    datamodule = ShardDataModule if is_shard_source(data.path) else PhotoDataModule
    return datamodule(
        data.path, size=data.size, batch_size=data.batch_size, val_fraction=data.val_fraction,
        seed=data.seed, workers=data.workers, cache=data.cache, limit=data.limit,
        order_seed=training_order_seed(data.seed, config.seed),
    )


def training_order_seed(split_seed: int, run_seed: int) -> int:
    """The seed of the training photos' order: the run's ``seed`` changes it, the split stays.

    A phase continued from earlier weights with another ``seed`` then sees other photos first
    instead of the earlier phase's sequence again. ``seed: 0`` keeps the order runs had before
    the two were separated (the split's seed alone).
    """
    return split_seed + 1_000_003 * run_seed


RUN_DIR_ENV = "CHROMALAB_RUN_DIR"  # the folder rank 0 chose, for the DDP processes it starts


def resolve_resume(config: TrainConfig, resume: str | None) -> tuple[Path, Path] | None:
    """``(run folder, checkpoint)`` to resume: ``last`` (the --out run's), a run folder or a .ckpt."""
    if not resume:
        return None
    if resume == "last":
        if not config.out:
            raise ChromalabError("--resume last needs the run: give --out RUN_FOLDER (or --resume RUN_FOLDER)")
        resume = config.out
    return find_run(resume)


def check_recipe_kept(config: TrainConfig, run: Path) -> None:
    """A resume continues the run's own recipe: the first option that would change it is an error."""
    changes = recipe_changes(trained_config(run), config)
    if changes:
        raise ChromalabError(changes[0].message(run))


def new_run_dir(config: TrainConfig) -> Path:
    """A folder no earlier run uses: ``out`` if it is new or empty, else ``out-2``, ``out-3``, ...

    With no ``out``, ``runs/<model>-<date>-<time>``. A run never writes into another run's
    folder: its model file, config and metric log would be replaced, and Lightning would put a
    ``last-v1.ckpt`` beside the old ``last.ckpt``, so a later --resume would continue the wrong run.
    """
    import time

    chosen = os.environ.get(RUN_DIR_ENV)
    if chosen and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(chosen)  # a DDP process: rank 0 already chose (and created) the folder
    base = Path(config.out) if config.out else Path("runs") / f"{config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return first_free_folder(base)


def set_aside_metric_log(run_dir: Path) -> None:
    """Lightning's CSVLogger deletes an existing metrics.csv: keep it as a numbered part."""
    current = run_dir / "logs" / "metrics.csv"
    if current.is_file():
        part = 1
        while (run_dir / "logs" / f"metrics-part{part}.csv").exists():
            part += 1
        current.rename(run_dir / "logs" / f"metrics-part{part}.csv")


def merge_metric_logs(run_dir: Path) -> None:
    """Join the parts of a resumed run and the new log into one metrics.csv, in step order."""
    import csv

    logs = run_dir / "logs"
    parts = sorted(logs.glob("metrics-part*.csv"), key=lambda p: int(p.stem.removeprefix("metrics-part")))
    if not parts:
        return
    rows: list[dict[str, str]] = []
    fields: list[str] = []
    for path in [*parts, logs / "metrics.csv"]:
        if path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                fields += [f for f in reader.fieldnames or [] if f not in fields]
                rows += list(reader)
    rows.sort(key=lambda row: int(float(row.get("step") or 0)))
    with (logs / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def build_trainer(
    config: TrainConfig, run_dir: Path, manual_optimization: bool,
    extra_callbacks: list[L.Callback] | None = None,
) -> L.Trainer:
    t = config.trainer
    best = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss", mode="min",
        save_top_k=1, auto_insert_metric_name=False,
    )
    # last.ckpt at every validation, improved or not (ModelCheckpoint's save_last follows the
    # best's saves only: a run killed after a plateau would lose every epoch since its best).
    latest = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
        auto_insert_metric_name=False, enable_version_counter=False,
    )
    callbacks: list[L.Callback] = [
        best, latest, SaveFinalState(run_dir / "checkpoints" / "last.ckpt"), SampleGrid(t.samples), Throughput(),
        # GAN objectives (the manual-optimization ones) export their final weights, not the best L1.
        ExportModel(run_dir, final=manual_optimization),
        LearningRateMonitor(logging_interval="step"),
    ]
    if t.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    if config.optim.freeze_encoder_epochs:
        callbacks.append(FreezeEncoder(config.optim.freeze_encoder_epochs))
    if t.snapshot_every:
        callbacks.append(ModelCheckpoint(
            dirpath=run_dir / "checkpoints", filename="epoch{epoch:03d}", every_n_epochs=t.snapshot_every,
            save_top_k=-1, save_weights_only=True, auto_insert_metric_name=False,
        ))
    if t.snapshot_every_steps:
        callbacks.append(ModelCheckpoint(
            dirpath=run_dir / "checkpoints", filename="step{step:06d}", every_n_train_steps=t.snapshot_every_steps,
            save_top_k=-1, save_weights_only=True, auto_insert_metric_name=False,
        ))
    if t.patience:
        callbacks.append(EarlyStopping(monitor="val/loss", patience=t.patience, mode="min"))
    callbacks.extend(extra_callbacks or [])  # e.g. a sweep's pruning callback
    loggers = [
        CSVLogger(run_dir, name="", version="logs"),
        TensorBoardLogger(run_dir, name="", version="tb", default_hp_metric=False),
    ]
    val_every = t.val_every
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.epochs,
        max_steps=t.max_steps,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=resolve_precision(t.precision, t.accelerator),
        # Lightning clips only for automatic optimization; GAN objectives clip themselves.
        gradient_clip_val=None if manual_optimization else config.optim.grad_clip,
        log_every_n_steps=t.log_every,
        check_val_every_n_epoch=int(val_every) if val_every >= 1 else 1,
        val_check_interval=val_every if val_every < 1 else None,
        limit_val_batches=t.limit_val_batches,
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=t.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def train(
    config: TrainConfig, resume: str | None = None, callbacks: list[L.Callback] | None = None
) -> Path:
    """Train as configured; returns the run folder (with ``model.safetensors`` in it).

    ``callbacks`` are added to the Trainer's own (a sweep passes its pruning callback here).
    """
    check_options(config)
    resumed = resolve_resume(config, resume)
    ckpt_path = str(resumed[1]) if resumed else None
    if resumed:  # the run that holds the checkpoint continues in its own folder, with its recipe
        run_dir = resumed[0]
        check_recipe_kept(config, run_dir)
    else:
        run_dir = new_run_dir(config)
        if config.out and str(run_dir) != str(config.out):
            log.warning("%s holds an earlier run: this run writes to %s", config.out, run_dir)
        else:
            log.info("run folder: %s", run_dir)
    config.out = str(run_dir)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_datamodule(config)
    objective = build_objective(config)
    if config.model.init_from and not ckpt_path:  # a resumed run has its own weights
        initialize_weights(objective, config.model.init_from)
    # Only once the options have proved valid: a typo aimed at an existing run folder must not
    # replace that run's record of how it was trained.
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", config.to_yaml())
    first_process = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    if ckpt_path and first_process:
        set_aside_metric_log(run_dir)
    trainer = build_trainer(config, run_dir, not objective.automatic_optimization, callbacks)
    with warnings.catch_warnings():
        # Lightning's hints about worker counts and logging intervals are noise for tiny runs.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        if ckpt_path:
            # A resumed run's folders are its own and not empty: Lightning's warnings that it will
            # delete metrics.csv (set aside above, merged below) and write beside the earlier
            # checkpoints say nothing the user must act on.
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            # A run folder that was moved or copied keeps its checkpoints' records of the old place.
            warnings.filterwarnings("ignore", message="The dirpath has changed from")
        trainer.fit(objective, datamodule=datamodule, ckpt_path=ckpt_path)
    if trainer.is_global_zero:
        merge_metric_logs(run_dir)
    return run_dir
