"""The figures a send shows before anything goes out, for a person to confirm.

Why one object for both modes: message mode knows the rows, their segments
and the balance once the journal holds the list; campaign mode knows the
same and, once the campaigns are staged, Mobizon's price.  The command line
renders whichever it gets the same way and asks ``Send? [y/N]`` on a
terminal; a script or a job reads the fields, or ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class PreFlight:
    """What is about to be sent and what the account has.

    ``rows`` and ``segments`` count what this run would send now (rows an
    earlier run settled are in ``already_sent``; rows waiting for their
    send window in ``waiting``).  ``price`` is Mobizon's own figure, known
    in campaign mode only; None otherwise.
    """

    rows: int
    segments: int
    balance: Decimal
    currency: str
    host: str
    already_sent: int = 0
    waiting: int = 0
    price: Decimal | None = None

    @property
    def short_of_money(self) -> bool:
        """True when Mobizon's price is known and the balance does not cover it."""
        return self.price is not None and self.price > self.balance
