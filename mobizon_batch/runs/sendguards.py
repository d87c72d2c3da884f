"""The guards a send passes before its first row: the promise "never twice".

One send at a time per results file (whatever journal each one uses), no
send over a results file whose journal is missing, and the history guard
that marks rows the account already sent lately.  ``send_list`` runs them
in that order; each stops the send, or marks rows, before anything leaves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mobizon_batch.accountclock import AccountClock, parse_zone
from mobizon_batch.client import MobizonClient
from mobizon_batch.errors import ConfigError, MobizonBatchError
from mobizon_batch.history import GuardReport, Planned, guard
from mobizon_batch.journal import Journal
from mobizon_batch.locks import ProcessLock
from mobizon_batch.registry import known_offset
from mobizon_batch.resultfile import MESSAGE_ID_COLUMN, locate_columns
from mobizon_batch.retries import ReadPolicy
from mobizon_batch.table import DEFAULT_MAX_INPUT_MB, ReadLimits, read_table
from mobizon_batch.vocabulary import SendState

if TYPE_CHECKING:
    from mobizon_batch.runs.send import SendListOptions


def results_lock(results: Path) -> ProcessLock:
    """One send at a time per results file, whatever journal each one uses.

    The journal's own lock cannot see a second send of the same results file
    that was given another ``--journal``: both would send every row.
    """
    return ProcessLock(
        results.with_name(results.name + ".sending.lock"),
        lambda holder: ConfigError(
            f"{results} is in use by {holder}: another send is writing this results file; "
            f"wait for it to finish (two at once could send rows twice)"
        ),
    )


def guard_history(
    client: MobizonClient, journal: Journal, keys: frozenset[str], options: SendListOptions
) -> GuardReport | None:
    """Mark the pending rows the account already sent lately ``already_sent``.

    Asked only for rows about to be sent: rows this journal sent, or whose
    outcome it is settling, are the journal's business.
    """
    pending = [
        Planned(row.row_key, row.recipient, row.text)
        for row in journal.rows([SendState.PENDING])
        if row.row_key in keys
    ]
    if not pending:
        return None
    window = options.resend_window
    # The account's clock as a send from this machine measured it, else as the
    # user declared it (--timezone); else unknown, and the guard widens its window.
    offset = known_offset(client.host)
    if offset is None and options.timezone:
        zone = AccountClock(parse_zone(options.timezone), "from --timezone")
        offset = zone.lead().total_seconds()
    report = guard(
        client,
        pending,
        window=window,
        offset=offset,
        own_ids=journal.owned_ids(),
        policy=ReadPolicy(attempts=options.send.max_attempts),
    )
    journal.mark_already_sent(
        (key, earlier.message_id, earlier.campaign_id, report.reason(earlier, window))
        for key, earlier in report.already.items()
    )
    return report


def checked_journal(results: Path, journal_path: Path, max_input_mb: int) -> Journal:
    """The journal, opened once the results file is known not to be another journal's."""
    refuse_orphan_results(results, journal_path, max_input_mb)
    return Journal(journal_path)


def refuse_orphan_results(
    results_path: Path, journal_path: Path, max_input_mb: int = DEFAULT_MAX_INPUT_MB
) -> None:
    """Refuse to send when a results file with message ids exists but its journal does not.

    That file says rows were sent; without the journal nothing would stop
    them from being sent again.
    """
    if journal_path.exists() or not results_path.exists():
        return
    try:
        frame = read_table(results_path, limits=ReadLimits.for_results(max_input_mb)).frame
    except MobizonBatchError:
        return
    ids = frame.get(locate_columns(frame.columns).get(MESSAGE_ID_COLUMN, MESSAGE_ID_COLUMN))
    if ids is not None and (ids.astype(str).str.strip() != "").any():
        raise ConfigError(
            f"{results_path} already holds message ids, but its journal {journal_path} is "
            f"missing: sending now could send those rows twice. Restore the journal "
            f"(--journal PATH), or write the results to a new file"
        )
