"""The emulator's HTTP side: request parsing (PHP-style forms, JSON) and the threaded server.

Our client posts forms, the documented format; public Node and Python clients
post JSON objects, which the live service evidently accepts too.  Both are
read here into the same shape (nested dicts of strings), so the API modules
never know which one came in, and any Mobizon client can be tested against
the emulator.
"""

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


def parse_json_body(text: str) -> dict[str, Any]:
    """A JSON object body as a form would have given it: nulls left out, scalars as text.

    ``null`` is how JSON clients say "not given" (``"from": null``); numbers
    and booleans become the strings a form carries (``true`` → ``"1"``).  A
    body that is not a JSON object gives no parameters, so the method answers
    with its usual "missing" errors.
    """
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    return _form_values(document) if isinstance(document, dict) else {}


def _form_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _form_values(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_form_values(v) for v in value if v is not None]
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def request_params(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    """The parameters of one request: its query string, then its body (form or JSON).

    A body is read as JSON when its Content-Type says so, or when it has
    none and starts with ``{``; otherwise as a form.
    """
    text = body.decode("utf-8", "replace")
    query_pairs = parse_qsl(query, keep_blank_values=True)
    kind = content_type.split(";")[0].strip().lower()
    if kind.endswith("json") or (not kind and text.lstrip().startswith("{")):
        params = parse_php_form(query_pairs)
        params.update(parse_json_body(text))
        return params
    return parse_php_form(query_pairs + parse_qsl(text, keep_blank_values=True))


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
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():
            # The body cannot be found: answer like a web server, not with a traceback.
            self.close_connection = True
            self._write(400, b"<html><body><h1>400 Bad Request</h1></body></html>", "text/html")
            return
        length = int(declared)
        self._serve(self.rfile.read(length) if length > 0 else b"")

    def _serve(self, body: bytes) -> None:
        content_type = self.headers.get("Content-Type") or ""
        params = request_params(urlsplit(self.path).query, body, content_type)
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
