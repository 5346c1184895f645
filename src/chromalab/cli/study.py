"""chromalab study STUDY.yaml [--out DIR] [--data DIR] [--eval-data DIR] [--set PATH=VALUE] [--check]"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study", help="train several recipes for the same budget and compare them in one table",
        description="Run a study file (see configs/studies/ and docs/studies.md): train every entry "
        "on the same data for the same budget into OUT/runs/<name>, score them all on the same "
        "photos, and write results.md/.csv (best per column in bold), grid.png (every entry on the "
        "same 8 photos) and fid_vs_time.png. Run the same command again to continue an "
        "interrupted study: finished entries are skipped, interrupted ones resume.",
    )
    parser.add_argument("study", metavar="STUDY.yaml", help="the study file")
    parser.add_argument("--out", help="study folder (default: studies/<study name>)")
    parser.add_argument("--data", help="training photo folder (replaces the file's data)")
    parser.add_argument("--eval-data", help="evaluation photo folder (replaces the file's eval.data)")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="an option for every entry, e.g. data.workers=0 (repeatable)")
    parser.add_argument("--check", action="store_true",
                        help="check the study file and print what it would train; train nothing")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files in --out that this study did not write")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chromalab.study import load_study, open_record, run_study

    progress = not args.no_progress
    study = load_study(args.study, out=args.out, data=args.data, eval_data=args.eval_data, sets=args.set,
                       progress=progress)
    record = open_record(study, study.out, overwrite=args.overwrite)  # every check before training
    if args.check:
        _print_plan(study)
        return 0
    outcome = run_study(study, record, progress=progress and sys.stderr.isatty())
    if outcome.evaluated and outcome.scores is not None:
        from chromalab.cli.evaluate import print_summary

        print_summary(outcome.scores.results)
    print("written: " + ", ".join(str(p) for p in outcome.written))
    return 1 if outcome.failed else 0


def _print_plan(study) -> None:  # study: chromalab.study.Study
    from chromalab.training.trainer import objective_name

    print(f"study {study.name}: {len(study.entries)} entries, {study.describe_budget()}, "
          f"{study.spec.size} px, seed {study.spec.seed}; data {study.data}; "
          f"evaluation on {len(study.eval_photos)} photos of {study.eval_data} -> {study.out}")
    for number, entry in enumerate(study.entries, 1):
        config = entry.config
        options = ", ".join(f"{k}={v}" for k, v in entry.overrides.items())
        print(f"  {number:>2}. {entry.name}: {entry.config_path.name} ({config.model.name}, "
              f"{objective_name(config)}, {config.model.color_space or 'default space'})"
              + (f" with {options}" if options else ""))
