"""Reading a user's YAML file (config, study) as a mapping, with one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chromalab.errors import ChromalabError


def read_yaml_mapping(path: str | Path, what: str, expected: str, empty_ok: bool = False) -> dict[str, Any]:
    """The file's top-level mapping; ``what`` names the file in errors ("config", "study file"),
    ``expected`` says what a mapping of it holds. An empty file is ``{}`` when ``empty_ok``."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ChromalabError(f"{path}: cannot read the {what} ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ChromalabError(f"{path}: invalid YAML ({error})".replace("\n", " ")) from None
    if values is None and empty_ok:
        return {}
    if not isinstance(values, dict):
        raise ChromalabError(f"{path}: a {what} is a mapping ({expected})")
    return values
