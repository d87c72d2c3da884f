"""Every error mobizon-batch raises on purpose, under one root.

Why a hierarchy rather than codes on one class: the send pass has to make a
different decision for each family (retry, reconcile, skip the row, stop the
run), and ``except RateLimited`` reads better than comparing integers in ten
places.  The command line maps families to exit codes in one place (``cli.py``).

API errors follow the Mobizon response codes (see the API notes).  Transport
errors are split by the one question that matters for a send that costs money:
*could the server have acted on the request?*  ``NotSent`` means surely not
(safe to retry); ``AnswerLost`` means we cannot know (never resend blindly).
"""

from __future__ import annotations

import errno
from typing import Any, ClassVar


class MobizonBatchError(Exception):
    """Root of every error this package raises deliberately."""


class ConfigError(MobizonBatchError):
    """A flag, environment variable or job file is wrong (exit code 2)."""


class InputError(MobizonBatchError):
    """The input list cannot be used: nothing was sent (exit code 3)."""


class StorageError(MobizonBatchError):
    """A file could not be written because the disk is full or failing (exit code 7).

    Why apart from ``ConfigError``: the command was right and can simply be
    run again once there is space; what the user must do is free space (or
    fix the disk), not change a flag.  ``path`` names the file that failed.
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(message)


#: ``errno`` values that mean "the disk, not the request": no space, quota, I/O error.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})


def is_storage_trouble(exc: BaseException) -> bool:
    """True for an OSError (or SQLite error) that says the disk is full or failing."""
    if isinstance(exc, OSError):
        return exc.errno in STORAGE_ERRNOS
    text = str(exc).lower()
    return any(words in text for words in ("database or disk is full", "disk i/o error"))


# --------------------------------------------------------------------------- API


class ApiError(MobizonBatchError):
    """The API answered with a well-formed envelope whose code is not 0.

    ``code``, ``api_message`` and ``data`` are the envelope's fields verbatim,
    so a caller can show the provider's own words next to ours.
    """

    #: True for the codes after which no further request can succeed (bad key,
    #: blocked account, a method we call wrongly): the run stops at once.
    aborts_run: ClassVar[bool] = False

    def __init__(self, code: int, api_message: str = "", data: Any = None) -> None:
        self.code = code
        self.api_message = api_message
        self.data = data
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = self.api_message.strip() or "no message given"
        return f"Mobizon API error {self.code}: {text}"


class ValidationError(ApiError):
    """Code 1: the API rejected a parameter; ``fields`` maps field → message."""

    @property
    def fields(self) -> dict[str, str]:
        if isinstance(self.data, dict):
            return {str(k): str(v) for k, v in self.data.items()}
        return {}

    @property
    def details(self) -> str:
        """The field map as one line: ``recipient: bad number; text: empty``."""
        return "; ".join(f"{k}: {v}" for k, v in self.fields.items())

    def _describe(self) -> str:
        base = super()._describe()
        return f"{base} ({self.details})" if self.details else base


class NotFound(ApiError):
    """Code 2: the record does not exist, or no ids were given."""


class ServiceError(ApiError):
    """Codes 3 and 999: the service failed in a way that says nothing of the outcome.

    For a send this is ambiguous: the message may or may not have been created.
    """


class WrongRequest(ApiError):
    """Codes 4, 5, 6: wrong module, method or output format — a bug on our side."""

    aborts_run = True


class AuthError(ApiError):
    """Code 8: the API key was refused (wrong, revoked or expired)."""

    aborts_run = True

    def _describe(self) -> str:
        return (
            "the API key was refused (Mobizon code 8): check MOBIZON_API_KEY "
            "and that the key belongs to this domain's account"
        )


class AccessDenied(ApiError):
    """Code 9: this key may not call this method."""

    aborts_run = True

    def _describe(self) -> str:
        return (
            f"this API key has no access to the method (Mobizon code 9): "
            f"{self.api_message.strip() or 'enable it in the Mobizon panel'}"
        )


class ConcurrentSave(ApiError):
    """Code 10: a save failed under concurrent access; safe to retry later."""


class MissingParameter(ApiError):
    """Code 11: a required parameter is missing."""


class LimitExceeded(ApiError):
    """Code 12: a parameter breaks a limit (for example more than 100 ids)."""


class WrongDomain(ApiError):
    """Code 13: the account lives on another API domain, named in ``data``.

    The client moves to that domain and repeats the call once by itself; when
    this reaches a caller, that did not help, and nothing more can succeed.
    """

    aborts_run = True

    @property
    def domain(self) -> str | None:
        value = self.data
        if isinstance(value, dict):
            value = value.get("domain") or value.get("apiDomain")
        if isinstance(value, str) and value.strip():
            return value.strip()
        return None

    def _describe(self) -> str:
        where = self.domain or "a domain the API did not name"
        return (
            f"this account belongs to another API domain ({where}, Mobizon code 13): "
            f"set MOBIZON_API_URL to it"
        )


class AccountBlocked(ApiError):
    """Code 14: the account is blocked or deleted."""

    aborts_run = True

    def _describe(self) -> str:
        return (
            "the Mobizon account is blocked or deleted (Mobizon code 14): "
            "contact Mobizon support; nothing more can be sent"
        )


class OperationError(ApiError):
    """Code 15: another operation error, explained in the message."""


class RateLimited(ApiError):
    """Code 30: too many requests to this method; slow down and retry."""


class PartialBulk(ApiError):
    """Codes 98 and 99: a bulk operation was done partly or not at all."""


class BackgroundTask(ApiError):
    """Code 100: accepted as a background task whose id is in ``data``."""


_API_ERRORS: dict[int, type[ApiError]] = {
    1: ValidationError,
    2: NotFound,
    3: ServiceError,
    4: WrongRequest,
    5: WrongRequest,
    6: WrongRequest,
    8: AuthError,
    9: AccessDenied,
    10: ConcurrentSave,
    11: MissingParameter,
    12: LimitExceeded,
    13: WrongDomain,
    14: AccountBlocked,
    15: OperationError,
    30: RateLimited,
    98: PartialBulk,
    99: PartialBulk,
    100: BackgroundTask,
    999: ServiceError,
}


def api_error_for(code: int, message: str = "", data: Any = None) -> ApiError:
    """The exception for an envelope with this code (a plain ApiError if unknown)."""
    return _API_ERRORS.get(code, ApiError)(code, message, data)


# --------------------------------------------------------------------- transport


class TransportError(MobizonBatchError):
    """No usable API envelope came back.

    ``host`` names the server (never the URL: the URL carries the key) and
    ``http_status`` is set when an HTTP answer arrived but was not an envelope.
    """

    def __init__(self, message: str, *, host: str = "", http_status: int | None = None) -> None:
        self.host = host
        self.http_status = http_status
        super().__init__(message)


class NotSent(TransportError):
    """The request surely created nothing: safe to send again.

    Could not connect, name resolution failed, connect timeout, TLS handshake
    failure, or HTTP 429/503 without an envelope (a proxy turned it away).
    """


class AnswerLost(TransportError):
    """The request may have been acted on, but no answer arrived.

    Read timeout, a connection closed or reset after the request was written,
    HTTP 500/502/504, or a body that is not the envelope.  A send that ends
    this way must be reconciled, never resent blindly.
    """


# ------------------------------------------------------------------------ runs


class RunAborted(MobizonBatchError):
    """The run stopped because the API refused to go on (exit code 5).

    ``cause`` is the error that stopped it: an ``ApiError`` that aborts runs,
    or a ``ConfigError`` met mid-run (say, the API started redirecting).
    """

    def __init__(self, message: str, cause: MobizonBatchError | None = None) -> None:
        self.cause = cause
        super().__init__(message)
