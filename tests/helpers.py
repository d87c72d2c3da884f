"""What several test modules share: the test key, a free port, a fake clock.

One home for them, so that no test module imports another and a test file can be
renamed or split without breaking the files that used its helpers.
"""

from __future__ import annotations

import socket
from datetime import datetime

from mobizon_batch.emulator import CallRecord

# Long enough to be redacted as plain text, unlike a one-letter key.
TEST_KEY = "k3yS3cr3tAbCdEf0123456789abcdef01234567"

STATUS_CALL = "message/getsmsstatus"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakeClock:
    """Epoch seconds that move only when told: shared by the emulator and the wait loop."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 9, 0, 0).timestamp()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now)


def asked_ids(call: CallRecord) -> list[int]:
    """The ids one GetSMSStatus request carried, in order (``ids[0]=..&ids[1]=..``)."""
    ids = call.params["ids"]
    values = [ids[k] for k in sorted(ids, key=int)] if isinstance(ids, dict) else ids
    return [int(v) for v in values]
