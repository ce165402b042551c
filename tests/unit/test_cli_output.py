"""What the CLI prints cannot drive the operator's terminal."""

import json

import pytest
from rich.console import Console

from worker.cli.output import json_text, table, visible


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x9b31m", "\\x9b31m"),
        ("bell\x07", "bell\\x07"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("two\nlines", "two\nlines"),
        ("tab\there", "tab\\x09here"),
        ("naïve 文本", "naïve 文本"),
    ],
)
def test_control_characters_are_shown_as_escapes(text: str, shown: str) -> None:
    assert visible(text) == shown


def test_a_body_keeps_its_tabs_when_asked() -> None:
    assert visible("a\tb\x1b", keep="\n\t") == "a\tb\\x1b"


def test_json_escapes_c1_as_well_and_stays_json() -> None:
    data = {"id": "\x1b]0;title\x07", "csi": "\x9b", "text": "文本"}
    text = json_text(data)
    assert not any(0x7F <= ord(char) <= 0x9F or ord(char) < 0x20 for char in text)
    assert json.loads(text) == data


def test_a_table_shows_what_a_cell_holds_not_what_it_asks_the_terminal_to_do() -> None:
    out = Console(width=200, record=True, force_terminal=False)
    out.print(table("t\x1b[1m", ("name",), [("\x1b[31mred",)]))
    printed = out.export_text()
    assert "\x1b" not in printed
    assert "\\x1b[31mred" in printed
    assert "t\\x1b[1m" in printed
