"""AMQP property and header values as JSON, and back, without losing their types.

JSON has no bytes, timestamps or decimals, and PostgreSQL's jsonb refuses NUL
characters; such values are stored as one-key objects: `{"$bytes": base64}`,
`{"$datetime": ISO 8601}`, `{"$decimal": text}`, `{"$text": base64 of UTF-8}`.
"""

import base64
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

JsonValue = Any


def to_json(value: Any) -> JsonValue:
    """A JSON-safe form of an AMQP value."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and "\x00" not in value:
        return value
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    for kind, tag, encode in ENCODERS:
        if isinstance(value, kind):
            return {tag: encode(value)}
    return {"$text": _b64(repr(value).encode())}


def from_json(value: JsonValue) -> Any:
    """The AMQP value `to_json` was given."""
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        [(tag, content)] = value.items()
        if tag in DECODERS:
            return DECODERS[tag](content)
    return {key: from_json(item) for key, item in value.items()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


ENCODERS: list[tuple[type | tuple[type, ...], str, Callable[[Any], str]]] = [
    (str, "$text", lambda text: _b64(text.encode())),
    ((bytes, bytearray, memoryview), "$bytes", lambda data: _b64(bytes(data))),
    (datetime, "$datetime", lambda moment: moment.isoformat()),
    (Decimal, "$decimal", str),
]

DECODERS: dict[str, Callable[[str], Any]] = {
    "$text": lambda content: base64.b64decode(content).decode(),
    "$bytes": base64.b64decode,
    "$datetime": datetime.fromisoformat,
    "$decimal": Decimal,
}
