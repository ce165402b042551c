"""What `order-status dlq` shows of the dead-letter store; `--json` prints these models."""

import base64
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DeadLetterState = Literal["dead", "replayed", "purged"]


class DeadLetterSummary(BaseModel):
    """One stored message, as `dlq list` shows it; `id` is what the other commands take."""

    model_config = ConfigDict(frozen=True)

    id: int
    reason: str
    detail: str | None
    """What went wrong, in the words of whoever dead-lettered it."""
    source_queue: str | None
    routing_key: str
    message_id: str | None
    order_number: str | None
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    state: DeadLetterState


class DeadLetterDetail(DeadLetterSummary):
    """Every field of a stored message; the body as base64, and as text when it is UTF-8."""

    exchange: str
    correlation_id: str | None
    message_type: str | None
    properties: dict[str, Any]
    headers: dict[str, Any]
    body_base64: str
    body_text: str | None
    ingested_at: datetime
    replay_count: int
    replayed_at: datetime | None
    replayed_by: str | None
    purged_at: datetime | None
    purged_by: str | None
    purge_note: str | None = None
    """Why it was purged, in the words of whoever purged it."""
    replayed_from: int | None = None
    """The entry this message was replayed from, when it failed again after that replay."""

    @property
    def body(self) -> bytes:
        return base64.b64decode(self.body_base64)


class DeadLetterGroup(BaseModel):
    """Stored messages with one reason from one queue: a failure group."""

    model_config = ConfigDict(frozen=True)

    reason: str
    source_queue: str | None
    dead: int
    replayed: int
    purged: int
    oldest: datetime
    newest: datetime
