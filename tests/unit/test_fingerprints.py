"""Content hashes: what counts as the same order, and the same command."""

from decimal import Decimal
from uuid import uuid4

from contracts import Customer
from tests.support.commands import change_status, create_order
from worker.domain.fingerprints import creation_fingerprint, fingerprint


def test_same_order_sent_twice_under_new_ids_has_one_fingerprint() -> None:
    first = create_order("SO-1", actor="erp")
    again = first.model_copy(update={"command_id": uuid4(), "actor": "someone else"})
    assert creation_fingerprint(first) == creation_fingerprint(again)


def test_amount_spelling_does_not_matter() -> None:
    a = create_order("SO-1", amount=Decimal("20000"))
    b = create_order("SO-1", amount=Decimal("20000.00"), command_id=a.command_id)
    assert creation_fingerprint(a) == creation_fingerprint(b)
    assert fingerprint(a) == fingerprint(b)


def test_any_content_change_changes_the_order_fingerprint() -> None:
    base = create_order("SO-1")
    changes: list[dict[str, object]] = [
        {"amount": Decimal("1200.51")},
        {"currency": "USD"},
        {"customer": Customer(id="C-2", name="Acme Trading", type="enterprise")},
        {"lines": ()},
    ]
    for change in changes:
        assert creation_fingerprint(base) != creation_fingerprint(base.model_copy(update=change))


def test_command_fingerprint_covers_every_field() -> None:
    command = change_status("SO-1", "in_progress")
    assert fingerprint(command) == fingerprint(command.model_copy())
    assert fingerprint(command) != fingerprint(command.model_copy(update={"reason": "other"}))
    assert fingerprint(command) != fingerprint(
        command.model_copy(update={"to_status": "cancelled"})
    )
