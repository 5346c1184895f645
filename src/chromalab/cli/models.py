"""chromalab models: the registry, with a line and a parameter count per model."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the available models",
                                   description="List every registered model with its parameter count.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from chromalab.color import get_color_space
    from chromalab.models import count_parameters, list_models

    table = Table("model", "params", "trains as", "color space", "description")
    for entry in list_models():
        channels = get_color_space(entry.color_space).channels
        params = count_parameters(entry.constructor(out_channels=channels))
        table.add_row(entry.name, f"{params / 1e6:.2f}M", entry.objective, entry.color_space, entry.description)
    Console(width=160).print(table)
    return 0
