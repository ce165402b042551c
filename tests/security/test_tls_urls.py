"""Reading the TLS parameters of an AMQP URL, without a server."""

from pathlib import Path

import pytest

from worker.errors import Misconfigured
from worker.messaging.tls import BrokerTls, pika_parameters, split_tls


def test_a_plain_url_needs_no_tls() -> None:
    assert split_tls("amqp://guest:guest@127.0.0.1:5672/%2F") == (
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        None,
    )


def test_the_tls_parameters_are_taken_off_an_amqps_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    url, tls = split_tls(f"amqps://u:p@broker:5671/%2F?heartbeat=10&cacertfile={ca}")
    assert url == "amqps://u:p@broker:5671/%2F?heartbeat=10"
    assert tls == BrokerTls(server_hostname="broker", ca_file=str(ca))
    assert tls.kombu_options()["server_hostname"] == "broker"


def test_the_name_to_check_may_differ_from_the_host() -> None:
    _, tls = split_tls("amqps://u:p@10.0.0.5/%2F?server_name_indication=broker.example.com")
    assert tls is not None
    assert tls.server_hostname == "broker.example.com"
    assert pika_parameters("amqps://u:p@10.0.0.5/%2F").ssl_options is not None


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("amqp://u:p@broker/%2F?cacertfile=/etc/ca.pem", "need an amqps:// URL"),
        ("amqps://u:p@broker/%2F?cacertfile=/no/such/ca.pem", "not a readable file"),
        ("amqps://u:p@broker/%2F?keyfile=/no/such/key.pem", "not a readable file"),
    ],
)
def test_unusable_tls_parameters_are_a_setup_fault(url: str, complaint: str) -> None:
    with pytest.raises(Misconfigured, match=complaint) as refused:
        split_tls(url)
    assert refused.value.setting == "ORDERS_AMQP_URL"
