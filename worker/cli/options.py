"""Turning option values into contract values, with one-line errors that name the option."""

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import click
from pydantic import ValidationError

from contracts import OrderLine


class DecimalAmount(click.ParamType[Decimal, Any]):
    """A non-negative decimal such as 20000.00, refused in words rather than by a traceback."""

    name = "decimal"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Decimal):
            return value
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a decimal amount (e.g. 20000.00)", param, ctx)
        if not amount.is_finite():
            self.fail(f"{value!r} is not a finite amount", param, ctx)
        if amount < 0:
            self.fail(f"{value!r} is negative; an amount is 0 or more", param, ctx)
        return amount


DECIMAL_AMOUNT = DecimalAmount()


def parse_line(text: str) -> OrderLine:
    """`SKU,QUANTITY,UNIT_PRICE,NAME` (the name may itself contain commas) as an order line."""
    parts = text.split(",", 3)
    if len(parts) != 4:
        raise click.BadParameter(
            f"{text!r}: expected SKU,QUANTITY,UNIT_PRICE,NAME", param_hint="'--line'"
        )
    sku, quantity, unit_price, name = (part.strip() for part in parts)
    if not quantity.isdigit():
        raise click.BadParameter(
            f"{text!r}: quantity {quantity!r} is not a whole number", param_hint="'--line'"
        )
    try:
        price = DECIMAL_AMOUNT.convert(unit_price, None, None)
    except click.BadParameter as error:
        raise click.BadParameter(
            f"{text!r}: unit price {error.message}", param_hint="'--line'"
        ) from error
    try:
        return OrderLine(sku=sku, name=name, quantity=int(quantity), unit_price=price)
    except ValidationError as error:
        raise click.BadParameter(
            f"{text!r}: {first_problem(error)}", param_hint="'--line'"
        ) from error


def first_problem(error: ValidationError) -> str:
    """The first thing pydantic found wrong, in one line: `field: message`."""
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else str(problem["msg"])


def contract_error(error: ValidationError, options: Mapping[str, str]) -> click.BadParameter:
    """A usage error naming the option whose value broke the contract.

    `options` maps the first part of a field's location (`amount`, `customer`)
    or the whole dotted location (`customer.name`) to its option.
    """
    problem = error.errors()[0]
    location = [str(part) for part in problem["loc"]]
    dotted = ".".join(location)
    option = options.get(dotted) or options.get(location[0] if location else "", "")
    message = str(problem["msg"])
    value = problem.get("input")
    if isinstance(value, str | int | Decimal):
        message = f"{str(value)!r}: {message}"
    return click.BadParameter(message, param_hint=f"'{option}'" if option else dotted)
