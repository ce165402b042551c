"""Conditions in the Common Expression Language (CEL): compiled at load, never `eval`.

CEL is a small, side-effect-free language made for exactly this: it cannot
loop forever, touch files or call Python. The `cel` package (Rust core) parses
and evaluates it; we add no functions of our own.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cel

from worker.rules.facts import FACT_NAMES, NULLABLE_FACTS

BOUND_NAME = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
"""The variable a comprehension macro binds (`x` in `[1, 2].exists(x, x > 1)`): not a fact."""


class ConditionInvalid(Exception):
    """The condition does not compile, or uses names or types it cannot."""


class ConditionFailed(Exception):
    """Evaluating the condition on these facts raised an error (e.g. division by zero)."""


@dataclass(frozen=True)
class Condition:
    """A compiled condition; `evaluate` says whether it holds for the given facts."""

    source: str
    program: cel.Program

    def evaluate(self, facts: dict[str, Any]) -> bool:
        try:
            result = self.program.execute(facts)
        except Exception as error:
            raise ConditionFailed(f"{type(error).__name__}: {_first_line(error)}") from error
        if not isinstance(result, bool):
            raise ConditionFailed(f"the condition gave {result!r}, not true or false")
        return result


def compile_condition(source: str, sample_facts: Sequence[dict[str, Any]]) -> Condition:
    """Compile `source`, refuse unknown names, then try it on every set of `sample_facts`.

    CEL (this library) has no declared variable types, so type mismatches such
    as comparing a string with a number, a method called on a value that may be
    null, and results that are not true or false are found by running the
    condition: on small and large amounts, and with each nullable fact null and
    set. A mistake in a branch that none of those reach (after
    `customer_type == "vip" &&`, say) shows at run time, as a failed firing.
    Errors that depend on the data (division by zero) are left for run time.
    """
    try:
        program = cel.compile(source)
    except ValueError as error:
        raise ConditionInvalid(str(error)) from error
    bound = set(BOUND_NAME.findall(source))
    unknown = sorted(set(program.variables()) - set(FACT_NAMES) - bound)
    if unknown:
        raise ConditionInvalid(f"unknown name {', '.join(unknown)}; known: {', '.join(FACT_NAMES)}")
    for facts in sample_facts:
        try:
            result = program.execute(facts)
        except (RuntimeError, TypeError) as error:
            raise ConditionInvalid(f"{_first_line(error)} ({_describe(facts)})") from error
        except Exception:  # noqa: S112 - data-dependent failures are reported when they happen
            continue
        if not isinstance(result, bool):
            raise ConditionInvalid(f"the condition must give true or false, not {result!r}")
    return Condition(source, program)


def _describe(facts: dict[str, Any]) -> str:
    nulls = [name for name in NULLABLE_FACTS if name in facts and facts[name] is None]
    said = f"tried with amount {facts.get('amount')!r}, depth {facts.get('depth')!r}"
    if nulls:
        said += f", {', '.join(nulls)} null"
    return said


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
