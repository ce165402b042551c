"""Turn an AMQP message from the events exchange into an event a consumer reacts to.

Like command decoding: only JSON is parsed, the AMQP `type` (or else the
routing key) names the event, and a message that is not a valid event is
Poison with a reason. Events of types the consumer does not want are Ignored.
"""

from dataclasses import dataclass

from pydantic import ValidationError

from contracts import EVENTS, ContractModel, MessageKind
from worker.messaging.decoding import JSON_CONTENT_TYPES, TEXT_ENCODINGS, Envelope
from worker.messaging.poison import DeadLetterReason, Poison

EVENTS_BY_TYPE = {kind.type_name: kind for kind in EVENTS}
EVENTS_BY_ROUTING_KEY = {kind.routing_key: kind for kind in EVENTS}


@dataclass(frozen=True)
class Ignored:
    """A well-formed event this consumer does not react to."""

    type_name: str


def decode_event(
    envelope: Envelope, wanted: tuple[type[ContractModel], ...]
) -> ContractModel | Ignored | Poison:
    """Decode and validate an event; never raises."""
    content_type = (envelope.content_type or "").split(";")[0].strip().lower()
    encoding = (envelope.content_encoding or "").strip().lower()
    if (content_type and content_type not in JSON_CONTENT_TYPES) or (
        encoding and encoding not in TEXT_ENCODINGS
    ):
        return Poison(
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
            f"content type {envelope.content_type!r} / encoding {envelope.content_encoding!r} "
            "is not accepted; send UTF-8 JSON",
        )
    kind = _kind(envelope)
    if kind is None:
        return Poison(
            DeadLetterReason.UNKNOWN_TYPE,
            f"no event type {envelope.type_name!r} for routing key {envelope.routing_key!r}",
        )
    if kind.model not in wanted:
        return Ignored(kind.type_name)
    try:
        return kind.model.model_validate_json(envelope.body)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        if any(problem["type"] == "json_invalid" for problem in problems):
            return Poison(DeadLetterReason.MALFORMED_JSON, f"body is not valid JSON: {error}")
        return Poison(DeadLetterReason.SCHEMA_VIOLATION, f"{kind.type_name} is invalid: {error}")


def _kind(envelope: Envelope) -> MessageKind | None:
    if envelope.type_name:
        return EVENTS_BY_TYPE.get(envelope.type_name)
    return EVENTS_BY_ROUTING_KEY.get(envelope.routing_key)
