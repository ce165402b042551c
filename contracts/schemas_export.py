"""Write the JSON Schema of every message to contracts/schemas, or check they are current.

Run `python -m contracts.schemas_export` after changing a model; the test suite runs
the same comparison and fails when the checked-in files are stale.
"""

import json
import sys
from pathlib import Path
from typing import Any

from contracts.catalog import COMMANDS, EVENTS, NOTIFICATION

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render_schemas() -> dict[str, str]:
    """Return each message's JSON Schema as text, keyed by file name."""
    rendered = {}
    # Commands are described as we accept them, events as we send them.
    described = [(kind, "validation") for kind in COMMANDS]
    described += [(kind, "serialization") for kind in (*EVENTS, NOTIFICATION)]
    for kind, mode in described:
        schema = kind.model.model_json_schema(mode=mode)  # type: ignore[arg-type]
        if mode == "serialization":
            # Events may gain fields within a schema version: consumers must
            # ignore what they do not know, so the schema must not forbid it.
            _allow_additional_properties(schema)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:order-status:{kind.type_name}:v1"
        schema["x-routing-key"] = kind.routing_key
        rendered[f"{kind.type_name}.json"] = (
            json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )
    return rendered


def _allow_additional_properties(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("additionalProperties") is False:
            del schema["additionalProperties"]
        for value in schema.values():
            _allow_additional_properties(value)
    elif isinstance(schema, list):
        for value in schema:
            _allow_additional_properties(value)


def stale_schema_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """Name the schema files that are missing, differ from the models, or are left over."""
    expected = render_schemas()
    stale = [
        name
        for name, text in expected.items()
        if not (directory / name).exists() or (directory / name).read_text("utf-8") != text
    ]
    stale += [path.name for path in directory.glob("*.json") if path.name not in expected]
    return sorted(stale)


def write_schemas(directory: Path = SCHEMA_DIR) -> None:
    """Replace the schema files with ones generated from the models."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.json"):
        path.unlink()
    for name, text in render_schemas().items():
        (directory / name).write_text(text, "utf-8")


if __name__ == "__main__":
    if "--check" in sys.argv:
        stale = stale_schema_files()
        if stale:
            print("stale JSON Schema files:", ", ".join(stale), file=sys.stderr)
            sys.exit(1)
    else:
        write_schemas()
