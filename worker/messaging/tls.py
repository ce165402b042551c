"""TLS to RabbitMQ: an `amqps://` URL, its certificate checked against a CA and the host name.

The URL carries everything, with the query parameters of RabbitMQ's own URI
specification, as libpq URLs carry `sslrootcert`:

    amqps://user:password@broker.example.com:5671/%2F?cacertfile=/etc/ssl/ca.pem

- `cacertfile`: the CA to trust (default: the system's trusted CAs);
- `certfile`, `keyfile`: a client certificate, for brokers that ask for one;
- `server_name_indication`: the name the certificate must carry, when it is
  not the host of the URL (for example when connecting to an IP address).

The broker's certificate is always verified, host name included: kombu's own
`amqps://` checks the chain but not the name, so both clients get their TLS
settings from here. The parameters are taken off the URL before a client sees it.
"""

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika

from worker.errors import BROKER_SETTING, Misconfigured

TLS_PARAMETERS = ("cacertfile", "certfile", "keyfile", "server_name_indication")


@dataclass(frozen=True)
class BrokerTls:
    """How to check the broker's certificate, and which certificate to show it."""

    server_hostname: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the chain and the host name."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def kombu_options(self) -> dict[str, Any]:
        """The `ssl` argument of a kombu (py-amqp) connection."""
        options: dict[str, Any] = {
            "cert_reqs": ssl.CERT_REQUIRED,
            "server_hostname": self.server_hostname,
        }
        if self.ca_file:
            options["ca_certs"] = self.ca_file
        if self.cert_file:
            options["certfile"] = self.cert_file
            options["keyfile"] = self.key_file
        return options


def split_tls(amqp_url: str) -> tuple[str, BrokerTls | None]:
    """The URL without its TLS parameters, and the TLS to use (None for `amqp://`)."""
    parts = urlsplit(amqp_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {name: value for name, value in query if name in TLS_PARAMETERS}
    rest = urlunsplit(
        parts._replace(query=urlencode([(n, v) for n, v in query if n not in TLS_PARAMETERS]))
    )
    if parts.scheme != "amqps":
        if given:
            raise Misconfigured(BROKER_SETTING, f"{', '.join(sorted(given))} need an amqps:// URL")
        return rest, None
    for name in ("cacertfile", "certfile", "keyfile"):
        if name in given and not Path(given[name]).is_file():
            raise Misconfigured(BROKER_SETTING, f"{name} {given[name]!r} is not a readable file")
    if "keyfile" in given and "certfile" not in given:
        raise Misconfigured(BROKER_SETTING, "keyfile needs a certfile")
    return rest, BrokerTls(
        server_hostname=given.get("server_name_indication") or parts.hostname or "localhost",
        ca_file=given.get("cacertfile"),
        cert_file=given.get("certfile"),
        key_file=given.get("keyfile"),
    )


def pika_parameters(amqp_url: str) -> pika.URLParameters:
    """Connection parameters for pika, with the TLS of `amqp_url` when it is `amqps://`."""
    url, tls = split_tls(amqp_url)
    parameters = pika.URLParameters(url)
    if tls is not None:
        parameters.ssl_options = pika.SSLOptions(tls.context(), tls.server_hostname)
    return parameters
