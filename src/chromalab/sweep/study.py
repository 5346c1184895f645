"""The Optuna study behind ``chromalab sweep``: one trial = one ordinary training run.

Each trial copies the base configuration, sets the sampled options, trains into
``<out>/trials/trial-NNNN`` (a normal run folder: config, checkpoints, logs, samples,
model) and is scored on held-out photos. The study lives in an Optuna RDB storage —
``<out>/study.db`` (SQLite) unless ``--storage`` names a shared database — so a sweep that
stops (Ctrl-C, budget, crash) continues where it was when run again with the same options,
and several machines can work on one study at once.
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn

import optuna
from optuna.storages import RDBStorage
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from chromalab.errors import ChromalabError
from chromalab.sweep.outputs import SweepFiles
from chromalab.sweep.pruning import ReportToPruner
from chromalab.sweep.scoring import (
    VAL_LOSS, best_val_loss, evaluate_run, evaluation_metrics, metric_direction, objective_value, validation_photos,
)
from chromalab.sweep.spec import ParamSpec, apply_params, grid_search_space, grid_size
from chromalab.training.config import TrainConfig
from chromalab.training.termination import TerminationWatch

SAMPLERS = ("grid", "random", "tpe")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A trial whose process died without a word (kill -9, power cut) stops sending heartbeats;
# after the grace period Optuna marks it failed and queues it again once (_retry_stale_trials).
HEARTBEAT_S = 60
GRACE_PERIOD_S = 180
ATTR = "chromalab_sweep"  # study user attribute: what the sweep was started with


@dataclass
class SweepSettings:
    base: TrainConfig
    params: list[ParamSpec]
    out: Path
    metric: str = VAL_LOSS
    sampler: str = "tpe"
    trials: int | None = None
    budget_minutes: float | None = None
    storage: str | None = None
    study_name: str | None = None
    eval_data: str | None = None
    eval_size: int = 128
    eval_limit: int | None = None
    extra_metrics: list[str] = field(default_factory=list)
    seed: int = 0
    prune: bool = True
    prune_startup_trials: int = 3
    prune_warmup_rounds: int = 1
    overwrite: bool = False  # replace files in ``out`` that the sweep did not write

    def files(self) -> SweepFiles:
        """The sweep folder's files and the record of which are the sweep's own."""
        return SweepFiles(self.out, overwrite=self.overwrite, own_db=self.storage is None)

    @property
    def direction(self) -> str:
        return metric_direction(self.metric)

    @property
    def evaluated_metrics(self) -> list[str]:
        """The evaluation metrics each trial needs (val_loss needs none)."""
        wanted = [self.metric, *self.extra_metrics]
        return list(dict.fromkeys(m for m in wanted if m != VAL_LOSS))

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"

    @property
    def storage_display(self) -> str:
        """The storage URL with its password masked, for messages."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(self.storage_url).render_as_string(hide_password=True)
        except ArgumentError:
            return self.storage_url

    @property
    def name(self) -> str:
        return self.study_name or self.out.resolve().name

    def target_trials(self) -> int:
        """How many finished trials the whole study should have."""
        if self.sampler == "grid":
            size = grid_size(self.params)
            return min(self.trials, size) if self.trials else size
        assert self.trials is not None
        return self.trials

    def identity(self) -> dict[str, Any]:
        """What must match for a second run to continue this study rather than muddle it."""
        return {"params": [p.text for p in self.params], "metric": self.metric, "sampler": self.sampler}


def validate(settings: SweepSettings) -> None:
    """Every check that can be made before training, each failing with one line."""
    if settings.sampler not in SAMPLERS:
        raise ChromalabError(f"unknown sampler {settings.sampler!r}; choose {', '.join(SAMPLERS)}")
    metric_direction(settings.metric)
    for metric in settings.extra_metrics:  # recorded, not optimized: context metrics are fine
        if metric != settings.metric and metric not in evaluation_metrics():
            metric_direction(metric)  # raises the one-line "unknown metric" error
    if settings.sampler == "grid":
        grid_search_space(settings.params)  # raises on continuous ranges
    elif not settings.trials:
        raise ChromalabError(f"--sampler {settings.sampler} needs --trials N (the sweep's total)")
    if settings.trials is not None and settings.trials < 1:
        raise ChromalabError("--trials must be at least 1")
    if settings.budget_minutes is not None and settings.budget_minutes <= 0:
        raise ChromalabError("--budget-minutes must be positive")
    if not settings.base.data.path:
        raise ChromalabError("no training data: give --data DIR (or data.path in the config)")
    if not Path(settings.base.data.path).exists():
        raise ChromalabError(f"{settings.base.data.path}: no such folder")
    if settings.eval_data and not Path(settings.eval_data).exists():
        raise ChromalabError(f"{settings.eval_data}: no such folder (--eval-data)")
    settings.files().check()  # a file the sweep did not write at one of its paths


def make_sampler(settings: SweepSettings, trials_so_far: int) -> optuna.samplers.BaseSampler:
    if settings.sampler == "grid":
        # The grid's order is shuffled by the seed: it must be the same in every process
        # working on the study, so it is never offset.
        return optuna.samplers.GridSampler(grid_search_space(settings.params), seed=settings.seed)
    # A resumed random/TPE study must not replay the random numbers it already used.
    seed = settings.seed + trials_so_far
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, (settings.trials or 10) // 3)))


def make_pruner(settings: SweepSettings) -> optuna.pruners.BasePruner:
    if not settings.prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=settings.prune_startup_trials, n_warmup_steps=settings.prune_warmup_rounds
    )


def make_storage(settings: SweepSettings) -> RDBStorage:
    url = settings.storage_url
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for a busy file, don't fail
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_PERIOD_S, **_retry_stale_trials(),
            )
    except (ImportError, ModuleNotFoundError) as error:
        raise ChromalabError(f"--storage {settings.storage_display}: database driver missing ({error})") from None
    except Exception as error:  # noqa: BLE001 — SQLAlchemy's many connection errors
        raise ChromalabError(f"--storage {settings.storage_display}: cannot open ({str(error).splitlines()[0]})") from None


def _retry_stale_trials() -> dict[str, Any]:
    """The storage argument that re-queues a stale trial once (its name changed in Optuna 4.9)."""
    try:
        from optuna.storages import RetryHeartbeatStaleTrialCallback
    except ImportError:  # Optuna < 4.9
        from optuna.storages import RetryFailedTrialCallback

        return {"failed_trial_callback": RetryFailedTrialCallback(max_retry=1)}
    return {"heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=1)}


def open_study(settings: SweepSettings) -> optuna.Study:
    """Create the study, or load it (same options) to continue it."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep prints its own lines
    settings.files().claim_study_db()  # study.db (when it is the storage): the sweep's own or none
    storage = make_storage(settings)
    settings.out.mkdir(parents=True, exist_ok=True)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    previous = existing.get(settings.name)
    trials_so_far = previous.n_trials if previous else 0
    if previous is not None:
        started = previous.user_attrs.get(ATTR)
        if started and started != settings.identity():
            raise ChromalabError(
                f"study {settings.name!r} in {settings.storage_display} was started with "
                f"{_describe(started)}; resume with the same options or use a new --out/--study-name"
            )
    study = optuna.create_study(
        storage=storage, study_name=settings.name, direction=settings.direction,
        sampler=make_sampler(settings, trials_so_far), pruner=make_pruner(settings),
        load_if_exists=True,
    )
    if previous is None:
        study.set_user_attr(ATTR, settings.identity())
    return study


def _describe(identity: dict[str, Any]) -> str:
    params = " ".join(f"--param {p}" for p in identity.get("params", []))
    return f"{params} --metric {identity.get('metric')} --sampler {identity.get('sampler')}"


def requeue_unfinished(study: optuna.Study) -> int:
    """Queue failed trials again, with the same values; returns how many were queued.

    A trial cut short by Ctrl-C is always queued again (it never got to finish); one that
    failed with an error is retried once (the cause may have been passing, e.g. memory taken
    by another job), and stays failed if the retry fails too. Values some other trial has
    finished meanwhile are not queued.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    retried |= {t.system_attrs.get("failed_trial") for t in trials}  # Optuna's heartbeat retries
    finished = [t.params for t in trials if t.state in FINISHED]
    queued = 0
    for trial in trials:
        if trial.state != TrialState.FAIL or trial.number in retried or trial.params in finished:
            continue
        if trial.user_attrs.get("interrupted") or "retry_of" not in trial.user_attrs:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
            _inherit_grid_point(study, trial)
            queued += 1
    return queued


def _inherit_grid_point(study: optuna.Study, original: FrozenTrial) -> None:
    """Give a queued retry its original's grid point.

    GridSampler looks up the grid point of every trial that ends (``after_trial``) and fails
    on a queued trial, which has none; with the original's point it also counts the point as
    being worked on rather than handing it to a second worker.
    """
    if "grid_id" not in original.system_attrs:
        return
    (retry,) = [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if t.user_attrs.get("retry_of") == original.number]
    storage = study._storage  # the public storage API; Study keeps it private
    for key in ("search_space", "grid_id"):
        storage.set_trial_system_attr(retry._trial_id, key, original.system_attrs[key])


def waiting_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{path}={format_value(value)}" for path, value in params.items())


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class TrialFailed(Exception):
    """A trial's training or scoring broke (recorded as FAIL); the sweep goes on."""


class TrialObjective:
    """Optuna's objective: train one configuration, score it, return the metric."""

    def __init__(self, settings: SweepSettings, target: int, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.target = target
        self.log = log

    def trial_config(self, trial: optuna.Trial) -> TrainConfig:
        values = {param.path: param.suggest(trial) for param in self.settings.params}
        config = apply_params(self.settings.base, values)
        # The folder train() will use, chosen here so the trial records the right one: a
        # folder (or file) already at trial-NNNN is never written into; it becomes trial-NNNN-2.
        from chromalab.training.trainer import new_run_dir

        config.out = str(self.settings.out / "trials" / f"trial-{trial.number:04d}")
        config.out = str(new_run_dir(config))
        return config

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except (KeyboardInterrupt, SystemExit) as stop:
            # Lightning turns Ctrl-C into sys.exit(1) after shutting down cleanly (and ignores
            # further Ctrl-C). Mark the trial so the next run queues it again; Optuna records
            # it as failed and re-raises, which ends the sweep.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt from stop

    def _run(self, trial: optuna.Trial) -> float:
        settings = self.settings
        config = self.trial_config(trial)
        run_dir = Path(config.out)
        trial.set_user_attr("run_dir", str(run_dir))
        position = f"trial {finished_count(trial.study) + 1}/{self.target} (#{trial.number})"
        self.log(f"{position}: {format_params(trial.params)} -> {run_dir}")
        sign = 1.0 if settings.direction == "minimize" else -1.0
        callbacks = [ReportToPruner(trial, sign=sign)] if settings.prune else []
        started = time.monotonic()
        try:
            self._train(trial, config, callbacks)
        finally:  # pruned and interrupted trials keep their time and loss in the table too
            self._record(trial, started, {VAL_LOSS: best_val_loss(run_dir)})
        metrics = {VAL_LOSS: best_val_loss(run_dir)} | self._evaluate(trial, config, run_dir)
        minutes = self._record(trial, started, metrics)
        value = metrics.get(settings.metric)
        if value is None or not math.isfinite(float(value)):
            self._fail(trial, "scoring", ValueError(f"{settings.metric} is {value}"))
        val_loss = metrics[VAL_LOSS]
        self.log(
            f"{position} done: {settings.metric} {float(value):.4g}"  # type: ignore[arg-type]
            + (f" (val_loss {val_loss:.4g})" if settings.metric != VAL_LOSS and val_loss is not None else "")
            + f", {minutes:.1f} min"
        )
        return objective_value(settings.metric, float(value))  # type: ignore[arg-type]

    @staticmethod
    def _record(trial: optuna.Trial, started: float, metrics: dict[str, Any]) -> float:
        minutes = (time.monotonic() - started) / 60
        trial.set_user_attr("minutes", minutes)
        trial.set_user_attr("metrics", {k: _plain_number(v) for k, v in metrics.items()})
        return minutes

    def _evaluate(self, trial: optuna.Trial, config: TrainConfig, run_dir: Path) -> dict[str, Any]:
        settings = self.settings
        if not settings.evaluated_metrics:
            return {}
        try:
            photos = settings.eval_data or validation_photos(config)
            return evaluate_run(run_dir, photos, settings.evaluated_metrics, settings.eval_size, settings.eval_limit)
        except ChromalabError:
            raise  # e.g. a metric the evaluation cannot compute here: every trial would fail
        except Exception as error:  # noqa: BLE001 — recorded on the trial, the sweep goes on
            self._fail(trial, "evaluation", error)

    def _train(self, trial: optuna.Trial, config: TrainConfig, callbacks: list) -> None:
        from chromalab.training.trainer import train

        # The watch stays installed while an error is handled (see study/runner.py).
        with TerminationWatch() as termination:
            try:
                train(config, callbacks=callbacks)
            except optuna.TrialPruned as pruned:
                self.log(f"trial #{trial.number} pruned: {pruned}")
                raise
            except (KeyboardInterrupt, SystemExit):
                termination.quiet()
                raise
            except ChromalabError:
                raise  # the user's set-up: every trial would fail the same way
            except Exception as error:  # noqa: BLE001 — e.g. a size the model cannot take
                if termination.is_stop(error):  # e.g. a DataLoader worker killed by the same SIGTERM
                    termination.quiet()
                    raise KeyboardInterrupt from error
                self._fail(trial, "training", error)

    def _fail(self, trial: optuna.Trial, stage: str, error: BaseException) -> NoReturn:
        message = f"{stage} failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        trial.set_user_attr("error", message)
        self.log(f"trial #{trial.number} {message}")
        raise TrialFailed(message) from error


def _plain_number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


@dataclass
class SweepOutcome:
    study: optuna.Study
    ran: int  # trials run by this call
    finished: int  # finished trials in the whole study
    target: int


def run_sweep(
    settings: SweepSettings, log: Callable[[str], None] = print, study: optuna.Study | None = None
) -> SweepOutcome:
    """Run (or continue) the sweep until the study has its trials or the budget is spent."""
    validate(settings)
    if study is None:
        study = open_study(settings)
    target = settings.target_trials()
    queued = requeue_unfinished(study)
    done = finished_count(study)
    remaining = target - done
    if remaining <= 0:
        log(f"sweep {settings.name}: all {target} trials are finished")
        return SweepOutcome(study, 0, done, target)
    grid = study.sampler if isinstance(study.sampler, optuna.samplers.GridSampler) else None
    if grid is not None and grid.is_exhausted(study) and not waiting_count(study):
        # Every point was tried; the rest failed twice. Another run would only repeat points.
        log(f"sweep {settings.name}: every grid point has been tried; {done} finished, "
            "the others failed (see the note column of trials.md)")
        return SweepOutcome(study, 0, done, target)
    log(
        f"sweep {settings.name}: {done}/{target} trials finished, running up to {remaining} more"
        + (f" ({queued} failed or interrupted trial(s) queued again)" if queued else "")
        + (f" within {settings.budget_minutes:g} min" if settings.budget_minutes else "")
        + f"; study in {settings.storage_display}"
    )
    before = len(study.trials)
    objective = TrialObjective(settings, target, log)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=settings.budget_minutes * 60 if settings.budget_minutes else None,
            catch=(TrialFailed,),
            # Other machines may finish trials too: stop once the study has enough.
            callbacks=[MaxTrialsCallback(target, states=FINISHED)],
            gc_after_trial=True,
        )
    outcome = SweepOutcome(study, len(study.trials) - before, finished_count(study), target)
    if outcome.finished < target:
        log(f"sweep {settings.name}: {outcome.finished}/{target} trials finished; "
            "run the same command again to continue")
    return outcome
