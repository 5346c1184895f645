"""The ``chromalab`` command. Each subcommand lives in its own module of this package,
exposing ``register(subparsers)``; this module finds them, parses, and turns user errors
into one clear line (no traceback) and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from typing import Sequence

from chromalab import __version__
from chromalab.errors import ChromalabError

# The order subcommands are listed in --help; modules not named here come after.
ORDER = ["demo", "colorize", "train", "models", "evaluate", "compare", "scorecard", "explore", "prepare",
         "export", "serve", "sweep", "study"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chromalab",
        description="Deep-learning image colorization: colorize photos, train and compare models.",
    )
    parser.add_argument("--version", action="version", version=f"chromalab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import chromalab.cli as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    for name in sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        importlib.import_module(f"chromalab.cli.{name}").register(subparsers)
    return parser


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(show_path=False, show_time=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=logging.INFO if not verbose else logging.DEBUG, format="%(message)s",
                        handlers=[handler], force=True)
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not verbose else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except ChromalabError as error:
        print(f"chromalab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chromalab {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 — a bug: short message unless asked for more
        if args.verbose or os.environ.get("CHROMALAB_DEBUG"):
            raise
        print(f"chromalab {args.command}: internal error: {type(error).__name__}: {error} "
              "(run with -v for the traceback)", file=sys.stderr)
        return 1
