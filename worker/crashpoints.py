"""Named points where a test can make a worker die at once, as a power cut would.

A fault test sets `ORDERS_CRASH_AT` to one of the names below; the process
sends itself SIGKILL when it reaches that point, so nothing it has not yet done
(an ack, a mark) happens. The variable is read on the first call and cached:
unset, a crash point costs one comparison. It is a test switch, never an
operator setting, which is why it is not one of the `Settings`.
"""

import functools
import logging
import os
import signal

log = logging.getLogger(__name__)

CRASH_AT_VARIABLE = "ORDERS_CRASH_AT"

AFTER_COMMIT_BEFORE_ACK = "after-commit-before-ack"
"""Status worker: the batch is committed (and its failures routed), not yet acked."""
AFTER_DEAD_LETTER_COPY_BEFORE_ACK = "after-dead-letter-copy-before-ack"
"""Status worker: a poison message's dead-letter copy is confirmed, the original not acked."""
RELAY_AFTER_PUBLISH_BEFORE_MARK = "relay-after-publish-before-mark"
"""Relay: events are confirmed by the broker, not yet marked published in the outbox."""
RULES_AFTER_COMMIT_BEFORE_ACK = "rules-after-commit-before-ack"
"""Rules worker: an event's firings are committed, the event not yet acked."""
REPLAY_AFTER_PUBLISH_BEFORE_MARK = "replay-after-publish-before-mark"
"""Dead-letter replay: the message is confirmed back on its queue, the entry not yet marked."""

CRASH_POINTS = frozenset(
    {
        AFTER_COMMIT_BEFORE_ACK,
        AFTER_DEAD_LETTER_COPY_BEFORE_ACK,
        RELAY_AFTER_PUBLISH_BEFORE_MARK,
        RULES_AFTER_COMMIT_BEFORE_ACK,
        REPLAY_AFTER_PUBLISH_BEFORE_MARK,
    }
)


@functools.cache
def armed_point() -> str | None:
    """The crash point named by the environment, read once; None when unset."""
    name = os.environ.get(CRASH_AT_VARIABLE) or None
    if name is not None and name not in CRASH_POINTS:
        raise ValueError(
            f"{CRASH_AT_VARIABLE}={name!r} names no crash point; known: {sorted(CRASH_POINTS)}"
        )
    return name


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if the environment armed the point `name`."""
    if armed_point() == name:
        log.warning("crash point reached; killing the process", extra={"crash_point": name})
        os.kill(os.getpid(), signal.SIGKILL)
