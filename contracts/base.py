"""The base every wire model shares: frozen, strict about unknown fields, versioned."""

from decimal import Decimal
from typing import Annotated, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

SCHEMA_VERSION: Final = 1


class ContractModel(BaseModel):
    """A message or a part of one, as it travels between services."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


def _decimal_as_string(value: Decimal) -> str:
    return format(value, "f")


Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=4, allow_inf_nan=False),
    PlainSerializer(_decimal_as_string, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d{1,14}(\.\d{1,4})?$"},
                {"type": "number", "minimum": 0},
            ],
            "description": 'A decimal amount, best sent as a string such as "20000.00".',
        },
        mode="validation",
    ),
]
"""A non-negative amount; sent as a decimal string so no float ever rounds it."""

NO_NUL = r"^[^\x00]*$"
"""PostgreSQL cannot store a NUL character in text, so no contract field may hold one."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
"""A short, non-empty piece of text such as a name."""

LongText = Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)]
"""Free text such as the reason for a change."""

OrderNumber = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=64, pattern=r"^[^\s\x00](?:[^\x00]{0,62}[^\s\x00])?$"
    ),
]
"""The order's business key: 1 to 64 characters, no surrounding white space."""

StatusCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
"""A workflow status code such as `in_progress`; the workflow decides which exist."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 currency code in capitals, such as `CNY`."""
