"""The sample events the README tries the example rules on (`rules/events/`) stay valid."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_RULES = ROOT / "rules" / "example.yaml"
SAMPLES = ROOT / "rules" / "events"


@pytest.mark.parametrize(
    ("sample", "fires"),
    [
        ("order-created.json", ["large-order-review"]),
        ("order-reopened.json", ["vip-reopened"]),
    ],
)
def test_each_sample_event_fires_the_example_rule_it_shows(sample: str, fires: list[str]) -> None:
    result = CliRunner().invoke(
        main, ["rules", "test", str(EXAMPLE_RULES), "--event", str(SAMPLES / sample), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [rule["rule"] for rule in report["rules"] if rule["outcome"] == "fired"] == fires


def test_every_sample_is_covered() -> None:
    assert sorted(path.name for path in SAMPLES.glob("*.json")) == [
        "order-created.json",
        "order-reopened.json",
    ]
