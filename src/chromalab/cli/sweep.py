"""chromalab sweep --config X.yaml --data DIR --param PATH=SPEC ... --metric M --sampler S --out DIR"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="search training options (grid, random or TPE) judged by a metric",
        description="Hyperparameter sweep with Optuna: each trial is a training run with some "
        "options changed, scored on held-out photos. Run the same command again to continue "
        "an interrupted sweep. See docs/sweeps.md.",
    )
    parser.add_argument("--config", help="base YAML experiment file (see configs/)")
    parser.add_argument("--data", help="photo folder to train on [data.path]")
    parser.add_argument("--param", action="append", default=[], metavar="PATH=SPEC",
                        help="an option to vary: a,b,c (values) | int:LO:HI | float:LO:HI | "
                        "log:LO:HI, e.g. optim.lr=log:1e-5:1e-3 (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="a fixed option for every trial, e.g. trainer.epochs=3 (repeatable)")
    parser.add_argument("--metric", default="val_loss",
                        help="what to optimize: val_loss (default, free) or an evaluation metric "
                        "(fid, psnr, ssim, ciede2000, lpips, ...)")
    parser.add_argument("--extra-metrics", default="", metavar="M1,M2",
                        help="more evaluation metrics to record in the table (not optimized)")
    parser.add_argument("--sampler", default="tpe", choices=["grid", "random", "tpe"],
                        help="grid: every combination of the values; random; tpe: Bayesian (default)")
    parser.add_argument("--trials", type=int, help="total trials of the sweep (default for grid: all points)")
    parser.add_argument("--budget-minutes", type=float,
                        help="start no new trial after this many minutes (this run)")
    parser.add_argument("--eval-data", help="photo folder to score trials on (default: each run's validation split)")
    parser.add_argument("--eval-size", type=int, default=128, help="evaluation image size (default 128)")
    parser.add_argument("--eval-limit", type=int, help="score on at most this many photos")
    parser.add_argument("--storage", help="Optuna storage URL shared by several machines, e.g. "
                        "postgresql://user:pw@host/db (default: sqlite:///OUT/study.db)")
    parser.add_argument("--study-name", help="study name in the storage (default: the --out folder's name)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (give each machine its own)")
    parser.add_argument("--no-prune", action="store_true", help="never stop a trial early")
    parser.add_argument("--prune-startup", type=int, default=3,
                        help="trials that always run to the end before pruning starts (default 3)")
    parser.add_argument("--prune-warmup", type=int, default=1,
                        help="validation rounds of every trial that are never pruned (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no per-trial progress bar")
    parser.add_argument("--out", required=True, help="sweep folder: study.db, trials/, tables, plots, best.yaml")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in --out that this sweep did not write (its own it always updates)")
    parser.set_defaults(func=run)


def resolve_settings(args: argparse.Namespace):  # -> SweepSettings
    from chromalab.errors import ChromalabError
    from chromalab.sweep.spec import parse_params
    from chromalab.sweep.study import SweepSettings
    from chromalab.training.config import TrainConfig

    base = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    if args.data:
        base.data.path = args.data
    for item in args.set:
        if "=" not in item:
            raise ChromalabError(f"--set {item!r}: expected PATH=VALUE")
        path, value = item.split("=", 1)
        base.set(path.strip(), value)
    if args.no_progress:
        base.trainer.progress = False
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ChromalabError(f"{out}: exists and is not a folder (--out)")
    for name, value in (("--eval-size", args.eval_size), ("--eval-limit", args.eval_limit),
                        ("--prune-startup", args.prune_startup), ("--prune-warmup", args.prune_warmup)):
        if value is not None and value < (1 if name in ("--eval-size", "--eval-limit") else 0):
            raise ChromalabError(f"{name} {value}: must be positive")
    return SweepSettings(
        base=base,
        params=parse_params(args.param, base),
        out=out,
        metric=args.metric,
        sampler=args.sampler,
        trials=args.trials,
        budget_minutes=args.budget_minutes,
        storage=args.storage,
        study_name=args.study_name,
        eval_data=args.eval_data,
        eval_size=args.eval_size,
        eval_limit=args.eval_limit,
        extra_metrics=[m.strip() for m in args.extra_metrics.split(",") if m.strip()],
        seed=args.seed,
        prune=not args.no_prune,
        prune_startup_trials=args.prune_startup,
        prune_warmup_rounds=args.prune_warmup,
        overwrite=args.overwrite,
    )


def run(args: argparse.Namespace) -> int:
    from chromalab.sweep.report import write_report
    from chromalab.sweep.study import open_study, run_sweep, validate

    settings = resolve_settings(args)
    validate(settings)  # every user error surfaces here, before a study or a trial exists
    study = open_study(settings)
    try:
        outcome = run_sweep(settings, study=study)
    finally:
        # Also after Ctrl-C or a failed trial: the table shows what has been done so far.
        report = write_report(study, settings.params, settings.metric, settings.base, settings.out,
                              settings.files())
        _print_report(report, settings.metric)
    return 0 if outcome.finished else 1


def _print_report(report, metric: str) -> None:  # report: SweepReport
    from chromalab.sweep.report import measured

    best = report.best_trial
    if best is not None:
        values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        print(f"best: trial {best.number}, {metric} {measured(best, metric):.4g}: {values}")
    else:
        print("no trial has completed yet")
    files = [report.table_md, report.table_csv, *report.plots] + ([report.best_yaml] if report.best_yaml else [])
    print("written: " + ", ".join(str(f) for f in files))
