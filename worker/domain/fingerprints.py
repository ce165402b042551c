"""Content hashes that tell a repeated message from a conflicting one."""

import hashlib
import json
from decimal import Decimal
from typing import Any

from contracts import ContractModel, CreateOrder


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        # 20000, 20000.0 and 20000.00 are the same amount.
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


PROVENANCE_FIELDS = frozenset({"rule_depth"})
"""Fields that say where a command came from, not what it asks; never hashed, so
fingerprints recorded before a field was added still match."""


def fingerprint(model: ContractModel, exclude: set[str] | None = None) -> str:
    """Hash the content of `model`, ignoring `exclude` and how amounts are written."""
    content = _canonical(model.model_dump(exclude={*PROVENANCE_FIELDS, *(exclude or ())}))
    text = json.dumps(content, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def creation_fingerprint(command: CreateOrder) -> str:
    """Hash what makes an order the same order: everything but who sent it and the id."""
    return fingerprint(command, exclude={"command_id", "actor", "schema_version"})
