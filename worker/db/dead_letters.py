"""The dead-letter store: writing what the ingester takes, and the queries behind `dlq`."""

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from worker.db.connection import Connection
from worker.db.errors import translated
from worker.dead_letter_views import DeadLetterDetail, DeadLetterGroup, DeadLetterSummary
from worker.messaging.dead_letter_record import DeadLetterRecord

INSERT_DEAD_LETTER = """
INSERT INTO dead_letters (
    fingerprint, reason, detail, source_queue, original_exchange, original_routing_key,
    message_id, correlation_id, message_type, order_number, properties, headers, body,
    attempts, first_failed_at, last_failed_at, replayed_from
) VALUES (
    %(fingerprint)s, %(reason)s, %(detail)s, %(source_queue)s, %(original_exchange)s,
    %(original_routing_key)s, %(message_id)s, %(correlation_id)s, %(message_type)s,
    %(order_number)s, %(properties)s, %(headers)s, %(body)s, %(attempts)s,
    %(first_failed_at)s, %(last_failed_at)s,
    -- A header naming no entry (forged, or from another store) links to nothing.
    (SELECT id FROM dead_letters WHERE id = %(replayed_from)s::bigint)
)
ON CONFLICT (fingerprint) DO NOTHING
"""

SUMMARY_COLUMNS = """
id, reason, detail, source_queue, original_routing_key AS routing_key, message_id, order_number,
attempts, first_failed_at, last_failed_at, state
"""

DETAIL_COLUMNS = f"""
{SUMMARY_COLUMNS}, original_exchange AS exchange, correlation_id, message_type,
properties, headers, body, ingested_at, replay_count, replayed_at, replayed_by, purged_at,
purged_by, purge_note, replayed_from
"""

GROUPS = """
SELECT reason, source_queue,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       count(*) FILTER (WHERE state = 'replayed') AS replayed,
       count(*) FILTER (WHERE state = 'purged') AS purged,
       coalesce(min(first_failed_at) FILTER (WHERE state = 'dead'), min(first_failed_at))
           AS oldest,
       coalesce(max(last_failed_at) FILTER (WHERE state = 'dead'), max(last_failed_at))
           AS newest
FROM dead_letters
GROUP BY reason, source_queue
HAVING %(everything)s OR count(*) FILTER (WHERE state = 'dead') > 0
ORDER BY dead DESC, reason, source_queue NULLS LAST
"""

STORED_REASONS = "SELECT DISTINCT reason FROM dead_letters ORDER BY reason"

FILTERS = """
WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
  AND (%(queue)s::text IS NULL OR source_queue = %(queue)s)
  AND (%(order_number)s::text IS NULL OR order_number = %(order_number)s)
  AND (%(since)s::timestamptz IS NULL OR last_failed_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR last_failed_at <= %(until)s)
  AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s))
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s))
"""

LIST = f"""
SELECT {SUMMARY_COLUMNS} FROM dead_letters {FILTERS}
ORDER BY last_failed_at DESC, id DESC
LIMIT %(limit)s
"""

SELECT_DETAILS = f"""
SELECT {DETAIL_COLUMNS} FROM dead_letters {FILTERS}
ORDER BY id
LIMIT %(limit)s
"""

SELECT_IDS = f"""
SELECT id FROM dead_letters {FILTERS}
ORDER BY id
LIMIT %(limit)s
"""

CLAIM = f"""
SELECT {DETAIL_COLUMNS} FROM dead_letters
WHERE id = %(id)s
FOR UPDATE SKIP LOCKED
"""

MARK_REPLAYED = """
UPDATE dead_letters
SET state = 'replayed', replayed_at = now(), replayed_by = %(actor)s,
    replay_count = replay_count + 1
WHERE id = %(id)s AND state <> 'purged'
"""

PURGE = f"""
UPDATE dead_letters
SET state = 'purged', purged_at = now(), purged_by = %(actor)s, purge_note = %(note)s
{FILTERS}
  AND state <> 'purged'
  AND (%(older_than)s::interval IS NULL OR last_failed_at < now() - %(older_than)s)
RETURNING id
"""


@dataclass(frozen=True)
class Selection:
    """Which stored messages a command is about; None means "any"."""

    reason: str | None = None
    queue: str | None = None
    order_number: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    states: Sequence[str] | None = None
    ids: Sequence[int] | None = None
    limit: int | None = None

    def params(self) -> dict[str, Any]:
        params = asdict(self)
        params["states"] = list(self.states) if self.states is not None else None
        params["ids"] = list(self.ids) if self.ids is not None else None
        return params


def store(conn: Connection, records: Sequence[DeadLetterRecord]) -> None:
    """Insert `records` in one transaction; a message stored before is left as it is."""
    rows = [
        {
            **asdict(record),
            "properties": Jsonb(record.properties),
            "headers": Jsonb(record.headers),
        }
        for record in records
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(INSERT_DEAD_LETTER, rows)


def groups(conn: Connection, *, everything: bool = False) -> list[DeadLetterGroup]:
    """Counts by reason and source queue; only groups with dead messages unless `everything`."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(GROUPS, {"everything": everything}).fetchall()
    return [DeadLetterGroup(**row) for row in rows]


def stored_reasons(conn: Connection) -> list[str]:
    """Every reason an entry of the store has, whatever its state."""
    return [str(row[0]) for row in conn.execute(STORED_REASONS).fetchall()]


def summaries(conn: Connection, selection: Selection) -> list[DeadLetterSummary]:
    """Stored messages matching `selection`, the most recent failure first."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(LIST, selection.params()).fetchall()
    return [DeadLetterSummary(**row) for row in rows]


def details(conn: Connection, selection: Selection) -> list[DeadLetterDetail]:
    """Every field of the stored messages matching `selection`, in the order they were stored."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(SELECT_DETAILS, selection.params()).fetchall()
    return [_detail(row) for row in rows]


def each_detail(
    conn: Connection, selection: Selection, chunk: int = 500
) -> Iterator[DeadLetterDetail]:
    """Like `details`, streamed through a server-side cursor, for exports of any size."""
    with conn.transaction(), conn.cursor(name="dead_letter_export", row_factory=dict_row) as cur:
        cur.itersize = chunk
        cur.execute(SELECT_DETAILS, selection.params())
        for row in cur:
            yield _detail(row)


def get(conn: Connection, entry_id: int) -> DeadLetterDetail | None:
    found = details(conn, Selection(ids=[entry_id], limit=1))
    return found[0] if found else None


def ids(conn: Connection, selection: Selection) -> list[int]:
    """The ids matching `selection`, in the order they were stored: a list that stays small."""
    return [int(row[0]) for row in conn.execute(SELECT_IDS, selection.params()).fetchall()]


@contextmanager
def claimed(conn: Connection, entry_id: int) -> Iterator[DeadLetterDetail | None]:
    """Lock entry `entry_id` for as long as the block runs; None if another session holds it.

    The lock is held in a transaction that commits when the block ends and
    rolls back when it raises: a replay publishes and marks the entry inside
    it, so a second replay or a purge of the same entry waits for, or skips,
    the first instead of racing it.
    """
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(CLAIM, {"id": entry_id}).fetchone()
        yield _detail(row) if row else None


def mark_replayed(conn: Connection, entry_id: int, actor: str) -> bool:
    """Record a confirmed replay; False if the entry was purged meanwhile."""
    with conn.transaction():
        updated = conn.execute(MARK_REPLAYED, {"id": entry_id, "actor": actor}).rowcount
    return updated == 1


def purge(
    conn: Connection,
    selection: Selection,
    actor: str,
    older_than: timedelta | None = None,
    note: str | None = None,
) -> list[int]:
    """Mark the selected entries purged by `actor`, now, and why; return their ids.

    Nothing is deleted.
    """
    params = {**selection.params(), "actor": actor, "older_than": older_than, "note": note}
    with conn.transaction():
        rows = conn.execute(PURGE, params).fetchall()
    return sorted(int(row[0]) for row in rows)


def _detail(row: dict[str, Any]) -> DeadLetterDetail:
    body = bytes(row.pop("body"))
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return DeadLetterDetail(
        **row, body_base64=base64.b64encode(body).decode("ascii"), body_text=text
    )


class PostgresDeadLetterStore:
    """The store as the dead-letter services use it, on one autocommit connection.

    Database errors leave it as the project's own types (`worker.errors`).
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def groups(self, *, everything: bool) -> list[DeadLetterGroup]:
        with translated():
            return groups(self._conn, everything=everything)

    def summaries(self, selection: Selection) -> list[DeadLetterSummary]:
        with translated():
            return summaries(self._conn, selection)

    def each_detail(self, selection: Selection) -> Iterator[DeadLetterDetail]:
        with translated():
            yield from each_detail(self._conn, selection)

    def stored_reasons(self) -> list[str]:
        with translated():
            return stored_reasons(self._conn)

    def get(self, entry_id: int) -> DeadLetterDetail | None:
        with translated():
            return get(self._conn, entry_id)

    def ids(self, selection: Selection) -> list[int]:
        with translated():
            return ids(self._conn, selection)

    @contextmanager
    def claimed(self, entry_id: int) -> Iterator[DeadLetterDetail | None]:
        with translated(), claimed(self._conn, entry_id) as entry:
            yield entry

    def mark_replayed(self, entry_id: int, actor: str) -> bool:
        with translated():
            return mark_replayed(self._conn, entry_id, actor)

    def purge(
        self, selection: Selection, actor: str, older_than: timedelta | None, note: str | None
    ) -> list[int]:
        with translated():
            return purge(self._conn, selection, actor, older_than, note)
