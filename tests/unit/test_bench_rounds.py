"""Rounds of alternated runs: medians of every figure, ratios from the reported medians."""

from worker.bench.observer import Observed
from worker.bench.processes import WorkerUsage
from worker.bench.reference_run import ReferenceResult
from worker.bench.rounds import Round, Rounds, RoundsOptions
from worker.bench.run import BenchOptions, BenchResult
from worker.bench.verify import Verdict

OPTIONS = BenchOptions(orders=10, commands=1000, ceiling=False)


def _ours(seconds: float, cpu: float, problems: list[str] | None = None) -> BenchResult:
    return BenchResult(
        options=OPTIONS,
        messages=1000,
        distinct_commands=1000,
        seconds=seconds,
        latencies_ms=[10.0 * seconds] * 10,
        workers={"status-worker": WorkerUsage(cpu_seconds=cpu, peak_rss_mb=70.0)},
        observed=Observed(),
        verdict=Verdict(problems or []),
        nacked=0,
        namespace="bench-x",
        database="orders_bench_x",
        servers={"rabbitmq": cpu / 2},
    )


def _reference(seconds: float, with_database: bool) -> ReferenceResult:
    return ReferenceResult(
        with_database=with_database,
        batch_size=500,
        messages=1000,
        distinct_commands=1000,
        seconds=seconds,
        latencies_ms=[1.0],
        processes={"reference-commands": WorkerUsage(cpu_seconds=0.1, peak_rss_mb=40.0)},
        servers={"rabbitmq": 0.1},
        event_repeats=0,
        nacked=0,
    )


def _rounds(*rounds: Round) -> Rounds:
    return Rounds(OPTIONS, RoundsOptions(repeat=len(rounds)), list(rounds))


def test_the_summary_is_the_median_of_each_figure_and_the_ratios_come_from_the_medians() -> None:
    rounds = _rounds(
        Round(_ours(1.0, 0.3), _reference(0.25, False), _reference(0.5, True)),
        Round(_ours(0.5, 0.2), _reference(0.2, False), _reference(0.4, True)),
        Round(_ours(2.0, 0.4), _reference(0.4, False), _reference(1.0, True)),
    )

    figures = rounds.as_json()

    assert [run["ours"]["commands_per_second"] for run in figures["runs"]] == [1000, 2000, 500]
    assert figures["commands_per_second"] == 1000
    assert figures["reference"]["without_database"]["commands_per_second"] == 4000
    assert figures["reference"]["with_database"]["commands_per_second"] == 2000
    assert figures["ratio_to_broker_limit"] == 0.25
    assert figures["ratio_to_reference_with_db"] == 0.5
    assert [run["ratio_to_broker_limit"] for run in figures["runs"]] == [0.25, 0.4, 0.2]
    assert figures["cpu_us_per_command"] == {"status-worker": 300, "rabbitmq": 150, "total": 450}
    assert figures["latency_ms"]["p50"] == 10.0
    assert figures["check"] == {"passed": True, "problems": []}


def test_a_failed_check_in_any_run_fails_the_whole_and_names_the_round() -> None:
    rounds = _rounds(
        Round(_ours(1.0, 0.3), _reference(0.25, False), _reference(0.5, True)),
        Round(_ours(1.0, 0.3, ["orders not at the planned status and version: 1 (e.g. B-1)"])),
    )

    assert not rounds.passed
    assert rounds.problems() == [
        "round 2, ours: orders not at the planned status and version: 1 (e.g. B-1)"
    ]


def test_without_the_reference_there_are_no_ratios_to_it() -> None:
    rounds = Rounds(OPTIONS, RoundsOptions(reference=False), [Round(_ours(1.0, 0.3))])

    figures = rounds.as_json()

    assert figures["reference"] is None
    assert figures["ratio_to_broker_limit"] is None
    assert figures["ratio_to_reference_with_db"] is None
    assert figures["commands_per_second"] == 1000


def test_at_an_offered_rate_there_are_no_throughput_ratios() -> None:
    paced = BenchOptions(orders=10, commands=1000, rate=1000.0, ceiling=False)
    rounds = Rounds(
        paced,
        RoundsOptions(),
        [Round(_ours(1.0, 0.3), _reference(1.0, False), _reference(1.0, True))],
    )

    figures = rounds.as_json()

    assert figures["reference"]["with_database"]["commands_per_second"] == 1000
    assert figures["ratio_to_broker_limit"] is None
    assert "ratio_to_broker_limit" not in figures["runs"][0]
