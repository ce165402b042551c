"""The worker kernel's failure paths, against an in-memory session: milliseconds, no servers."""

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import pytest

from contracts import CommandOutcome
from tests.support.kernel_fakes import FakeSession, delivery
from worker.domain.incoming import IncomingCommand
from worker.domain.outcomes import ApplyResult
from worker.errors import Contention, Misconfigured, Refused, Unavailable
from worker.kernel.attempts import AttemptRunner, HeldBackItem
from worker.kernel.consumer import Consumer, ConsumerSettings
from worker.kernel.delivery import Delivery
from worker.kernel.dispositions import (
    DeadLetterReason,
    Disposition,
    Done,
    HeldBack,
    Poison,
    RetryLater,
)
from worker.kernel.hooks import Hooks
from worker.kernel.patience import GaveUp, Patience
from worker.kernel.ports import Keepalive
from worker.kernel.stopping import Stopped, Stopping
from worker.messaging.topology import Topology
from worker.status_worker import ApplyCommands

TOPOLOGY = Topology("ns", retry_delays_ms=(100, 300))
QUEUE = TOPOLOGY.status_worker()


class ScriptedHandler:
    """Returns the dispositions a test gives it, in order, one list per batch."""

    def __init__(self, *answers: Sequence[Disposition], during: Any = None) -> None:
        self.answers = list(answers)
        self.during = during
        self.handled: list[list[int]] = []
        self.prepared = 0
        self.closed = False

    def prepare(self) -> None:
        self.prepared += 1

    def handle(self, batch: Sequence[Delivery], keepalive: Keepalive) -> Sequence[Disposition]:
        self.handled.append([item.delivery_tag for item in batch])
        if self.during is not None:
            self.during()
        return self.answers.pop(0)

    def between_batches(self, keepalive: Keepalive) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class RecordingHooks(Hooks):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def session_started(self, role: str) -> None:
        self.calls.append("started")

    def readiness_changed(self, role: str, ready: bool, why: str | None) -> None:
        self.calls.append(f"ready={ready}")

    def before_batch(self, role: str, batch: Sequence[Delivery]) -> None:
        self.calls.append(f"before {len(batch)}")

    def after_batch(
        self, role: str, batch: Sequence[Delivery], dispositions: Sequence[Disposition], s: float
    ) -> None:
        self.calls.append(f"after {len(dispositions)}")

    def failure_routed(
        self, role: str, delivery: Delivery, failure: Poison | RetryLater, destination: str
    ) -> None:
        self.calls.append(f"routed {destination}")


def consumer(
    handler: ScriptedHandler,
    sessions: list[FakeSession],
    stop: threading.Event,
    *,
    hooks: Hooks | None = None,
    give_up_after: float = 60.0,
    grace: float = 5.0,
    reconnect_max: float = 0.01,
) -> Consumer:
    settings = ConsumerSettings(
        role="status-worker",
        queues=[QUEUE],
        batch_size=10,
        batch_wait_seconds=0.0,
        prefetch=20,
        reconnect_max_seconds=reconnect_max,
    )
    opened = iter(sessions)
    return Consumer(
        settings,
        handler,
        open_session=lambda: next(opened),
        topology=TOPOLOGY,
        stopping=Stopping(stop, grace),
        patience=Patience("status-worker", give_up_after, hooks or Hooks()),
        hooks=hooks,
    )


def stop_when_drained(session: FakeSession, stop: threading.Event) -> None:
    session.on_collect = lambda: stop.set() if not session.batches else None


# -- one batch: route, confirm, then ack -------------------------------------------------------


def test_a_handled_batch_is_acked_once_through_its_last_delivery_after_the_confirm() -> None:
    session = FakeSession([])
    handler = ScriptedHandler([Done(), Done(), Done()])
    batch = [delivery(1), delivery(2), delivery(3)]
    consumer(handler, [], threading.Event()).process(batch, session)
    assert session.journal == ["confirmed", "ack 3"]


def test_poison_is_dead_lettered_with_its_reason_and_confirmed_before_the_ack() -> None:
    session = FakeSession([])
    poison = Poison(DeadLetterReason.MALFORMED_JSON, "not JSON")
    handler = ScriptedHandler([Done(), poison])
    consumer(handler, [], threading.Event()).process([delivery(1), delivery(2, b"{")], session)
    assert session.journal == ["publish ns.dead-letter", "confirmed", "ack 2"]
    [copy] = session.publisher().published
    assert copy.body == b"{"
    assert copy.headers["x-dead-letter-reason"] == "malformed_json"
    assert copy.headers["x-dead-letter-detail"] == "not JSON"
    assert copy.headers["x-source-queue"] == "ns.status-worker"
    assert copy.routing_key == "order.status.change"


def test_a_passing_failure_waits_in_the_first_tier_of_the_queue_it_came_from() -> None:
    session = FakeSession([])
    handler = ScriptedHandler([RetryLater("LockNotAvailable", "busy")])
    consumer(handler, [], threading.Event()).process([delivery(7)], session)
    [copy] = session.publisher().published
    assert copy.exchange == TOPOLOGY.retry_exchange
    assert copy.headers["x-retry-attempt"] == 1
    assert copy.headers["retry-queue"] == "ns.status-worker"
    assert copy.headers["retry-delay"] == "100ms"
    assert copy.headers["x-retry-last-failure"] == "LockNotAvailable: busy"
    assert session.journal[-2:] == ["confirmed", "ack 7"]


def test_a_held_back_delivery_follows_the_one_it_waits_behind_into_a_later_tier() -> None:
    session = FakeSession([])
    # The first came back from the first tier: this is its second failure.
    first = delivery(1, exchange=TOPOLOGY.retry_return_exchange, headers={"x-retry-attempt": 1})
    second = delivery(2)
    handler = ScriptedHandler(
        [RetryLater("LockNotAvailable", "busy"), HeldBack(first, "an earlier message waits")]
    )
    consumer(handler, [], threading.Event()).process([first, second], session)
    ahead, behind = session.publisher().published
    assert ahead.headers["x-retry-attempt"] == behind.headers["x-retry-attempt"] == 2
    assert ahead.headers["retry-delay"] == behind.headers["retry-delay"] == "300ms"
    assert behind.headers["x-retry-last-failure"].startswith("held_back")


def test_a_message_past_its_last_tier_is_dead_lettered_as_retries_exhausted() -> None:
    session = FakeSession([])
    tired = delivery(1, exchange=TOPOLOGY.retry_return_exchange, headers={"x-retry-attempt": 2})
    consumer(ScriptedHandler([RetryLater("DeadlockDetected", "x")]), [], threading.Event()).process(
        [tired], session
    )
    [copy] = session.publisher().published
    assert copy.exchange == TOPOLOGY.dead_letter_exchange
    assert copy.headers["x-dead-letter-reason"] == "retries_exhausted"
    assert copy.headers["x-retry-attempt"] == 3


def test_failure_headers_a_producer_wrote_are_not_trusted() -> None:
    session = FakeSession([])
    forged = delivery(1, headers={"x-retry-attempt": 99, "x-replayed-from": 5, "mine": "kept"})
    consumer(ScriptedHandler([RetryLater("LockNotAvailable", "x")]), [], threading.Event()).process(
        [forged], session
    )
    [copy] = session.publisher().published
    assert copy.headers["x-retry-attempt"] == 1
    assert "x-replayed-from" not in copy.headers
    assert copy.headers["mine"] == "kept"


def test_nothing_is_acked_when_the_broker_does_not_confirm_a_copy() -> None:
    session = FakeSession([])
    session.publisher().refuse_next_confirm = True
    handler = ScriptedHandler([Poison(DeadLetterReason.MALFORMED_JSON, "x")])
    with pytest.raises(Unavailable):
        consumer(handler, [], threading.Event()).process([delivery(1)], session)
    assert session.acked == []


def test_a_handler_that_loses_track_of_a_delivery_gets_nothing_acked() -> None:
    session = FakeSession([])
    with pytest.raises(RuntimeError, match="1 dispositions for 2"):
        consumer(ScriptedHandler([Done()]), [], threading.Event()).process(
            [delivery(1), delivery(2)], session
        )
    assert session.acked == []


# -- sessions: reconnect, stop, give up ----------------------------------------------------------


def test_a_lost_session_is_started_again_and_its_unacked_batch_handled_there() -> None:
    stop = threading.Event()
    lost = FakeSession([[delivery(1)]])
    lost.publisher().refuse_next_confirm = True
    again = FakeSession([[delivery(1)]])
    stop_when_drained(again, stop)
    poison = Poison(DeadLetterReason.MALFORMED_JSON, "x")
    handler = ScriptedHandler([poison], [poison])
    consumer(handler, [lost, again], stop).run()
    assert lost.acked == []
    assert lost.closed
    assert again.acked == [1]
    assert again.closed
    assert handler.prepared == 2
    assert handler.closed


def test_a_stop_during_a_batch_lets_it_finish_commit_confirm_and_ack() -> None:
    stop = threading.Event()
    session = FakeSession([[delivery(1), delivery(2)], [delivery(3)]])
    hooks = RecordingHooks()
    handler = ScriptedHandler([Done(), Done()], during=stop.set)
    consumer(handler, [session], stop, hooks=hooks).run()
    assert handler.handled == [[1, 2]], "no batch taken after the stop"
    assert session.acked == [2]
    assert session.closed, "closed, never cancelled: unacked deliveries keep their place"
    assert hooks.calls == ["started", "ready=True", "before 2", "after 2", "ready=False"]


def test_hooks_see_every_routed_failure() -> None:
    stop = threading.Event()
    session = FakeSession([[delivery(1), delivery(2)]])
    stop_when_drained(session, stop)
    hooks = RecordingHooks()
    handler = ScriptedHandler([Done(), RetryLater("LockNotAvailable", "x")])
    consumer(handler, [session], stop, hooks=hooks).run()
    assert "routed ns.status-worker.retry.100ms" in hooks.calls


def test_a_fault_that_does_not_clear_is_said_once_then_the_worker_gives_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)

    class Unmigrated(ScriptedHandler):
        def prepare(self) -> None:
            raise Misconfigured("ORDERS_DATABASE_URL", "run `order-status migrate` first")

    hooks = RecordingHooks()
    with pytest.raises(GaveUp, match="migrate"):
        consumer(Unmigrated(), [], threading.Event(), hooks=hooks, give_up_after=0.05).run()
    said = [r for r in caplog.records if "cannot work" in r.getMessage()]
    assert len(said) == 1
    assert "ORDERS_DATABASE_URL" in said[0].getMessage()
    assert "ready=False" in hooks.calls


def test_a_stop_ends_a_reconnection_wait_at_once() -> None:
    stop = threading.Event()

    class Down(ScriptedHandler):
        def prepare(self) -> None:
            raise Unavailable("PostgreSQL", "refused")

    # Waits of 0.2, 0.4, 0.8 and 1.6 s: the stop comes during the fourth.
    threading.Timer(1.0, stop.set).start()
    began = time.monotonic()
    consumer(Down(), [], stop, grace=30.0, reconnect_max=30.0).run()
    assert time.monotonic() - began < 1.4


def test_a_bug_in_a_handler_ends_the_worker_at_once() -> None:
    class Buggy(ScriptedHandler):
        def prepare(self) -> None:
            raise KeyError("bug")

    with pytest.raises(KeyError):
        consumer(Buggy(), [], threading.Event()).run()


# -- the attempt runner ----------------------------------------------------------------------------


def runner(
    stop: threading.Event | None = None, grace: float = 5.0, give_up_after: float = 60.0
) -> AttemptRunner:
    stopping = Stopping(stop or threading.Event(), grace)
    patience = Patience("test", give_up_after, Hooks())
    return AttemptRunner(stopping, patience, contention_retries=2, max_wait_seconds=0.01)


def test_an_outage_is_waited_out_in_place_holding_the_batch() -> None:
    tries: list[int] = []

    def work(items: Sequence[str]) -> list[str]:
        tries.append(len(items))
        if len(tries) < 3:
            raise Unavailable("PostgreSQL", "restarting")
        return [f"done {item}" for item in items]

    result = runner().run(["a", "b"], work, key=str, keepalive=lambda: None)
    assert result == ["done a", "done b"]
    assert tries == [2, 2, 2], "retried whole, never split"


def test_contention_that_persists_sends_the_busy_item_to_a_tier_and_holds_its_order_back() -> None:
    def work(items: Sequence[str]) -> list[str]:
        if "k1:a" in items:
            raise Contention("LockNotAvailable: busy", kind="LockNotAvailable")
        return [f"done {item}" for item in items]

    result = runner().run(
        ["k1:a", "k1:b", "k2:c"], work, key=lambda item: item.split(":")[0], keepalive=lambda: None
    )
    first, second, third = result
    assert first == RetryLater("LockNotAvailable", "LockNotAvailable: busy")
    assert isinstance(second, HeldBackItem)
    assert second.behind == "k1:a"
    assert third == "done k2:c"


def test_a_batch_that_fails_for_one_item_is_split_and_only_that_item_is_poison() -> None:
    def work(items: Sequence[str]) -> list[str]:
        if "bad" in items:
            raise Refused("CheckViolation: amount out of range")
        return [f"done {item}" for item in items]

    result = runner().run(["a", "bad", "c"], work, key=str, keepalive=lambda: None)
    assert result[0] == "done a"
    assert result[1] == Poison(DeadLetterReason.APPLY_FAILED, "CheckViolation: amount out of range")
    assert result[2] == "done c"


def test_misconfiguration_mid_batch_is_waited_out_holding_the_batch_then_given_up_on() -> None:
    tries: list[int] = []

    def work(items: Sequence[str]) -> list[str]:
        tries.append(1)
        raise Misconfigured("ORDERS_DATABASE_URL", "permission denied for table order_lines")

    with pytest.raises(GaveUp, match="permission denied"):
        runner(give_up_after=0.05).run(["a", "b"], work, key=str, keepalive=lambda: None)
    assert len(tries) > 1, "tried again in place, not handed back at once"


def test_a_fixed_misconfiguration_is_forgotten_so_a_later_one_gets_all_its_time() -> None:
    patience = Patience("test", 0.2, Hooks())
    patience.judge(Misconfigured("ORDERS_DATABASE_URL", "permission denied"))
    time.sleep(0.25)
    patience.recovered()
    patience.judge(Misconfigured("ORDERS_DATABASE_URL", "permission denied"))  # no GaveUp


def test_busy_rows_can_be_waited_out_by_a_handler_with_no_tier_to_send_to() -> None:
    tries: list[int] = []

    def work(items: Sequence[str]) -> list[str]:
        tries.append(1)
        if len(tries) < 6:
            raise Contention("QueryCanceled: statement timeout", kind="QueryCanceled")
        return [f"stored {item}" for item in items]

    result = runner().run(
        ["a", "b"], work, key=str, keepalive=lambda: None, wait_out_contention=True
    )
    assert result == ["stored a", "stored b"]


def test_isolating_a_culprit_still_holds_an_order_back_behind_a_busy_command() -> None:
    def work(items: Sequence[str]) -> list[str]:
        if "bad" in items:
            raise Refused("CheckViolation: x")
        if "A:1" in items:
            raise Contention("LockNotAvailable: busy", kind="LockNotAvailable")
        return [f"done {item}" for item in items]

    first, second, third = runner().run(
        ["A:1", "bad", "A:2"], work, key=lambda item: item.split(":")[0], keepalive=lambda: None
    )
    assert isinstance(first, RetryLater)
    assert isinstance(second, Poison)
    assert isinstance(third, HeldBackItem)
    assert third.behind == "A:1"


def test_an_outage_that_outlasts_the_stop_grace_gives_the_batch_back() -> None:
    stop = threading.Event()
    stop.set()

    def work(items: Sequence[str]) -> list[str]:
        raise Unavailable("PostgreSQL", "down")

    with pytest.raises(Stopped):
        runner(stop, grace=0.05).run(["a"], work, key=str, keepalive=lambda: None)


# -- the status worker's handler, against a fake store ------------------------------------------


class FakeCommandStore:
    def __init__(self, conflict: bool = False) -> None:
        self.applied: list[list[str]] = []
        self.conflict = conflict

    def check(self) -> None:
        pass

    def apply(self, commands: Sequence[IncomingCommand]) -> list[ApplyResult]:
        self.applied.append([command.command.order_number for command in commands])
        return [
            ApplyResult(
                command_id=command.command.command_id,
                order_number=command.command.order_number,
                outcome=CommandOutcome.APPLIED,
                content_conflict=self.conflict,
            )
            for command in commands
        ]

    def close(self) -> None:
        pass


def change(number: str) -> bytes:
    return json.dumps(
        {"command_id": str(uuid4()), "order_number": number, "to_status": "done", "actor": "a"}
    ).encode()


def test_the_status_handler_applies_what_decodes_and_sets_poison_aside() -> None:
    store = FakeCommandStore()
    handler = ApplyCommands(store, runner())
    dispositions = handler.handle(
        [delivery(1, change("SO-1")), delivery(2, b"{not json"), delivery(3, change("SO-2"))],
        keepalive=lambda: None,
    )
    assert store.applied == [["SO-1", "SO-2"]], "one transaction for the batch"
    first, second, third = dispositions
    assert isinstance(first, Done)
    assert isinstance(third, Done)
    assert isinstance(second, Poison)
    assert second.reason == DeadLetterReason.MALFORMED_JSON


def test_the_status_handler_dead_letters_a_command_id_reused_for_other_content() -> None:
    handler = ApplyCommands(FakeCommandStore(conflict=True), runner())
    [disposition] = handler.handle([delivery(1, change("SO-1"))], keepalive=lambda: None)
    assert isinstance(disposition, Poison)
    assert disposition.reason == DeadLetterReason.COMMAND_ID_REUSED
