"""Durations as operators write them: `200ms`, `5s`, `2m`, `1h`, `7d`."""

import re
from datetime import timedelta

UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
DEFAULT_RETRY_DELAYS = "1s,5s,30s,2m,10m"


def parse_ms(text: str) -> int:
    """Milliseconds in `text`, such as `1500ms`, `30s` or `2m`; ValueError if it is none."""
    match = DURATION.match(text.lower())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a duration such as 500ms, 5s, 2m, 1h or 7d")
    return int(match[1]) * UNIT_MS[match[2]]


def parse_duration(text: str) -> timedelta:
    """A positive duration such as `7d` or `12h`."""
    return timedelta(milliseconds=parse_ms(text))


def parse_delays(text: str) -> tuple[int, ...]:
    """The retry tiers, `1s,5s,30s,2m,10m`, as milliseconds; each tier must differ."""
    delays = tuple(parse_ms(part) for part in text.split(",") if part.strip())
    if not delays:
        raise ValueError("at least one retry delay is needed")
    if len(set(delays)) != len(delays):
        raise ValueError(f"retry delays must differ from each other: {text!r}")
    return delays


def label(ms: int) -> str:
    """The shortest exact name of a delay, used in queue names: 1000 -> `1s`, 120000 -> `2m`."""
    for unit in ("d", "h", "m", "s"):
        if ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return f"{ms}ms"
