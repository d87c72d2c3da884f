"""A bare HTTP server that records raw requests and plays back canned answers.

Why besides the emulator: the client must follow the documented wire format,
not merely what our own emulator happens to accept, and must cope with answers
the emulator never gives (codes as strings, HTML error pages, cut-off bodies).
This server knows nothing of Mobizon: it stores the exact bytes it received
and answers whatever the test queued.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Canned:
    """One answer: an HTTP status and raw body, or ``drop`` to close unanswered."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    drop: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    #: claim more bytes than sent, then close: a cut-off body
    truncate: bool = False


def envelope(code: Any = 0, data: Any = None, message: str = "", status: int = 200) -> Canned:
    body = json.dumps({"code": code, "data": data, "message": message}, ensure_ascii=False)
    return Canned(status=status, body=body.encode())


class ScriptedServer:
    """``tls``: serve https with this context (the handshake happens on accept)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[RawRequest] = []
        self.answers: deque[Canned] = deque()
        self.scheme = "https" if tls else "http"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.scripted = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    def queue(self, *answers: Canned) -> None:
        self.answers.extend(answers)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm and
    # the client's delayed ACK add 40 ms to every answer.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        scripted: ScriptedServer = self.server.scripted  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        scripted.requests.append(RawRequest(self.command, self.path, dict(self.headers), body))
        answer = scripted.answers.popleft() if scripted.answers else envelope(0, None)
        if answer.drop:
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        claimed = len(answer.body) + (100 if answer.truncate else 0)
        self.send_header("Content-Length", str(claimed))
        self.end_headers()
        self.wfile.write(answer.body)
        if answer.truncate:
            self.wfile.flush()
            self.close_connection = True
