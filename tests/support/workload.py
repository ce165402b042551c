"""Commands for fault scenarios: orders walked through the workflow, some moves refused."""

import random

from contracts import Command
from tests.support.commands import change_status, create_order, order_number
from tests.support.workflow_spec import CODES


def order_walks(orders: int, changes: int, seed: int, duplicates: float = 0.02) -> list[Command]:
    """Register `orders` orders and send each `changes` status changes, interleaved.

    Targets are drawn from every status, so some moves are refused
    (invalid_transition) or change nothing; a few commands are sent twice, as
    a producer that retries would. Each order's commands keep their order.
    """
    rng = random.Random(seed)
    walks: list[list[Command]] = []
    for _ in range(orders):
        number = order_number("FT")
        walk: list[Command] = [create_order(number)]
        walk += [change_status(number, rng.choice(CODES)) for _ in range(changes)]
        walks.append(walk)
    interleaved: list[Command] = []
    heads = [0] * orders
    live = list(range(orders))
    while live:
        index = rng.choice(live)
        interleaved.append(walks[index][heads[index]])
        heads[index] += 1
        if heads[index] == len(walks[index]):
            live.remove(index)
    repeated: list[Command] = []
    for command in interleaved:
        repeated.append(command)
        if rng.random() < duplicates:
            repeated.append(command)
    return repeated
