"""Hyperparameter sweeps over any training option: grid, random or Bayesian (TPE) search
with Optuna, each trial an ordinary training run judged by a validation or evaluation metric.

``spec`` parses ``--param PATH=SPEC``; ``study`` runs the Optuna study (``run_sweep``);
``pruning`` stops hopeless trials; ``scoring`` measures a finished trial; ``report`` writes
the table, the plots and ``best.yaml``.
"""

from chromalab.sweep.report import SweepReport, write_report
from chromalab.sweep.spec import ParamSpec, parse_param, parse_params
from chromalab.sweep.study import SweepOutcome, SweepSettings, run_sweep

__all__ = [
    "ParamSpec", "SweepOutcome", "SweepReport", "SweepSettings",
    "parse_param", "parse_params", "run_sweep", "write_report",
]
