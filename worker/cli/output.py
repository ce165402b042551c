"""How the CLI prints: rich tables for people, JSON for machines, and its exit codes."""

import json
import shutil
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text


class ExitCode(IntEnum):
    """Exit statuses scripts can rely on."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    REJECTED = 3
    TIMED_OUT = 4
    NOT_FOUND = 5


def console() -> Console:
    """A console as wide as the terminal, or 160 columns when output is not a terminal.

    Markup is off: what it prints holds user text (rule names, reasons, titles),
    and `[urgent]` must show as written, not vanish or break the output.
    """
    return Console(width=shutil.get_terminal_size((160, 24)).columns, highlight=False, markup=False)


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """Print a model, a list of models or a plain dict as indented JSON."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [item.model_dump(mode="json") for item in value]
    print(json.dumps(data, indent=2, ensure_ascii=False))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """Build a table whose title and cells are shown as plain text; None shows as a dash.

    Text, not str: a str would be read as Rich markup by whichever console prints it.
    """
    result = Table(title=None if title is None else Text(title), title_justify="left")
    for column in columns:
        result.add_column(Text(column))
    for row in rows:
        result.add_row(*(Text("-" if cell is None else str(cell)) for cell in row))
    return result
