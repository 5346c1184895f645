"""Stopping hopeless trials early: report ``val/loss`` to Optuna after every validation.

Written here rather than taken from ``optuna-integration`` (its Lightning callback is a
separate package that is not a dependency) — it is a dozen lines.

What the pruner sees: the validation loss of each validation round (round 0, 1, 2 … — the
epoch number when validating once per epoch). The sweep's own metric (FID, PSNR …) needs a
full evaluation, far too slow to run every epoch, so ``val/loss`` stands in for it. When the
sweep's metric is higher-is-better the study maximizes, so the callback reports ``-val/loss``:
either way a trial whose loss is worse than the median of earlier trials at the same round
is stopped.
"""

from __future__ import annotations

import math

import lightning as L
import optuna


class ReportToPruner(L.Callback):
    """After each validation round: ``trial.report(sign * val/loss, round)``; prune if told."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val/loss", sign: float = 1.0) -> None:
        self.trial = trial
        self.monitor = monitor
        self.sign = sign
        self.rounds = 0

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        loss = float(value)
        step = self.rounds
        self.rounds += 1
        # NaN is reported as it is: Optuna's MedianPruner prunes a diverged trial at once.
        self.trial.report(self.sign * loss if not math.isnan(loss) else loss, step)
        if _training_is_over(trainer):
            return  # the trial has paid for its training: let it finish and be evaluated
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after validation round {step}: {self.monitor} {loss:.4g} is worse "
                "than the median of earlier trials"
            )


def _training_is_over(trainer: L.Trainer) -> bool:
    """After this validation no training step is left (the run's last validation)."""
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 — e.g. a loader without a length: assume more is to come
        return False
    return math.isfinite(total) and trainer.global_step >= total
