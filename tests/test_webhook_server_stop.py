"""The WSGI server stops cleanly: requests in flight are finished and answered first."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from mobizon_batch.webhook_server import WsgiServer
from tests.helpers import BackgroundServer, post
from tests.helpers import wait_for as wait_until


def test_requests_in_flight_and_queued_are_answered_before_the_server_stops() -> None:
    entered, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        entered.set()
        release.wait(10)
        finished.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Length", "4")])
        return [b"done"]

    # One worker: the second request waits in the queue while the first is in the app.
    server = WsgiServer(slow_app, threads=1)
    answers: list[tuple[int, bytes]] = []
    with BackgroundServer(server):
        clients = [
            threading.Thread(target=lambda p=p: answers.append(post(server.url + p, b"{}")))
            for p in ("/first", "/second")
        ]
        clients[0].start()
        assert entered.wait(10)
        clients[1].start()
        wait_until(lambda: server._server.task_dispatcher.queue, "the second request queued")
        server.stop()
        assert server.stopping.wait(10)  # the stop is under way before the app finishes
        release.set()
        for client in clients:
            client.join(10)
        assert server.wait_stopped(10)

    assert answers == [(200, b"done"), (200, b"done")]
    assert finished == ["/first", "/second"]


def test_a_stopped_server_takes_no_new_connections() -> None:
    server = WsgiServer(lambda environ, start_response: [])
    url = server.url
    with BackgroundServer(server):
        pass

    assert server.wait_stopped(0)
    try:
        status = post(url + "/", b"{}")[0]
    except OSError:
        status = 0
    assert status == 0
