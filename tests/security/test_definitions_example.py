"""The example definitions in docs/ are what `declare --print-definitions` prints today."""

import json
from pathlib import Path

from worker.messaging.definitions import definitions
from worker.messaging.topology import Topology

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "rabbitmq-definitions.example.json"


def test_the_example_in_the_docs_matches_the_default_namespace() -> None:
    assert json.loads(EXAMPLE.read_text()) == definitions(Topology("orders"), "/")
