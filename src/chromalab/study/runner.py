"""Training a study's entries, one after another, each into ``OUT/runs/<name>``.

An entry whose run folder holds ``model.safetensors`` is finished and skipped; one with a
``last.ckpt`` but no model was interrupted and resumes from it (the budget, the LR schedule
and the clock continue where they were); one whose training raises is recorded as failed and
the next entry starts. Ctrl-C or SIGTERM stops the study (the entry can resume next time).
"""

from __future__ import annotations

import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from chromalab.errors import ChromalabError
from chromalab.study.callbacks import ImageBudget, TrainingClock, read_clock
from chromalab.study.record import StudyRecord, clear_partial_run
from chromalab.study.spec import Entry, Study
from chromalab.training.config import TrainConfig, flatten
from chromalab.training.termination import TerminationWatch

FINISHED, FAILED, RUNNING, INTERRUPTED = "finished", "failed", "running", "interrupted"
MODEL_FILE = "model.safetensors"
# Options that may differ between two runs of one entry without making it another experiment.
VOLATILE = {"out", "trainer.progress"}


def run_dir(out: Path, entry: Entry) -> Path:
    return out / "runs" / entry.name


def last_checkpoint(folder: Path) -> Path | None:
    path = folder / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None


def is_finished(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file()


def changed_options(entry: Entry, folder: Path) -> list[str]:
    """Options of the entry that differ from those its earlier run was trained with."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        return []
    before = {k: v for k, v in flatten(TrainConfig.from_yaml(saved).to_dict()).items() if k not in VOLATILE}
    now = {k: v for k, v in flatten(entry.config.to_dict()).items() if k not in VOLATILE}
    differ = sorted(k for k in before.keys() | now.keys() if _plain(before.get(k)) != _plain(now.get(k)))
    return [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in differ]


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def check_entries(study: Study, record: StudyRecord) -> None:
    """Before any training: every entry's run folder is this study's, trained with the same options."""
    for entry in study.entries:
        folder = run_dir(record.out, entry)
        record.check_run_folder(entry.name, folder)
        changes = changed_options(entry, folder)
        if changes:
            raise ChromalabError(
                f"entry {entry.name!r}: its run {folder} was trained with other options "
                f"({'; '.join(changes[:3])}{'; ...' if len(changes) > 3 else ''}); "
                "use another --out, or delete that run folder to train it again"
            )


@dataclass
class TrainingOutcome:
    finished: list[str]
    failed: dict[str, str]  # entry -> error
    trained: list[str]  # entries (re)trained by this call


def _error_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if not isinstance(error, ChromalabError) else text


def _interrupted(record: StudyRecord, entry: Entry, position: str, log: Callable[[str], None]) -> None:
    # Lightning turns Ctrl-C and SIGTERM into SystemExit after shutting down; the entry resumes
    # from its last checkpoint when the study runs again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    record.set_entry(entry.name, status=INTERRUPTED)
    log(f"{position}: interrupted; run the same command again to continue")


def train_entries(study: Study, record: StudyRecord, log: Callable[[str], None] = print) -> TrainingOutcome:
    from chromalab.training.trainer import train

    outcome = TrainingOutcome([], {}, [])
    count = len(study.entries)
    for number, entry in enumerate(study.entries, 1):
        folder = run_dir(record.out, entry)
        position = f"entry {number}/{count} {entry.name}"
        if is_finished(folder):
            if record.entry_status(entry.name) != FINISHED:
                record.set_entry(entry.name, status=FINISHED)  # it finished just before a stop
            log(f"{position}: finished earlier, skipped")
            outcome.finished.append(entry.name)
            continue
        resume = last_checkpoint(folder)
        previous = record.entry_status(entry.name)
        if resume is not None:
            clock = read_clock(folder)
            done = f", {clock[-1][1] / 60:.1f} min trained" if clock else ""
            log(f"{position}: resuming from {resume}{done}")
        else:
            if folder.exists():
                clear_partial_run(folder)  # ours (checked), and nothing in it to continue from
            log(f"{position}: training {entry.config.model.name} ({entry.config_path.name}) -> {folder}")
        if previous == FAILED:
            log(f"{position}: it failed last time ({record.entries[entry.name].get('error', '?')}); trying again")
        record.set_entry(entry.name, status=RUNNING, run=folder.relative_to(record.out).as_posix(),
                         config=str(entry.config_path), error=None)
        config = entry.config
        budget = study.spec.budget
        curve = study.spec.curve
        callbacks = [TrainingClock(folder, curve.every_minutes * 60 if curve.every_minutes else None)]
        if budget.images is not None:
            callbacks.append(ImageBudget(budget.images, config.data.batch_size))
        started = time.monotonic()
        # The watch stays installed while an error is handled: the process group's SIGTERM can
        # reach a DataLoader worker (whose death fit() reports) before it reaches this process.
        with TerminationWatch() as termination:
            try:
                with warnings.catch_warnings():
                    # Lightning's advice on snapshotting GANs before their optimizer step: the
                    # snapshots are meant to hold the weights after it.
                    warnings.filterwarnings("ignore", message=".*manual optimization and every_n_train_steps.*")
                    train(config, resume=str(resume) if resume else None, callbacks=callbacks)
            except (KeyboardInterrupt, SystemExit) as stop:
                termination.quiet()
                _interrupted(record, entry, position, log)
                raise KeyboardInterrupt from stop
            except Exception as error:  # noqa: BLE001 — one broken entry must not stop the others
                if termination.is_stop(error):  # e.g. a DataLoader worker killed by the same SIGTERM
                    termination.quiet()
                    _interrupted(record, entry, position, log)
                    raise KeyboardInterrupt from error
                message = _error_line(error)
                record.set_entry(entry.name, status=FAILED, error=message)
                log(f"{position}: FAILED: {message}")
                outcome.failed[entry.name] = message
                continue
        minutes = (time.monotonic() - started) / 60
        if not is_finished(folder):  # e.g. a run that stopped before any training step
            message = f"training ended without writing {MODEL_FILE}"
            record.set_entry(entry.name, status=FAILED, error=message)
            log(f"{position}: FAILED: {message}")
            outcome.failed[entry.name] = message
            continue
        record.set_entry(entry.name, status=FINISHED)
        log(f"{position}: finished in {minutes:.1f} min")
        outcome.finished.append(entry.name)
        outcome.trained.append(entry.name)
    return outcome
