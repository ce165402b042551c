"""What a dead letter's replay check reads of the database as it is now, without locks."""

from uuid import UUID

from worker.db.connection import Connection
from worker.db.errors import translated
from worker.db.order_state import read_order_state, read_registration
from worker.db.reads import seen_command
from worker.db.workflow_store import load_workflow
from worker.domain.decisions import OrderState
from worker.domain.workflow import Workflow


class PostgresCurrentState:
    """The inbox, the orders and the workflow, read on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def workflow(self) -> Workflow:
        with translated():
            return load_workflow(self._conn)

    def processed_fingerprint(self, command_id: UUID) -> str | None:
        with translated():
            seen = seen_command(self._conn, command_id)
        return None if seen is None else seen.fingerprint

    def order_state(self, order_number: str) -> OrderState | None:
        with translated():
            return read_order_state(self._conn, order_number)

    def registration(self, order_number: str) -> str | None:
        with translated():
            return read_registration(self._conn, order_number)
