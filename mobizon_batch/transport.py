"""The HTTP under ``MobizonClient``: one urllib3 pool for one API address.

Why urllib3 directly rather than through requests: at no latency the client's
own CPU is what limits a send, and requests spends most of it (preparing,
hooks, cookies, adapters) on features a form POST to one host never uses.
Posting 3,000 forms from 8 threads took 4.5-4.9 s through a
``requests.Session`` and 1.3-2.4 s through a ``urllib3.PoolManager`` on the
same machine.  What requests did for us that matters is kept here, the way
requests does it: the proxy the environment names for this address (HTTP,
HTTPS or SOCKS, with its credentials), certificate checks against certifi's
bundle or the one the environment names, a client certificate, credentials
in the address sent as Basic auth, and the same request headers.

Two things requests would do are never done: retries and redirects.  A POST
repeated or redirected behind our back is a second SMS, so every failure and
every 3xx reaches the caller, who knows whether repeating is safe.

Exceptions are urllib3's own and are translated once, in ``client``; a
setting that cannot work (a proxy without a host, a SOCKS proxy without
PySocks) is raised as urllib3's ``LocationValueError`` on the first request,
where the client turns it into a sentence like any other transport failure.
What the client asks of a failure — what it wraps (``caused_by``), its
innermost words (``short_reason``) — is answered here, beside the library
whose exceptions nest that way.
"""

from __future__ import annotations

import os
import re
import ssl
import warnings
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import LocationValueError
from urllib3.util.ssl_ import create_urllib3_context

from mobizon_batch.wireformat import FORM_CONTENT_TYPE

#: The form a call's body is in, what we accept back (the API's envelope is JSON),
#: and the encodings requests asked for.
BASE_HEADERS = {
    "Content-Type": FORM_CONTENT_TYPE,
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, read in full: what the client decides on."""

    status: int
    body: bytes
    location: str


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Certificate checks as requests makes them.

    ``verify`` is True (certifi's bundle, ``ca_bundle``), False (no checks) or
    the path of a bundle file or a folder of certificates; ``cert`` is a
    client certificate file, or ``(certificate, key)``.
    """

    verify: bool | str
    ca_bundle: str
    cert: str | tuple[str, str] | None = None


class Transport:
    """Thread-safe POSTs to one API address through one pool of ``pool_size`` connections.

    ``base`` is the API address (``scheme://host[:port]``, perhaps with
    ``user:password@``); ``proxy`` the proxy URL the environment names for it,
    or None.
    """

    def __init__(
        self,
        base: str,
        *,
        proxy: str | None,
        tls: TlsSettings,
        pool_size: int,
        user_agent: str,
    ) -> None:
        parts = urlsplit(base)
        self.base = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self.headers = {**BASE_HEADERS, "User-Agent": user_agent}
        if parts.username is not None:
            self.headers["Authorization"] = _basic(parts.username, parts.password)
        self._unusable: LocationValueError | None = None
        self._direct: urllib3.HTTPConnectionPool | None = None
        self._manager: urllib3.PoolManager | None = None
        try:
            self._manager = _manager(self.base, proxy, tls, max(pool_size, 1))
        except LocationValueError as exc:
            self._unusable = exc
            return
        if proxy is None:
            # One address, no proxy: its pool directly, without a lookup per request.
            self._direct = self._manager.connection_from_url(self.base)

    def post(self, path: str, body: bytes, timeout: urllib3.Timeout) -> Reply:
        """POST ``body`` to ``path`` (with its query) once; no retry, no redirect.

        Raises urllib3's exceptions as they come: the client decides what they mean.
        """
        if self._unusable is not None:
            raise self._unusable
        options: dict[str, Any] = {
            "body": body,
            "headers": self.headers,
            "retries": False,
            "redirect": False,
            "timeout": timeout,
            "preload_content": True,
        }
        if self._direct is not None:
            response = self._direct.urlopen("POST", path, **options)
        else:
            assert self._manager is not None
            response = self._manager.urlopen("POST", self.base + path, **options)
        return Reply(response.status, response.data, response.headers.get("Location", ""))

    def close(self) -> None:
        """Close the idle connections; a later request opens new ones (as with requests)."""
        if self._direct is not None:
            self._direct.close()
        if self._manager is not None:
            self._manager.clear()  # drops the proxy pools, as requests' close does
            if self._direct is not None:
                self._direct = self._manager.connection_from_url(self.base)


# ----------------------------------------------------------- what failed


def _wrapped(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps, once each, outermost first.

    urllib3 wraps socket and ssl errors, in ``args``, ``reason``,
    ``__cause__`` and ``__context__``; both questions asked of a failure
    (what kind is it, and what are its innermost words) walk this one list.
    """
    found: list[BaseException] = []
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        item = pending.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        pending.extend([getattr(item, "reason", None), *item.args, item.__cause__])
        pending.append(item.__context__)
    return found


def caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """True if ``exc`` or anything it wraps (args, causes, urllib3 reasons) is of ``kinds``."""
    return any(isinstance(item, kinds) for item in _wrapped(exc))


def short_reason(exc: BaseException) -> str:
    """The innermost useful words of a urllib3 exception.

    The innermost one says what happened ("Connection refused", "Remote end
    closed connection without response"), the outer ones mostly repeat the
    pool and the URL.
    """
    innermost = _wrapped(exc)[-1]
    text = _POOL_PREFIX.sub("", str(innermost)).strip() or type(innermost).__name__
    return text[:300]


_POOL_PREFIX = re.compile(r"^<?\w+(?:Connection|Pool)\w*\(host=[^)]*\)>?:\s*")


def timeout_of(value: float | tuple[float, float]) -> urllib3.Timeout:
    """requests' timeout (one number for both, or ``(connect, read)``) as urllib3's."""
    connect, read = value if isinstance(value, tuple) else (value, value)
    return urllib3.Timeout(connect=connect, read=read)


def _manager(base: str, proxy: str | None, tls: TlsSettings, pool_size: int) -> urllib3.PoolManager:
    """The pool manager for ``base``: direct, through an HTTP(S) proxy, or through SOCKS."""
    options: dict[str, Any] = {"num_pools": 2, "maxsize": pool_size, "block": False}
    options["retries"] = False
    uses_tls = base.startswith("https://") or (proxy or "").startswith("https://")
    if uses_tls:
        options.update(_tls_options(tls))
    if proxy is None:
        return urllib3.PoolManager(**options)
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    parts = urlsplit(proxy)
    if not parts.hostname:
        raise LocationValueError(
            "the proxy address the environment names has no host: check HTTP_PROXY/HTTPS_PROXY"
        )
    if parts.scheme.lower().startswith("socks"):
        socks = _socks_manager()
        if socks is None:
            # Raised outside the ``except``: its words are the sentence, not the ImportError's.
            raise LocationValueError(
                "the environment names a SOCKS proxy, which needs the PySocks package "
                "(pip install pysocks)"
            )
        return socks(
            proxy,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            **options,
        )
    proxy_headers = {}
    if parts.username is not None:
        proxy_headers["Proxy-Authorization"] = _basic(parts.username, parts.password)
    # An https proxy is checked with the API's certificates, as requests checks it
    # (urllib3 alone would use the system's store, not certifi's or the environment's).
    return urllib3.ProxyManager(
        proxy, proxy_headers=proxy_headers, proxy_ssl_context=options.get("ssl_context"), **options
    )


def _socks_manager() -> Callable[..., urllib3.PoolManager] | None:
    """urllib3's SOCKS proxy manager, or None without PySocks (as requests, optional)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3 warns without PySocks; our sentence says it
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            return None
    return SOCKSProxyManager


def _tls_options(tls: TlsSettings) -> dict[str, Any]:
    """Pool options that check certificates as requests does, with one shared context.

    The bundle is loaded once, into a context every connection shares, rather
    than once per connection (certifi's bundle takes milliseconds to parse).
    """
    options: dict[str, Any] = {}
    if tls.verify is False:
        options["cert_reqs"] = ssl.CERT_NONE
    else:
        location = tls.ca_bundle if tls.verify is True else tls.verify
        context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        context.load_verify_locations(
            cafile=None if os.path.isdir(location) else location,
            capath=location if os.path.isdir(location) else None,
        )
        options["ssl_context"] = context
        options["cert_reqs"] = ssl.CERT_REQUIRED
    if isinstance(tls.cert, tuple):
        options["cert_file"], options["key_file"] = tls.cert
    elif tls.cert:
        options["cert_file"] = tls.cert
    return options


def _basic(username: str, password: str | None) -> str:
    """A Basic auth header value from URL credentials (percent-decoded, as requests does)."""
    pair = f"{unquote(username)}:{unquote(password or '')}"
    return "Basic " + b64encode(pair.encode("latin-1")).decode("ascii")


__all__ = [
    "BASE_HEADERS",
    "Reply",
    "TlsSettings",
    "Transport",
    "caused_by",
    "short_reason",
    "timeout_of",
]
