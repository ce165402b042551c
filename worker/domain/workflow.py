"""The order workflow: statuses with their labels, and the allowed transitions."""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Status:
    """A workflow status, with its English and Chinese labels."""

    code: str
    label_en: str
    label_zh: str


@dataclass(frozen=True)
class Workflow:
    """Which statuses exist, where orders start, and which moves are allowed."""

    statuses: tuple[Status, ...]
    initial: str
    transitions: frozenset[tuple[str, str]]

    @classmethod
    def build(
        cls, statuses: Iterable[Status], initial: str, transitions: Iterable[tuple[str, str]]
    ) -> "Workflow":
        """Build a workflow, refusing one that names statuses it does not define."""
        statuses = tuple(statuses)
        transitions = frozenset(transitions)
        codes = {status.code for status in statuses}
        unknown = {code for pair in transitions for code in pair} - codes
        if initial not in codes:
            unknown.add(initial)
        if unknown:
            raise ValueError(f"workflow names undefined statuses: {sorted(unknown)}")
        return cls(statuses, initial, transitions)

    @cached_property
    def codes(self) -> frozenset[str]:
        """The codes of every status."""
        return frozenset(status.code for status in self.statuses)

    def knows(self, code: str) -> bool:
        """Tell whether `code` is a status of this workflow."""
        return code in self.codes

    def allows(self, from_status: str, to_status: str) -> bool:
        """Tell whether an order may move from `from_status` to `to_status`."""
        return (from_status, to_status) in self.transitions

    def next_statuses(self, code: str) -> list[str]:
        """List the statuses reachable in one step from `code`, in workflow order."""
        return [s.code for s in self.statuses if (code, s.code) in self.transitions]
