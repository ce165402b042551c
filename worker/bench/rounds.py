"""Rounds of alternated runs (ours, the reference, the reference with database), and medians.

The machine's speed drifts (other work, caches, the broker's own state), so our
pipeline is only ever compared with a reference measured next to it: each round
runs ours, then the reference without a database, then with one, and the summary
gives the median of each figure over the rounds with every run's own figures
beside it. The ratios are computed from the reported (rounded) medians, and each
round also carries its own. At an offered `--rate` every pipeline that keeps up
runs at that rate, so there are no ratios: latency and CPU per command compare.
"""

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from worker.bench.reference_run import ReferenceResult, run_reference
from worker.bench.run import BenchOptions, BenchResult, run_bench
from worker.config import Settings

DEFAULT_REFERENCE_BATCH = 500


@dataclass(frozen=True)
class RoundsOptions:
    repeat: int = 1
    reference: bool = True
    reference_batch: int = DEFAULT_REFERENCE_BATCH


@dataclass
class Round:
    ours: BenchResult
    reference: ReferenceResult | None = None
    reference_with_db: ReferenceResult | None = None


@dataclass
class Rounds:
    options: BenchOptions
    rounds_options: RoundsOptions
    rounds: list[Round] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        found = []
        for number, done in enumerate(self.rounds, start=1):
            runs = {"ours": done.ours.as_json(), **_references(done)}
            for name, figures in runs.items():
                found += [f"round {number}, {name}: {p}" for p in figures["check"]["problems"]]
                if figures["broker_nacks"]:
                    found.append(
                        f"round {number}, {name}: the broker refused {figures['broker_nacks']} "
                        "commands"
                    )
        return found

    def as_json(self) -> dict[str, Any]:
        runs = [
            {"ours": done.ours.as_json(), **_references(done)} for done in self.rounds
        ]  # fmt: skip
        ours = [run["ours"] for run in runs]
        summary: dict[str, Any] = {
            key: ours[0][key]
            for key in ("orders", "commands", "messages", "duplicates", "invalid", "offered_rate")
        }
        summary["repeat"] = len(runs)
        summary["commands_per_second"] = _median(r["commands_per_second"] for r in ours)
        summary["latency_ms"] = _medians([r["latency_ms"] for r in ours])
        summary["peak_rss_mb"] = _medians([r["peak_rss_mb"] for r in ours])
        summary["cpu_seconds_per_1000_commands"] = _median(
            r["cpu_seconds_per_1000_commands"] for r in ours
        )
        summary["cpu_us_per_command"] = _medians([r["cpu_us_per_command"] for r in ours])
        summary["reference"] = None
        summary["ratio_to_broker_limit"] = None
        summary["ratio_to_reference_with_db"] = None
        if self.rounds_options.reference:
            reference = {
                name: {
                    "commands_per_second": _median(
                        run[name]["commands_per_second"] for run in runs
                    ),
                    "latency_ms": _medians([run[name]["latency_ms"] for run in runs]),
                    "cpu_us_per_command": _medians(
                        [run[name]["cpu_us_per_command"] for run in runs]
                    ),
                    "peak_rss_mb": _medians([run[name]["peak_rss_mb"] for run in runs]),
                }
                for name in ("without_database", "with_database")
            }
            summary["reference"] = {"batch_size": self.rounds_options.reference_batch, **reference}
            if self.options.rate is None:  # at an offered rate every pipeline runs at that rate
                summary.update(_ratios(summary["commands_per_second"], reference))
                for run in runs:
                    run.update(_ratios(run["ours"]["commands_per_second"], run))
        ceilings = [r["ceiling"] for r in ours if r["ceiling"]]
        summary["ceiling"] = _medians(ceilings) if ceilings else None
        summary["ratio_to_ceiling"] = (
            round(summary["commands_per_second"] / summary["ceiling"]["binding"], 3)
            if ceilings
            else None
        )
        summary["event_repeats"] = sum(r["event_repeats"] for r in ours)
        summary["broker_nacks"] = sum(r["broker_nacks"] for r in ours)
        summary["settings"] = ours[0]["settings"]
        summary["runs"] = runs
        summary["check"] = {"passed": self.passed, "problems": self.problems()}
        return summary


def run_rounds(
    settings: Settings,
    options: BenchOptions,
    rounds_options: RoundsOptions,
    progress: Callable[[str], None],
) -> Rounds:
    done = Rounds(options, rounds_options)
    for number in range(1, rounds_options.repeat + 1):
        if rounds_options.repeat > 1:
            progress(f"round {number} of {rounds_options.repeat}")
        this = Round(run_bench(settings, options, progress))
        if rounds_options.reference:
            batch = rounds_options.reference_batch
            this.reference = run_reference(
                settings, options, with_database=False, batch_size=batch, progress=progress
            )
            this.reference_with_db = run_reference(
                settings, options, with_database=True, batch_size=batch, progress=progress
            )
        done.rounds.append(this)
    return done


def _references(done: Round) -> dict[str, Any]:
    found = {}
    if done.reference is not None:
        found["without_database"] = done.reference.as_json()
    if done.reference_with_db is not None:
        found["with_database"] = done.reference_with_db.as_json()
    return found


def _ratios(ours: float, reference: dict[str, Any]) -> dict[str, float]:
    """Our rate over the reference's without and with database, from the reported figures."""
    return {
        "ratio_to_broker_limit": round(
            ours / reference["without_database"]["commands_per_second"], 3
        ),
        "ratio_to_reference_with_db": round(
            ours / reference["with_database"]["commands_per_second"], 3
        ),
    }


def _median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 3)


def _medians(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each numeric figure of the same shape, key by key (nested dicts too)."""
    merged: dict[str, Any] = {}
    for key in figures[0]:
        values = [figure[key] for figure in figures if key in figure]
        if isinstance(values[0], dict):
            merged[key] = _medians(values)
        else:
            merged[key] = _median(values)
    return merged
