"""After a run: did every command come to what was planned, exactly once?

Checked against the database and the events observed: each applied command has
one history row and one published event; each invalid one was rejected with
invalid_transition and has one rejection event and no history; each repeat
only counted a delivery; every order ended at the planned status and version.
"""

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from worker.bench.observer import Observed
from worker.bench.workload import Expect, Workload

MAX_EXAMPLES = 5
REFUSED = ("rejected", "invalid_transition")


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def expect(self, label: str, offenders: list[str]) -> None:
        if offenders:
            examples = ", ".join(offenders[:MAX_EXAMPLES])
            self.problems.append(f"{label}: {len(offenders)} (e.g. {examples})")


def verify(database_url: str, workload: Workload, observed: Observed) -> Verdict:
    verdict = Verdict()
    ids = list(workload.expected)
    with psycopg.connect(database_url, autocommit=True) as connection:
        recorded = {
            str(command_id): (outcome, reason, deliveries)
            for command_id, outcome, reason, deliveries in connection.execute(
                "SELECT command_id, outcome, reason, deliveries FROM processed_commands "
                "WHERE command_id = ANY(%(ids)s::uuid[])",
                {"ids": ids},
            )
        }
        history = Counter(
            {
                str(command_id): count
                for command_id, count in connection.execute(
                    "SELECT command_id, count(*) FROM order_status_history "
                    "WHERE command_id = ANY(%(ids)s::uuid[]) GROUP BY command_id",
                    {"ids": ids},
                )
            }
        )
        events = {
            str(command_id): (count, published)
            for command_id, count, published in connection.execute(
                "SELECT command_id, count(*), count(published_at) FROM outbox "
                "WHERE command_id = ANY(%(ids)s::uuid[]) GROUP BY command_id",
                {"ids": ids},
            )
        }
        orders = {
            number: (status, version)
            for number, status, version in connection.execute(
                "SELECT order_number, status, version FROM orders "
                "WHERE order_number = ANY(%(numbers)s)",
                {"numbers": list(workload.final_status)},
            )
        }
    deliveries = Counter(message.command_id for message in workload.changes)
    applied = [i for i, expect in workload.expected.items() if expect is Expect.APPLIED]
    rejected = [i for i, expect in workload.expected.items() if expect is Expect.REJECTED]
    verdict.expect("commands with no recorded outcome", [i for i in ids if i not in recorded])
    verdict.expect(
        "valid commands not applied",
        [i for i in applied if i in recorded and recorded[i][0] != "applied"],
    )
    verdict.expect(
        "invalid commands not rejected as invalid_transition",
        [
            i
            for i in rejected
            if i in recorded and recorded[i][:2] != ("rejected", "invalid_transition")
        ],
    )
    verdict.expect(
        "applied commands without exactly one history row", [i for i in applied if history[i] != 1]
    )
    verdict.expect("rejected commands with a history row", [i for i in rejected if history[i]])
    verdict.expect(
        "commands without exactly one published event", [i for i in ids if events.get(i) != (1, 1)]
    )
    verdict.expect(
        "repeats not counted as deliveries",
        [i for i in ids if i in recorded and recorded[i][2] != deliveries[i]],
    )
    verdict.expect(
        "commands whose event was not received", [i for i in ids if i not in observed.first_seen]
    )
    verdict.expect(
        "orders not at the planned status and version",
        [
            number
            for number, status in workload.final_status.items()
            if orders.get(number) != (status, workload.final_version[number])
        ],
    )
    return verdict
