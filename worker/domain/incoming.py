"""A command as it arrived: the validated contract plus what its message said."""

from dataclasses import dataclass

from contracts import Command


@dataclass(frozen=True)
class IncomingCommand:
    """A decoded command with what its AMQP message said about it."""

    command: Command
    correlation_id: str | None = None
    message_id: str | None = None

    @property
    def correlation(self) -> str:
        """The correlation id events carry: the sender's, or else this command's id."""
        return self.correlation_id or str(self.command.command_id)
