"""A TCP proxy on loopback whose connections a test can cut, as a network failure would."""

import selectors
import socket
import threading
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from worker.config import Settings


class CuttableProxy:
    """Forward 127.0.0.1:<port> to a server; `cut()` drops every open connection.

    `refuse()` also drops every connection and closes each new one at once,
    until `accept_again()`; `stall()` stops forwarding anything, keeping every
    socket open (no FIN, no data, as a dead peer or a partition looks), until
    `resume()`.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._cut_requested = threading.Event()
        self._closed = threading.Event()
        self.connections_accepted = 0
        self._refusing = threading.Event()
        self._stalled = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="cuttable-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Close every connection now open through the proxy; new ones are still accepted."""
        self._cut_requested.set()
        while self._cut_requested.is_set() and not self._closed.is_set():
            self._closed.wait(0.01)

    def refuse(self) -> None:
        """Drop every connection, and every new one as soon as it comes."""
        self._refusing.set()
        self.cut()

    def accept_again(self) -> None:
        self._refusing.clear()

    def stall(self) -> None:
        """Forward nothing more and accept nothing more; close nothing."""
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            while not self._closed.is_set():
                if self._stalled.is_set():
                    self._closed.wait(0.05)
                    continue
                for key, _ in self._selector.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept()
                    else:
                        self._forward(sock)
                if self._cut_requested.is_set():
                    self._drop_all()
                    self._cut_requested.clear()
        finally:
            self._drop_all()
            self._selector.close()
            self._listener.close()

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self._refusing.is_set():
            client.close()
            return
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        self._pairs[client] = upstream
        self._pairs[upstream] = client
        self.connections_accepted += 1

    def _forward(self, sock: socket.socket) -> None:
        peer = self._pairs.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._pairs.pop(sock, None)
        for each in (sock, peer):
            if each is None:
                continue
            self._pairs.pop(each, None)
            with suppress(KeyError, ValueError):
                self._selector.unregister(each)
            with suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def _drop_all(self) -> None:
        for sock in list(self._pairs):
            self._drop(sock)


def through(proxy: CuttableProxy, settings: Settings, **changes: Any) -> Settings:
    """The same settings, but reaching RabbitMQ through `proxy`."""
    url = urlsplit(settings.amqp_url)
    netloc = f"{url.username}:{url.password}@127.0.0.1:{proxy.port}"
    return settings.model_copy(update={"amqp_url": url._replace(netloc=netloc).geturl(), **changes})
