"""How the CLI prints: rich tables for people, JSON for machines, and its exit codes."""

import json
import re
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


CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0, DEL and C1: ESC and CSI among them, which a terminal obeys instead of showing."""

JSON_UNESCAPED_CONTROLS = re.compile("[\x7f-\x9f]")
"""What `json.dumps(ensure_ascii=False)` leaves raw; it escapes C0 itself."""


def visible(text: str, keep: str = "\n") -> str:
    """`text` with every control character but those in `keep` written as an escape.

    What the CLI prints comes from producers (details, ids, bodies, headers): an
    escape sequence in it must show as `\x1b[...`, not recolour, retitle or
    rewrite the operator's terminal.
    """

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return char if char in keep else f"\\x{ord(char):02x}"

    return CONTROL_CHARACTERS.sub(escape, text)


def json_text(data: Any, indent: int | None = None) -> str:
    """JSON as `json.dumps(ensure_ascii=False)` writes it, with DEL and C1 escaped too."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return JSON_UNESCAPED_CONTROLS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


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
    print(json_text(data, indent=2))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """Build a table whose title and cells are shown as plain text; None shows as a dash.

    Text, not str: a str would be read as Rich markup by whichever console prints it.
    Control characters are shown as escapes (`visible`).
    """
    result = Table(title=None if title is None else Text(visible(title)), title_justify="left")
    for column in columns:
        result.add_column(Text(visible(column)))
    for row in rows:
        result.add_row(*(Text("-" if cell is None else visible(str(cell))) for cell in row))
    return result
