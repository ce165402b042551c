"""What a replay would do, decided from fakes of the current state: the rules worker's side."""

from tests.support.commands import create_order
from tests.support.dead_letter_fakes import FakeCurrentState, stored_entry
from tests.support.workflow_spec import spec_workflow
from worker.messaging.replay import replay_of
from worker.messaging.topology import Topology
from worker.services.dead_letter_check import check_replay

TOPOLOGY = Topology("orders")


def test_an_event_the_rules_worker_reacts_to_is_judged_again_and_reads_nothing() -> None:
    state = FakeCurrentState()
    entry = stored_entry(
        1,
        b'{"not": "an event"}',
        source_queue=TOPOLOGY.rules_queue,
        routing_key="order.status.rejected",
        exchange=TOPOLOGY.events_exchange,
        properties={"content_type": "application/json", "type": "OrderStatusChangeRejected"},
    )

    check = check_replay(state, spec_workflow(), replay_of(entry, TOPOLOGY), TOPOLOGY)

    assert (check.decodes, check.decision) == (True, "ignored")
    assert not check.fails_again
    assert check.explanation == "the rules worker does not react to OrderStatusChangeRejected"


def test_an_event_that_does_not_decode_would_fail_again() -> None:
    entry = stored_entry(
        1,
        create_order().model_dump_json().encode(),  # a command is no OrderCreated
        source_queue=TOPOLOGY.rules_queue,
        routing_key="order.created",
        exchange=TOPOLOGY.events_exchange,
        properties={"content_type": "application/json", "type": "OrderCreated"},
    )

    check = check_replay(FakeCurrentState(), spec_workflow(), replay_of(entry, TOPOLOGY), TOPOLOGY)

    assert not check.decodes
    assert check.fails_again
    assert check.problem is not None
    assert check.problem.startswith("schema_violation: OrderCreated is invalid")
    assert check.summary().startswith("does not decode (schema_violation")


def test_a_check_says_in_its_json_whether_the_replay_would_fail_again() -> None:
    entry = stored_entry(1, b"{", reason="malformed_json")
    check = check_replay(FakeCurrentState(), spec_workflow(), replay_of(entry, TOPOLOGY), TOPOLOGY)

    dumped = check.model_dump(mode="json")

    assert dumped["decodes"] is False
    assert dumped["fails_again"] is True
