"""The HTTP under MobizonClient, over real loopback sockets: what a wrong transport breaks.

Proxies from the environment (and ``NO_PROXY``), certificate checks, no
retry and no redirect ever, the headers every call carries.  The proxy is a
scripted HTTP server that records the request line it is given: a request
meant for a proxy names the absolute URL, one meant for the server only the
path.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mobizon_batch import __version__, errors
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from tests.helpers import TEST_KEY, free_port
from tests.scripted_server import Canned, ScriptedServer, envelope

TLS = Path(__file__).resolve().parent / "fixtures" / "tls"
BALANCE = envelope(0, {"balance": "12.5000", "currency": "KZT"})
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or certificate bundle from the machine running the tests."""
    for name in PROXY_VARIABLES + BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def proxy() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


def client_for(url: str, **kwargs: object) -> MobizonClient:
    return MobizonClient(TEST_KEY, url, timeout=(1.0, 2.0), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- proxies


def test_the_environments_http_proxy_carries_the_call(
    clean_env: pytest.MonkeyPatch, proxy: ScriptedServer
) -> None:
    api_port = free_port()  # nobody listens there: only the proxy can answer
    clean_env.setenv("HTTP_PROXY", proxy.url)
    proxy.queue(BALANCE)
    with client_for(f"http://127.0.0.1:{api_port}") as api:
        assert api.get_balance()[1] == "KZT"
    (request,) = proxy.requests
    assert request.method == "POST"
    assert request.path == (
        f"http://127.0.0.1:{api_port}/service/user/getownbalance"
        f"?output=json&api=v1&apiKey={TEST_KEY}"
    )
    assert request.headers["Host"] == f"127.0.0.1:{api_port}"
    assert "Proxy-Authorization" not in request.headers


def test_the_proxys_credentials_go_to_the_proxy(
    clean_env: pytest.MonkeyPatch, proxy: ScriptedServer
) -> None:
    clean_env.setenv("http_proxy", proxy.url.replace("http://", "http://me:p%40ss@"))
    proxy.queue(BALANCE)
    with client_for(f"http://127.0.0.1:{free_port()}") as api:
        api.get_balance()
    (request,) = proxy.requests
    expected = base64.b64encode(b"me:p@ss").decode("ascii")
    assert request.headers["Proxy-Authorization"] == f"Basic {expected}"


def test_no_proxy_sends_straight_to_the_server(
    clean_env: pytest.MonkeyPatch, proxy: ScriptedServer, scripted: ScriptedServer
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    scripted.queue(BALANCE)
    with client_for(scripted.url) as api:
        api.get_balance()
    assert proxy.requests == []
    (request,) = scripted.requests
    assert request.path.startswith("/service/user/getownbalance?")


def test_an_https_proxy_variable_leaves_http_calls_alone(
    clean_env: pytest.MonkeyPatch, proxy: ScriptedServer, scripted: ScriptedServer
) -> None:
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    scripted.queue(BALANCE)
    with client_for(scripted.url) as api:
        api.get_balance()
    assert proxy.requests == []
    assert len(scripted.requests) == 1


def test_a_proxy_nobody_answers_is_not_sent(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    with client_for(f"http://127.0.0.1:{free_port()}") as api:
        with pytest.raises(errors.NotSent, match="could not connect"):
            api.send_sms("77012345678", "x")


def test_a_proxy_without_a_host_is_not_usable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP_PROXY", "http://:3128")
    with client_for(f"http://127.0.0.1:{free_port()}") as api:
        with pytest.raises(errors.NotSent, match="is not usable"):
            api.send_sms("77012345678", "x")


def test_a_socks_proxy_is_never_bypassed(
    clean_env: pytest.MonkeyPatch, scripted: ScriptedServer
) -> None:
    """Through the SOCKS proxy (nobody listens) with PySocks, a sentence without it."""
    clean_env.setenv("ALL_PROXY", f"socks5://127.0.0.1:{free_port()}")
    with client_for(scripted.url) as api, pytest.raises(errors.NotSent):
        api.get_balance()
    assert scripted.requests == []


# ---------------------------------------------------- no redirect, no retry


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(scripted: ScriptedServer, status: int) -> None:
    # The target would answer: following it would send the message.
    target = f"{scripted.url}/service/message/sendsmsmessage?output=json&api=v1"
    scripted.queue(
        Canned(status=status, headers={"Location": target}),
        envelope(0, {"campaignId": 1, "messageId": 2, "status": 2}),
    )
    with client_for(scripted.url) as api, pytest.raises(errors.ConfigError) as caught:
        api.send_sms("77012345678", "x")
    here = urlsplit(scripted.url).netloc
    assert str(caught.value) == (
        f"{here} redirects API calls to {here}: set MOBIZON_API_URL to the "
        f"address it names (a redirected POST is never followed)"
    )
    assert len(scripted.requests) == 1


def test_a_connection_reset_after_the_request_is_not_retried(scripted: ScriptedServer) -> None:
    scripted.queue(Canned(drop=True), envelope(0, {"campaignId": 1, "messageId": 2, "status": 2}))
    with client_for(scripted.url) as api, pytest.raises(errors.AnswerLost, match="broke"):
        api.send_sms("77012345678", "x")
    assert len(scripted.requests) == 1


class ClosingServer:
    """Reads each request in full, counts it, and closes the connection without a word."""

    def __init__(self) -> None:
        self.seen = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += connection.recv(65536)
                self.seen += 1

    def __enter__(self) -> ClosingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()


def test_a_connection_closed_after_the_request_is_not_retried() -> None:
    with ClosingServer() as server, client_for(server.url) as api:
        with pytest.raises(errors.AnswerLost, match="may or may not have been processed"):
            api.send_sms("77012345678", "x")
        assert server.seen == 1


class AnswersOnceServer(ClosingServer):
    """Answers a connection's first request and keeps it open; reads the next one and
    closes without a word (a kept-alive connection the server drops while it works)."""

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                if not self._read(connection):
                    continue
                body = BALANCE.body
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                self._read(connection)

    def _read(self, connection: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += connection.recv(65536)
        self.seen += 1
        return True


def test_a_reused_connection_dropped_after_the_request_is_not_sent_again() -> None:
    """urllib3 must not repeat the POST on a new connection when a pooled one dies."""
    with AnswersOnceServer() as server, client_for(server.url) as api:
        assert api.get_balance()[1] == "KZT"
        with pytest.raises(errors.AnswerLost, match="may or may not have been processed"):
            api.send_sms("77012345678", "x")
        assert server.seen == 2


def test_a_refused_connection_is_not_sent_and_tried_once() -> None:
    port = free_port()
    with client_for(f"http://127.0.0.1:{port}") as api:
        with pytest.raises(errors.NotSent, match=f"could not connect to 127.0.0.1:{port}"):
            api.get_balance()


def test_a_closed_client_opens_new_connections(scripted: ScriptedServer) -> None:
    scripted.queue(BALANCE, BALANCE)
    api = client_for(scripted.url)
    api.get_balance()
    api.close()
    assert api.get_balance()[1] == "KZT"
    api.close()
    assert len(scripted.requests) == 2


# ------------------------------------------------------------------ headers


def test_every_call_carries_our_headers(scripted: ScriptedServer) -> None:
    scripted.queue(BALANCE, envelope(0, {"campaignId": 1, "messageId": 2, "status": 2}))
    with client_for(scripted.url) as api:
        api.get_balance()
        api.send_sms("77012345678", "x")
    assert len(scripted.requests) == 2
    for request in scripted.requests:
        assert request.headers["User-Agent"] == f"mobizon-batch/{__version__}"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.headers["Accept"] == "application/json"
        assert int(request.headers["Content-Length"]) == len(request.body)
        assert "Authorization" not in request.headers


def test_credentials_in_the_address_go_as_basic_auth(scripted: ScriptedServer) -> None:
    netloc = urlsplit(scripted.url).netloc
    scripted.queue(BALANCE)
    with client_for(f"http://user:s%3Acret@{netloc}") as api:
        api.get_balance()
        assert api.host == netloc
    (request,) = scripted.requests
    expected = base64.b64encode(b"user:s:cret").decode("ascii")
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["Host"] == netloc


# -------------------------------------------------------------------- TLS


@pytest.fixture
def https_server() -> Iterator[ScriptedServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem")
    with ScriptedServer(tls=context) as server:
        yield server


def test_an_unknown_certificate_is_refused_before_anything_is_sent(
    clean_env: pytest.MonkeyPatch, https_server: ScriptedServer
) -> None:
    with client_for(https_server.url) as api:
        with pytest.raises(errors.NotSent, match="could not be verified"):
            api.send_sms("77012345678", "x")
    assert https_server.requests == []


@pytest.mark.parametrize("variable", BUNDLE_VARIABLES)
def test_the_environments_certificate_bundle_is_trusted(
    clean_env: pytest.MonkeyPatch, https_server: ScriptedServer, variable: str
) -> None:
    clean_env.setenv(variable, str(TLS / "ca.pem"))
    https_server.queue(BALANCE)
    with client_for(https_server.url) as api:
        assert api.get_balance()[1] == "KZT"
    assert len(https_server.requests) == 1


def test_a_certificate_for_another_name_is_refused(
    clean_env: pytest.MonkeyPatch, https_server: ScriptedServer
) -> None:
    """The bundle vouches for 127.0.0.1's certificate; asked as localhost, it must not pass."""
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(TLS / "ca.pem"))
    port = urlsplit(https_server.url).port
    with client_for(f"https://localhost:{port}") as api:
        with pytest.raises(errors.NotSent, match="Hostname mismatch"):
            api.send_sms("77012345678", "x")
    assert https_server.requests == []


def test_a_certificate_bundle_that_cannot_be_read_is_a_configuration_error(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(errors.ConfigError, match=r"missing\.pem cannot be used"):
        client_for("https://127.0.0.1:9")


def test_https_to_a_plain_http_server_is_not_sent(scripted: ScriptedServer) -> None:
    netloc = urlsplit(scripted.url).netloc
    with client_for(f"https://{netloc}") as api:
        with pytest.raises(errors.NotSent, match="does not speak https"):
            api.get_balance()
    assert scripted.requests == []


class TunnelProxy:
    """An https proxy: answers CONNECT over TLS and relays bytes, noting each target asked."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.targets: list[str] = []
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(raw,), daemon=True).start()

    def _tunnel(self, raw: socket.socket) -> None:
        try:
            client = self._tls.wrap_socket(raw, server_side=True)
        except OSError:  # the caller refused our certificate
            raw.close()
            return
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            target = head.split(b" ")[1].decode("ascii")
            self.targets.append(target)
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
                back.start()
                _pump(client, upstream)
                back.join(10)

    def __enter__(self) -> TunnelProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture
def tls_proxy() -> Iterator[TunnelProxy]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem")
    with TunnelProxy(context) as proxy:
        yield proxy


def test_an_https_proxy_is_checked_against_the_environments_bundle(
    clean_env: pytest.MonkeyPatch, https_server: ScriptedServer, tls_proxy: TunnelProxy
) -> None:
    """As requests does: the bundle that vouches for the API vouches for the proxy."""
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(TLS / "ca.pem"))
    clean_env.setenv("HTTPS_PROXY", tls_proxy.url)
    https_server.queue(BALANCE)
    with client_for(https_server.url) as api:
        assert api.get_balance()[1] == "KZT"
    assert tls_proxy.targets == [urlsplit(https_server.url).netloc]
    assert len(https_server.requests) == 1


def test_an_https_proxy_with_an_unknown_certificate_is_not_sent(
    clean_env: pytest.MonkeyPatch, https_server: ScriptedServer, tls_proxy: TunnelProxy
) -> None:
    clean_env.setenv("HTTPS_PROXY", tls_proxy.url)
    with client_for(https_server.url) as api:
        with pytest.raises(errors.NotSent, match="could not be verified"):
            api.send_sms("77012345678", "x")
    assert tls_proxy.targets == [] and https_server.requests == []


# ----------------------------------------------------------- domain switch


def test_a_move_to_another_domain_reads_its_proxy_settings(
    clean_env: pytest.MonkeyPatch, emulator: MobizonEmulator, proxy: ScriptedServer
) -> None:
    """The old address goes through the proxy; the new one is in NO_PROXY."""
    right = urlsplit(emulator.url)
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", "localhost")
    proxy.queue(envelope(13, f"localhost:{right.port}", "wrong domain"))
    with client_for(f"http://127.0.0.1:{free_port()}") as api:
        api.get_balance()
        assert api.api_url == f"http://localhost:{right.port}"
    assert len(proxy.requests) == 1
    assert [c.method for c in emulator.calls()] == ["user/getownbalance"]
