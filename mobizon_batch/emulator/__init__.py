"""A local Mobizon API server: same wire format, controllable faults.

Why we ship one: the behaviour that matters most — what happens when an answer
is lost after the message was created, when the rate limit bites, when the
service drops connections — cannot be provoked on the live service, and tests,
the offline demo and the benchmarks all need a real HTTP peer on loopback.

It speaks what the API notes describe: case-insensitive
``/service/{module}/{method}``, the ``apiKey`` query parameter, PHP-style form
bodies, the ``{code, data, message}`` envelope with numbers sent as strings.
Implemented, one file per API module (``message_api``, ``campaign_api`` with its
read side in ``campaign_views``):
Message/SendSmsMessage, Message/GetSMSStatus, Message/List, User/GetOwnBalance,
and Campaign/Create, AddRecipients, Send, Get, GetInfo, List, Delete.
Statuses advance with time NEW → ENQUEUD → ACCEPTD (→ PDLIVRD for multi-segment texts) → a final
status chosen deterministically per message.  Everything it accepted can be
read back (``messages()``) and every call it answered is logged (``calls()``),
so tests can count duplicates and requests exactly.  With ``webhook_url`` set it
pushes delivery reports as Mobizon's webhooks do (``webhooks``).
"""

from mobizon_batch.emulator.core import MobizonEmulator, emulator_url_for_env
from mobizon_batch.emulator.model import CallRecord, EmulatedMessage, EmulatorConfig
from mobizon_batch.emulator.webhooks import WebhookDelivery
from mobizon_batch.emulator.wire import parse_php_form

__all__ = [
    "CallRecord",
    "EmulatedMessage",
    "EmulatorConfig",
    "MobizonEmulator",
    "WebhookDelivery",
    "emulator_url_for_env",
    "parse_php_form",
]
