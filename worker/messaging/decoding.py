"""Turn an AMQP message into a command, or say precisely why it is not one.

The contract is the JSON body and the AMQP properties, not one library's
framing: a message published by hand with any client is accepted. Only JSON is
ever parsed; a body in any other format (pickle included) is refused unread.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts import COMMANDS_BY_ROUTING_KEY, COMMANDS_BY_TYPE, MessageKind
from worker.domain.incoming import IncomingCommand
from worker.messaging.poison import DeadLetterReason, Poison

JSON_CONTENT_TYPES = frozenset({"application/json", "text/json"})
TEXT_ENCODINGS = frozenset({"utf-8", "utf8"})
MAX_DETAIL_ERRORS = 5


@dataclass(frozen=True)
class Envelope:
    """What the decoder needs of an AMQP message, whichever client sent it."""

    body: bytes
    routing_key: str
    content_type: str | None = None
    content_encoding: str | None = None
    type_name: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    headers: Mapping[str, Any] | None = None


def decode_command(envelope: Envelope) -> IncomingCommand | Poison:
    """Decode and validate a command message."""
    refusal = _refuse_format(envelope)
    if refusal is not None:
        return refusal
    kind = _message_kind(envelope)
    if kind is None:
        return Poison(
            DeadLetterReason.UNKNOWN_TYPE,
            f"no command type {envelope.type_name!r} for routing key {envelope.routing_key!r}; "
            f"known types: {', '.join(sorted(COMMANDS_BY_TYPE))}",
        )
    try:
        command = kind.model.model_validate_json(envelope.body)
    except ValidationError as error:
        return _poison_from_validation(error, kind)
    return IncomingCommand(
        command=command,  # type: ignore[arg-type]  # COMMANDS hold only command models
        correlation_id=envelope.correlation_id or None,
        message_id=envelope.message_id or None,
    )


def _refuse_format(envelope: Envelope) -> Poison | None:
    content_type = (envelope.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type not in JSON_CONTENT_TYPES:
        return Poison(
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
            f"content type {envelope.content_type!r} is not accepted; send application/json",
        )
    encoding = (envelope.content_encoding or "").strip().lower()
    if encoding and encoding not in TEXT_ENCODINGS:
        return Poison(
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
            f"content encoding {envelope.content_encoding!r} is not accepted; send UTF-8 JSON",
        )
    if envelope.headers and "compression" in envelope.headers:
        return Poison(
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
            f"compressed bodies ({envelope.headers['compression']!r}) are not accepted",
        )
    return None


def _message_kind(envelope: Envelope) -> MessageKind | None:
    """The AMQP `type` names the command; without one, the routing key does."""
    if envelope.type_name:
        return COMMANDS_BY_TYPE.get(envelope.type_name)
    return COMMANDS_BY_ROUTING_KEY.get(envelope.routing_key)


def _poison_from_validation(error: ValidationError, kind: MessageKind) -> Poison:
    problems = error.errors(include_url=False, include_input=False)
    if any(problem["type"] == "json_invalid" for problem in problems):
        return Poison(
            DeadLetterReason.MALFORMED_JSON, f"body is not valid JSON: {problems[0]['msg']}"
        )
    if any(problem["type"] == "model_type" and not problem["loc"] for problem in problems):
        return Poison(DeadLetterReason.SCHEMA_VIOLATION, f"{kind.type_name} must be a JSON object")
    described = [
        f"{'.'.join(str(part) for part in problem['loc']) or '(body)'}: {problem['msg']}"
        for problem in problems[:MAX_DETAIL_ERRORS]
    ]
    more = len(problems) - MAX_DETAIL_ERRORS
    if more > 0:
        described.append(f"and {more} more")
    return Poison(
        DeadLetterReason.SCHEMA_VIOLATION, f"{kind.type_name} is invalid: " + "; ".join(described)
    )
