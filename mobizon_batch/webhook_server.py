"""Serving a WSGI application with waitress, stoppable from a signal or another thread.

Why waitress: pure Python (nothing to compile), threaded (a slow disk sync
holds up one worker, not the listener), maintained, and the same on Linux and
macOS; it buffers each request body before calling the application and
refuses bodies over ``max_request_body_size`` itself, so a huge upload never
reaches the application.  This module is the only one that imports it.

Why not ``waitress.serve``: it stops only on KeyboardInterrupt, in the main
thread.  Here the main loop runs in short polls and checks a stop flag, so
``stop()`` works from a signal handler and from another thread (tests), and a
stop is clean: no new connections are taken, requests in flight are finished
and their answers sent (for up to ``drain`` seconds), then everything closes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import waitress
from waitress import wasyncore

from mobizon_batch.errors import ConfigError

_POLL = 0.2  # seconds between looks at the stop flag


class WsgiServer:
    """A WSGI application listening on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        max_body: int = 64 * 1024,
        drain: float = 5.0,
    ) -> None:
        self._map: dict[Any, Any] = {}
        self._stop = threading.Event()
        self._stopped = threading.Event()
        #: Set when ``serve`` has seen the stop and begins to wind down.
        self.stopping = threading.Event()
        self.drain = drain
        try:
            self._server = waitress.create_server(
                app,
                map=self._map,
                host=host,
                port=port,
                threads=threads,
                max_request_body_size=max_body,
                ident="mobizon-batch",
                channel_timeout=30,
                connection_limit=256,
                asyncore_use_poll=True,
                expose_tracebacks=False,
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve(self) -> None:
        """Serve in the calling thread until ``stop()``; then drain and close."""
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=_POLL, map=self._map, use_poll=True, count=1)
            self.stopping.set()
            self._drain()
        finally:
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=self.drain)
            wasyncore.close_all(self._map)
            self._stopped.set()

    def stop(self) -> None:
        """Ask ``serve`` to finish (safe from a signal handler and any thread)."""
        self._stop.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def _drain(self) -> None:
        """Take no new connections; let requests in flight finish and their answers go out."""
        self._server.accepting = False
        deadline = time.monotonic() + self.drain
        while time.monotonic() < deadline and self._busy():
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)

    def _busy(self) -> bool:
        dispatcher = self._server.task_dispatcher
        if dispatcher.active_count or dispatcher.queue:
            return True
        channels = [c for c in list(self._map.values()) if hasattr(c, "total_outbufs_len")]
        return any(c.total_outbufs_len or c.requests for c in channels)


__all__ = ["WsgiServer"]
