"""MobizonClient: the one place that speaks HTTP to the Mobizon API.

Why everything about the wire lives here: the rest of the package must be able
to reason about *outcomes* (sent, surely not sent, unknown) without knowing
what a ``urllib3.exceptions.ProxyError`` wraps.  The requests go out through
``transport`` (urllib3, one pool per API address, never a retry or a
redirect); its exceptions are translated once, below, into the families of
``errors.py``.

Wire format (see the API notes): POST to
``{base}/service/{module}/{method}?output=json&api=v1&apiKey=KEY`` with a form
body in PHP ``http_build_query`` style; the answer is ``{"code", "data",
"message"}`` and the HTTP status is ignored whenever that envelope is
present.  Encoding bodies, reading envelopes and coercing the numbers the
live service sends as strings are pure functions in ``wireformat``
(re-exported here).

The key is part of every URL, so it must never leave this module: urllib3
puts URLs into its exception texts, so those are redacted and never chained.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from mobizon_batch._version import __version__
from mobizon_batch.config import DEFAULT_API_URL, normalize_api_url
from mobizon_batch.errors import (
    AnswerLost,
    ApiError,
    ConfigError,
    NotSent,
    TransportError,
    WrongDomain,
    api_error_for,
)
from mobizon_batch.transport import (
    Reply,
    TlsSettings,
    Transport,
    caused_by,
    short_reason,
    timeout_of,
)
from mobizon_batch.wireformat import (
    RedactingFilter,
    build_query,
    encode_form,
    parse_envelope,
    redact,
    to_datetime,
    to_decimal,
    to_int,
)

log = logging.getLogger(__name__)

MAX_STATUS_IDS = 100
LIST_PAGE_SIZES = (25, 50, 100)

Timeout = float | tuple[float, float]


# ------------------------------------------------------------------ data types


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """What SendSmsMessage returns: ids, and whether the campaign awaits moderation."""

    message_id: int
    campaign_id: int
    moderation: bool


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One entry of a GetSMSStatus answer, with its fields typed."""

    id: int
    status: str
    seg_num: int | None
    start_send_ts: datetime | None
    status_update_ts: datetime | None


# -------------------------------------------------------------------- client


class MobizonClient:
    """A thread-safe client for the Mobizon HTTP API.

    One instance is shared by all send workers: it holds one pool of
    ``pool_size`` connections per API address (``transport``).  ``timeout``
    is ``(connect, read)`` seconds (one number: both); a read timeout makes a
    send ambiguous (``AnswerLost``), so keep it generous.
    """

    def __init__(
        self,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: Timeout = (10.0, 60.0),
        pool_size: int = 32,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ConfigError("the API key is empty: set MOBIZON_API_KEY")
        self._api_key = api_key.strip()
        self._api_url = normalize_api_url(api_url)
        self._switch_lock = threading.Lock()
        self.timeout = timeout
        self._pool_size = pool_size
        self._query = build_query({"output": "json", "api": "v1", "apiKey": self._api_key})
        self._transports = {self._api_url: self._transport_for(self._api_url)}

    def _read_environment(self, base: str) -> dict[str, Any]:
        """The proxy and certificate settings of the environment for ``base``, read once.

        They are read as requests reads them (``HTTP_PROXY``, ``HTTPS_PROXY``,
        ``ALL_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``),
        but once per client and address rather than on every request (all of
        ``os.environ``, twice, a request): they do not change while a client
        lives.  A move to another domain reads them again (``NO_PROXY`` may differ).
        """
        settings = requests.Session().merge_environment_settings(
            f"{base}/service/", {}, None, None, None
        )
        return {name: settings[name] for name in ("proxies", "verify", "cert")}

    def _transport_for(self, base: str) -> Transport:
        """A pool for ``base`` with the environment's proxy and certificates for it."""
        settings = self._read_environment(base)
        proxy = select_proxy(f"{base}/service/", settings["proxies"])
        verify = settings["verify"]
        tls = TlsSettings(
            verify=verify if isinstance(verify, str) else verify is not False,
            ca_bundle=DEFAULT_CA_BUNDLE_PATH,
            cert=settings["cert"],
        )
        try:
            return Transport(
                base,
                proxy=proxy or None,
                tls=tls,
                pool_size=self._pool_size,
                user_agent=f"mobizon-batch/{__version__}",
            )
        except OSError as exc:  # ssl.SSLError is an OSError too
            location = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
            raise ConfigError(
                f"the TLS certificates in {location} cannot be used ({exc}): "
                f"check REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE"
            ) from None

    def __repr__(self) -> str:
        return f"MobizonClient(api_url={self._api_url!r})"

    def __enter__(self) -> MobizonClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for transport in list(self._transports.values()):
            transport.close()

    @property
    def api_url(self) -> str:
        """The base URL in use now (it changes once if the API answers code 13)."""
        return self._api_url

    @property
    def host(self) -> str:
        """The API host and port, for messages (never the full URL, nor a user:password@)."""
        return host_of(self._api_url)

    def redact(self, text: str) -> str:
        """``text`` with this client's key removed."""
        return redact(text, self._api_key)

    def _redact_data(self, data: Any) -> Any:
        """``data`` with the key removed from every string (it ends up in messages)."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, Mapping):
            return {self._redact_data(k): self._redact_data(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self._redact_data(item) for item in data]
        return data

    # ------------------------------------------------------------ generic call

    def call(self, module: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """POST one API method and return the envelope's ``data`` on code 0.

        Raises an ``ApiError`` subclass for any other code and a
        ``TransportError`` (``NotSent`` or ``AnswerLost``) when no envelope came
        back.  On code 13 the client moves to the domain the API names and
        repeats the call once: the first server did not act on it.
        """
        switched = False
        while True:
            base = self._api_url
            try:
                return self._call_once(base, module, method, params or {})
            except WrongDomain as exc:
                if switched or not exc.domain:
                    raise
                self._switch_domain(base, exc.domain)
                switched = True

    def _switch_domain(self, old_base: str, domain: str) -> None:
        scheme = urlsplit(old_base).scheme
        new_base = normalize_api_url(domain if "://" in domain else f"{scheme}://{domain}")
        if scheme == "https" and new_base.startswith("http://"):
            raise ConfigError(
                f"the API asked to move from https to plain http ({urlsplit(new_base).netloc}); "
                f"refusing to send the key unencrypted"
            )
        with self._switch_lock:
            if self._api_url == old_base:
                if new_base not in self._transports:
                    self._transports[new_base] = self._transport_for(new_base)
                self._api_url = new_base
                log.warning(
                    "the API says this account lives on %s; using it from now on "
                    "(set MOBIZON_API_URL=%s to skip this step)",
                    urlsplit(new_base).netloc,
                    urlsplit(new_base).netloc,
                )

    def _call_once(self, base: str, module: str, method: str, params: Mapping[str, Any]) -> Any:
        host = host_of(base)
        path = f"/service/{module.lower()}/{method.lower()}?{self._query}"
        body = build_query(params).encode("ascii")
        log.debug("POST %s/service/%s/%s (%d bytes)", host, module, method, len(body))
        try:
            reply = self._transports[base].post(path, body, timeout_of(self.timeout))
        except (HTTPError, OSError) as exc:
            # Not chained (``from None``): the original texts carry the URL, key included.
            raise self._transport_error(exc, host) from None
        envelope = parse_envelope(reply.body)
        if envelope is None:
            raise self._not_an_envelope(reply, host)
        code, data, message = envelope
        if code != 0:
            raise api_error_for(code, self.redact(message), self._redact_data(data))
        return data

    def _transport_error(self, exc: BaseException, host: str) -> TransportError:
        """Decide, from what urllib3 raised, whether the server could have acted.

        A ``ProxyError`` is judged by what it wraps: urllib3 raises it only
        before the proxy took the request, so a proxy that cannot be reached
        is "could not connect" like a server that cannot.
        """
        reason = self.redact(short_reason(exc))
        if caused_by(exc, (NewConnectionError, ConnectTimeoutError)):
            return NotSent(f"could not connect to {host}: {reason}", host=host)
        if caused_by(exc, (SSLError,)) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return NotSent(
                f"the TLS certificate of {host} could not be verified: {reason}", host=host
            )
        if caused_by(exc, (SSLError,)) and "WRONG_VERSION_NUMBER" in str(exc):
            # The handshake failed on the first bytes: nothing was sent.
            return NotSent(
                f"{host} does not speak https (a bare domain means https): if it is a local "
                f"server, give its address as http://{host}",
                host=host,
            )
        if isinstance(exc, ReadTimeoutError):
            return AnswerLost(
                f"{host} did not answer in time (read timeout): "
                f"the request may or may not have been processed",
                host=host,
            )
        if isinstance(exc, LocationValueError):
            return NotSent(f"the API address for {host} is not usable: {reason}", host=host)
        return AnswerLost(
            f"the connection to {host} broke before an answer arrived ({reason}): "
            f"the request may or may not have been processed",
            host=host,
        )

    def _not_an_envelope(self, reply: Reply, host: str) -> ConfigError | TransportError:
        status = reply.status
        if status in (301, 302, 303, 307, 308):
            target = urlsplit(reply.location).netloc or "elsewhere"
            return ConfigError(
                f"{host} redirects API calls to {target}: set MOBIZON_API_URL to the "
                f"address it names (a redirected POST is never followed)"
            )
        if status in (429, 503):
            return NotSent(
                f"{host} turned the request away (HTTP {status}) without processing it",
                host=host,
                http_status=status,
            )
        return AnswerLost(
            f"{host} answered HTTP {status} with a body that is not a Mobizon API answer "
            f"(is MOBIZON_API_URL right?): the request may or may not have been processed",
            host=host,
            http_status=status,
        )

    # ---------------------------------------------------------- typed methods

    def send_sms(
        self,
        recipient: str,
        text: str,
        *,
        sender: str | None = None,
        name: str | None = None,
        deferred_to: datetime | str | None = None,
        validity: int | None = None,
        mclass: int | None = None,
    ) -> SendReceipt:
        """Message/SendSmsMessage for one recipient (digits, international form)."""
        extra: dict[str, Any] = {
            "name": name or None,
            "deferredToTs": deferred_to,
            "validity": validity,
            "mclass": mclass,
        }
        params: dict[str, Any] = {"recipient": recipient, "text": text, "from": sender or None}
        if any(value is not None for value in extra.values()):
            params["params"] = extra
        data = self.call("message", "sendSmsMessage", params)
        fields = data if isinstance(data, Mapping) else {}
        message_id = to_int(fields.get("messageId"))
        campaign_id = to_int(fields.get("campaignId"))
        if message_id is None or campaign_id is None:
            # Code 0 means the message exists, but without its id we cannot own it.
            raise AnswerLost(
                f"{self.host} accepted the message but its answer carries no usable "
                f"messageId/campaignId",
                host=self.host,
            )
        return SendReceipt(message_id, campaign_id, to_int(fields.get("status")) == 1)

    def get_sms_status(self, ids: Iterable[int]) -> list[StatusRecord]:
        """Message/GetSMSStatus for at most 100 ids; ids the API omits are absent."""
        id_list = [int(i) for i in ids]
        if len(id_list) > MAX_STATUS_IDS:
            raise ValueError(f"GetSMSStatus takes at most {MAX_STATUS_IDS} ids, got {len(id_list)}")
        if not id_list:
            return []
        data = self.call("message", "getSMSStatus", {"ids": id_list})
        records = []
        for item in data if isinstance(data, list) else []:
            if not isinstance(item, Mapping):
                continue
            message_id = to_int(item.get("id"))
            if message_id is None:
                log.warning("GetSMSStatus returned an entry without an id: %r", item)
                continue
            records.append(
                StatusRecord(
                    id=message_id,
                    status=str(item.get("status") or ""),
                    seg_num=to_int(item.get("segNum")),
                    start_send_ts=to_datetime(item.get("startSendTs")),
                    status_update_ts=to_datetime(item.get("statusUpdateTs")),
                )
            )
        return records

    def list_messages(
        self,
        criteria: Mapping[str, Any] | None = None,
        page: int = 0,
        page_size: int = 100,
        sort: Mapping[str, str] | None = None,
        *,
        with_number_info: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of Message/List: ``(items, totalItemCount)``.

        Numeric fields (id, campaignId, segNum) become int, segUserBuy a Decimal;
        text fields (to, from, text) stay strings even when they look numeric.
        """
        if page_size not in LIST_PAGE_SIZES:
            raise ValueError(f"page_size must be one of {LIST_PAGE_SIZES}, got {page_size}")
        params: dict[str, Any] = {
            "criteria": dict(criteria) if criteria else None,
            "pagination": {"currentPage": page, "pageSize": page_size},
            "sort": dict(sort) if sort else None,
            "withNumberInfo": 1 if with_number_info else None,
        }
        data = self.call("message", "list", params)
        fields = data if isinstance(data, Mapping) else {}
        items = [
            _typed_list_item(item)
            for item in fields.get("items") or []
            if isinstance(item, Mapping)
        ]
        total = to_int(fields.get("totalItemCount"))
        return items, total if total is not None else len(items)

    def get_balance(self) -> tuple[Decimal, str]:
        """User/GetOwnBalance: ``(balance, currency)`` — also a cheap check of key and domain."""
        data = self.call("user", "getOwnBalance")
        fields = data if isinstance(data, Mapping) else {}
        balance = to_decimal(fields.get("balance"))
        if balance is None:
            raise AnswerLost(
                f"{self.host} answered GetOwnBalance without a balance", host=self.host
            )
        return balance, str(fields.get("currency") or "")


_INT_LIST_FIELDS = ("id", "campaignId", "segNum")


def _typed_list_item(item: Mapping[str, Any]) -> dict[str, Any]:
    typed = dict(item)
    for field in _INT_LIST_FIELDS:
        if field in typed:
            number = to_int(typed[field])
            typed[field] = number if number is not None else typed[field]
    if "segUserBuy" in typed:
        typed["segUserBuy"] = to_decimal(typed["segUserBuy"])
    return typed


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``, without any credentials it may carry."""
    return urlsplit(url).netloc.rpartition("@")[2]


__all__ = [
    "LIST_PAGE_SIZES",
    "MAX_STATUS_IDS",
    "ApiError",
    "MobizonClient",
    "RedactingFilter",
    "SendReceipt",
    "StatusRecord",
    "build_query",
    "encode_form",
    "host_of",
    "parse_envelope",
    "redact",
    "to_datetime",
    "to_decimal",
    "to_int",
]
