"""What a use case refuses, as types a caller maps to its own answer (exit code, HTTP status)."""

from worker.errors import OrderStatusError


class NotFound(OrderStatusError):
    """No such order, command or task."""


class InvalidRequest(OrderStatusError):
    """A request that cannot be served as asked; `field` names the input at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class CommandIdReused(OrderStatusError):
    """The command id was already used for a command with other content; nothing was sent."""
