"""The emulator's HTTP side: PHP-style form parsing and the threaded server."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from mobizon_batch.emulator.core import MobizonEmulator


def parse_php_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest ``a[b][c]=v`` pairs into dicts; ``a[]=v`` appends to a list."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        target: Any = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "" and isinstance(target, list):
                if last:
                    target.append(value)
                else:
                    target.append({})
                    target = target[-1]
                continue
            if not isinstance(target, dict):
                break
            if last:
                target[part] = value
            else:
                following = parts[index + 1]
                default: Any = [] if following == "" else {}
                if not isinstance(target.get(part), dict | list):
                    target[part] = default
                target = target[part]
    return result


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections sit idle in their threads; never wait for them on stop.
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256
    emulator: MobizonEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that went away (killed senders, timeouts); loud otherwise."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm and
    # the client's delayed ACK add 40 ms to every answer.
    disable_nagle_algorithm = True
    server: EmulatorServer
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the query string carries the key."""

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length) if length > 0 else b"")

    def _serve(self, body: bytes) -> None:
        query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        params = parse_php_form(query + form)
        fault, answer = self.server.emulator.handle(self.path, params)
        if fault == "503":
            self._write(
                503, b"<html><body><h1>503 Service Unavailable</h1></body></html>", "text/html"
            )
        elif fault in ("drop_before", "drop_after") or answer is None:
            self._drop()
        else:
            envelope = {"code": answer.code, "data": answer.data, "message": answer.message}
            self._write(200, json.dumps(envelope, ensure_ascii=False).encode(), "application/json")

    def _write(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without a byte of answer (a reset, not a clean close)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
