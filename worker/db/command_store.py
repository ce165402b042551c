"""PostgreSQL behind the publish use case (`worker.services.commands.CommandInbox`).

It reads through a `Database`, which connects on first use: a caller that
publishes a fresh command without waiting never needs the database at all.
"""

from uuid import UUID

from worker.db.connection import Database
from worker.db.errors import translated
from worker.db.reads import SeenCommand, get_command, seen_command
from worker.services.commands import CommandEffects
from worker.views import CommandRecord

# The event of a command is the one it wrote to the events exchange (exchange
# NULL); a rule's commands and notifications go to other exchanges.
COMMAND_EFFECTS = """
SELECT
    (SELECT max(version) FROM order_status_history WHERE command_id = %(command_id)s),
    (SELECT event_id FROM outbox
     WHERE command_id = %(command_id)s AND exchange IS NULL
     ORDER BY id LIMIT 1)
"""


class PostgresCommandInbox:
    """The inbox (`processed_commands`) with the history and outbox rows a command wrote."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def seen(self, command_id: UUID) -> SeenCommand | None:
        with translated():
            return seen_command(self._database.connection(), command_id)

    def outcome(self, command_id: UUID) -> CommandRecord | None:
        with translated():
            return get_command(self._database.connection(), command_id)

    def effects(self, command_id: UUID) -> CommandEffects:
        with translated():
            conn = self._database.connection()
            row = conn.execute(COMMAND_EFFECTS, {"command_id": command_id}).fetchone()
            if row is None:
                return CommandEffects()
            return CommandEffects(version=row[0], event_id=row[1])
