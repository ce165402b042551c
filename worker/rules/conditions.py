"""Conditions in the Common Expression Language (CEL): compiled at load, never `eval`.

CEL is a small, side-effect-free language made for exactly this: it cannot
loop forever, touch files or call Python. The `cel` package (Rust core) parses
and evaluates it; we add no functions of our own.
"""

from dataclasses import dataclass
from typing import Any

import cel

from worker.rules.facts import FACT_NAMES


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


def compile_condition(source: str, sample_facts: dict[str, Any]) -> Condition:
    """Compile `source`, then try it once on `sample_facts` to catch what parsing cannot.

    The trial run finds unknown names and functions, type mismatches such as
    comparing a string with a number, and results that are not true or false.
    Errors that depend on the data (division by zero) are left for run time.
    """
    try:
        program = cel.compile(source)
    except ValueError as error:
        raise ConditionInvalid(str(error)) from error
    unknown = sorted(set(program.variables()) - set(FACT_NAMES))
    try:
        result = program.execute(sample_facts)
    except (RuntimeError, TypeError) as error:
        if unknown:
            raise ConditionInvalid(
                f"unknown name {', '.join(unknown)}; known: {', '.join(FACT_NAMES)}"
            ) from error
        raise ConditionInvalid(_first_line(error)) from error
    except Exception:  # noqa: S110 - data-dependent failures are reported when they happen
        pass
    else:
        if not isinstance(result, bool):
            raise ConditionInvalid(f"the condition must give true or false, not {result!r}")
    return Condition(source, program)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
