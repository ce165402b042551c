"""The retry tiers: how delays are written, named, and which tier a failure goes to next."""

from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from worker.config import Settings
from worker.durations import label, parse_duration, parse_ms
from worker.kernel.routing import Exhausted, WaitInTier, next_step
from worker.messaging.failure_headers import ATTEMPT_HEADER, MAX_ATTEMPTS, failed_attempts
from worker.messaging.topology import RETRY_DELAY_HEADER, RETRY_QUEUE_HEADER, Topology

DEFAULT_MS = (1_000, 5_000, 30_000, 120_000, 600_000)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("200ms", 200), ("1s", 1_000), (" 5 S ", 5_000), ("2m", 120_000), ("1h", 3_600_000)],
)
def test_durations_are_read_in_their_unit(text: str, ms: int) -> None:
    assert parse_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "0s", "-1s", "1.5s", "5 minutes", "1w"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_ms(text)


def test_an_age_is_a_timedelta() -> None:
    assert parse_duration("7d") == timedelta(days=7)


@pytest.mark.parametrize(
    ("ms", "name"),
    [(1_000, "1s"), (120_000, "2m"), (90_000, "90s"), (250, "250ms"), (86_400_000, "1d")],
)
def test_a_delay_is_named_exactly_and_briefly(ms: int, name: str) -> None:
    assert label(ms) == name
    assert parse_ms(name) == ms


def test_the_default_tiers_are_those_the_runbook_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_RETRY_DELAYS", raising=False)
    settings = Settings()
    assert settings.retry_delays_ms == DEFAULT_MS
    assert [label(ms) for ms in settings.retry_delays_ms] == ["1s", "5s", "30s", "2m", "10m"]


@pytest.mark.parametrize("text", ["", "1s,1000ms", "1s,soon"])
def test_tiers_must_be_durations_that_differ(text: str) -> None:
    with pytest.raises(ValidationError):
        Settings(retry_delays=text)


def test_tiers_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_RETRY_DELAYS", "500ms, 10s")
    assert Settings().retry_delays_ms == (500, 10_000)


@pytest.mark.parametrize(
    ("headers", "step"),
    [
        (None, WaitInTier(attempt=1, delay_ms=1_000)),
        ({}, WaitInTier(attempt=1, delay_ms=1_000)),
        ({ATTEMPT_HEADER: 1}, WaitInTier(attempt=2, delay_ms=5_000)),
        ({ATTEMPT_HEADER: 4}, WaitInTier(attempt=5, delay_ms=600_000)),
        ({ATTEMPT_HEADER: 5}, Exhausted(attempts=6)),
        ({ATTEMPT_HEADER: 9}, Exhausted(attempts=10)),
    ],
)
def test_each_failure_waits_in_the_next_tier_until_none_is_left(
    headers: dict[str, int] | None, step: WaitInTier | Exhausted
) -> None:
    assert next_step(headers, DEFAULT_MS) == step


@pytest.mark.parametrize("count", ["two", None, -3, [1]])
def test_a_mangled_attempt_count_starts_from_the_first_tier(count: object) -> None:
    assert failed_attempts({ATTEMPT_HEADER: count}) == 0
    assert next_step({ATTEMPT_HEADER: count}, DEFAULT_MS) == WaitInTier(1, 1_000)


@pytest.mark.parametrize(
    "count",
    [
        float("inf"),
        float("-inf"),
        float("nan"),
        2.5,
        True,
        Decimal("Infinity"),
        Decimal("NaN"),
        Decimal("sNaN"),
        "9" * 5_000,
        b"\xff",
        {"nested": 1},
    ],
)
def test_a_count_no_producer_should_send_is_read_as_none_without_raising(count: object) -> None:
    assert failed_attempts({ATTEMPT_HEADER: count}) == 0
    assert next_step({ATTEMPT_HEADER: count}, DEFAULT_MS) == WaitInTier(1, 1_000)


@pytest.mark.parametrize("count", [10**40, 1e300, Decimal("1e400")])
def test_a_huge_count_is_capped_and_means_every_tier_is_used_up(count: object) -> None:
    assert failed_attempts({ATTEMPT_HEADER: count}) == MAX_ATTEMPTS
    assert next_step({ATTEMPT_HEADER: count}, DEFAULT_MS) == Exhausted(MAX_ATTEMPTS + 1)


def test_a_whole_count_in_any_number_type_is_counted() -> None:
    assert [failed_attempts({ATTEMPT_HEADER: n}) for n in (2, 2.0, Decimal(2), b"2")] == [2] * 4


def test_a_message_held_back_behind_another_takes_its_count_or_its_own_if_higher() -> None:
    assert next_step({}, DEFAULT_MS, at_least=2) == WaitInTier(3, 30_000)
    assert next_step({ATTEMPT_HEADER: 3}, DEFAULT_MS, at_least=1) == WaitInTier(4, 120_000)
    assert next_step({}, DEFAULT_MS, at_least=5) == Exhausted(6)


def test_a_count_sent_as_text_is_still_counted() -> None:
    assert next_step({ATTEMPT_HEADER: "2"}, DEFAULT_MS) == WaitInTier(3, 30_000)


def test_each_queue_has_its_own_tiers_that_hand_back_to_it_alone() -> None:
    topology = Topology("acme", retry_delays_ms=(1_000, 120_000))
    tiers = topology.retry_tiers("acme.rules")
    assert [tier.name for tier in tiers] == ["acme.rules.retry.1s", "acme.rules.retry.2m"]
    first = tiers[0]
    assert first.queue_arguments == {
        "x-queue-type": "quorum",
        "x-message-ttl": 1_000,
        "x-dead-letter-exchange": "acme.retry-return",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    [into] = first.bindings
    assert into.exchange.name == "acme.retry"
    assert into.arguments == {
        "x-match": "all",
        RETRY_QUEUE_HEADER: "acme.rules",
        RETRY_DELAY_HEADER: "1s",
    }
    back = topology.retry_return("acme.rules")
    assert back.exchange.name == "acme.retry-return"
    assert back.arguments == {"x-match": "all", RETRY_QUEUE_HEADER: "acme.rules"}


@pytest.mark.parametrize("queue", ["acme.status-worker", "acme.rules"])
def test_each_work_queue_has_tiers_and_takes_its_waiting_messages_back(queue: str) -> None:
    topology = Topology("acme")
    names = [declared.name for declared in topology.queues()]
    tiers = [f"{queue}.retry.{tier}" for tier in ("1s", "5s", "30s", "2m", "10m")]
    assert [name for name in names if name.startswith(f"{queue}.retry.")] == tiers
    [work] = [declared for declared in topology.queues() if declared.name == queue]
    back = [b for b in work.bindings if b.exchange.name == "acme.retry-return"]
    assert [b.arguments for b in back] == [{"x-match": "all", RETRY_QUEUE_HEADER: queue}]
