"""Job files: the TOML a cron or systemd timer runs every night.

Why a file rather than a long command line: an operator edits it, reviews it,
keeps it in version control, and the same file re-run after a crash the same
day resumes the same send (the output path, and with it the journal, follows
the date).  It is checked strictly *before* anything happens: a typo in a key
must stop the job with the key named, not be ignored while messages go out
with a default.

A job with ``input`` sends (validate → send → status → report); a job
without it refreshes the statuses of an existing results file and writes the
report (the "morning after" job).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mobizon_batch.config import parse_duration
from mobizon_batch.errors import ConfigError
from mobizon_batch.locks import ProcessLock
from mobizon_batch.paths import check_distinct, journal_beside, sqlite_companions

# Every key a job file may hold, by table, with the type it must have.
_TOP: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "input": str,
    "output": str,
    "report": str,
    "journal": str,
    "api_url": str,
    "log": str,
    "raw_csv": bool,
}
_TABLES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "read": {
        "encoding": str,
        "delimiter": str,
        "sheet": (str, int),
        "header_row": int,
        "max_input_mb": int,
    },
    "columns": {"phone": str, "text": str, "template": str},
    "send": {
        "sender": str,
        "name": str,
        "validity": int,
        "deferred_to": str,
        "timezone": str,
        "flash": bool,
        "rate": (int, float),
        "workers": int,
        "max_attempts": int,
        "region": str,
        "accept_possible": bool,
        "optout": str,
        "max_segments": int,
        "allow_duplicates": bool,
        "retry_failed": bool,
        "allow_resend": bool,
        "resend_window": str,
        "settle": (int, float),
        "send_window": str,
        "mode": str,
        "max_cost": (int, float, str),
    },
    "status": {"wait": str, "interval": str, "skip": bool, "events": str},
}


@dataclass(frozen=True)
class Job:
    """A validated job: paths resolved and placeholders filled."""

    name: str
    path: Path
    output: Path
    #: the job's log: as given, else ``{job}-{date}.log`` beside the output
    log: Path
    input: Path | None = None
    report: Path | None = None
    journal: Path | None = None
    api_url: str | None = None
    #: write CSV cells exactly as they are (no neutralised formulas)
    raw_csv: bool = False
    read: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    send: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def sends(self) -> bool:
        """True for a sending job; False for a status-and-report job."""
        return self.input is not None

    @property
    def lock_path(self) -> Path:
        return self.output.with_name(self.output.name + ".lock")


def load_job(path: str | os.PathLike[str], today: date | None = None) -> Job:
    """Read and check a job file; raise ConfigError naming the key and the file."""
    job_path = Path(path)
    try:
        raw = tomllib.loads(job_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"job file {job_path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"job file {job_path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"job file {job_path} is not valid TOML: {exc}") from None
    return _check(raw, job_path, today or date.today())


def _check(raw: Mapping[str, Any], job_path: Path, today: date) -> Job:
    where = str(job_path)
    for key, value in raw.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            for inner, inner_value in value.items():
                expected = _TABLES[key].get(inner)
                if expected is None:
                    known = ", ".join(sorted(_TABLES[key]))
                    raise ConfigError(f"{where}: unknown key '{key}.{inner}' (known: {known})")
                _check_type(where, f"{key}.{inner}", inner_value, expected)
        elif key in _TOP:
            _check_type(where, key, value, _TOP[key])
        else:
            known = ", ".join(sorted([*_TOP, *(f"[{t}]" for t in _TABLES)]))
            raise ConfigError(f"{where}: unknown key '{key}' (known: {known})")
    for required in ("name", "output"):
        if required not in raw:
            raise ConfigError(f"{where}: the key '{required}' is required")
    name = raw["name"].strip()
    # {job} fills paths: "." or ".." there would climb out of the folder it stands in.
    if not name or any(ch in name for ch in "/\\\0") or name in (".", ".."):
        raise ConfigError(
            f"{where}: 'name' must be a non-empty name without slashes (and not . or ..)"
        )
    folder = job_path.resolve().parent
    fill = {
        "job": name,
        "date": today.isoformat(),
        "yesterday": (today - timedelta(days=1)).isoformat(),
    }

    def resolve(key: str, value: str) -> Path:
        text = _fill_placeholders(value, fill)
        if text is None:
            raise ConfigError(
                f"{where}: '{key}' = {value!r} has a placeholder other than "
                f"{{job}}, {{date}} and {{yesterday}}"
            )
        candidate = Path(text).expanduser()
        return candidate if candidate.is_absolute() else folder / candidate

    paths = {
        key: resolve(key, raw[key])
        for key in ("input", "output", "report", "journal", "log")
        if key in raw
    }
    send = dict(raw.get("send", {}))
    if "optout" in send:
        send["optout"] = resolve("send.optout", send["optout"])
        if not send["optout"].is_file():
            raise ConfigError(
                f"{where}: 'send.optout' names {send['optout']}, which does not exist"
            )
    status = dict(raw.get("status", {}))
    if "events" in status:
        status["events"] = resolve("status.events", status["events"])
        if not status["events"].is_file():
            raise ConfigError(
                f"{where}: 'status.events' names {status['events']}, which does not exist "
                f"(the webhook receiver creates it when it starts)"
            )
    if "input" in paths and not paths["input"].is_file():
        raise ConfigError(f"{where}: 'input' names {paths['input']}, which does not exist")
    if raw.get("read", {}).get("max_input_mb", 1) < 1:
        raise ConfigError(f"{where}: 'read.max_input_mb' must be at least 1")
    columns = dict(raw.get("columns", {}))
    if "text" in columns and "template" in columns:
        raise ConfigError(f"{where}: give 'columns.text' or 'columns.template', not both")
    _check_outputs(where, paths)
    if "resend_window" in send:
        try:
            parse_duration(send["resend_window"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: 'send.resend_window': {exc}") from None
    log = paths.get("log") or paths["output"].parent / f"{name}-{today.isoformat()}.log"
    check_job_paths(job_path, {**paths, "log": log}, send.get("optout"))
    for key in ("wait", "interval"):
        if key in raw.get("status", {}):
            try:
                parse_duration(raw["status"][key])
            except ConfigError as exc:
                raise ConfigError(f"{where}: 'status.{key}': {exc}") from None
    if "input" not in paths and ("columns" in raw or "send" in raw or "read" in raw):
        raise ConfigError(
            f"{where}: [columns], [read] and [send] need 'input' (a job without 'input' "
            f"only refreshes the statuses of 'output')"
        )
    return Job(
        name=name,
        path=job_path,
        output=paths["output"],
        input=paths.get("input"),
        report=paths.get("report"),
        journal=paths.get("journal"),
        log=log,
        api_url=raw.get("api_url"),
        raw_csv=raw.get("raw_csv", False),
        read=dict(raw.get("read", {})),
        columns=columns,
        send=send,
        status=status,
    )


_PLACEHOLDER = re.compile(r"\{(\w*)\}")


def _fill_placeholders(value: str, fill: Mapping[str, str]) -> str | None:
    """``value`` with {job}, {date}, {yesterday} filled; None if it has any other brace.

    Not ``str.format``: that would also accept ``{job.upper}`` or
    ``{date[0]}`` and write a path that changes from run to run (and with
    it the journal: a re-run would then send everything again).
    """
    unknown = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unknown
        if match.group(1) not in fill:
            unknown = True
            return ""
        return fill[match.group(1)]

    text = _PLACEHOLDER.sub(replace, value)
    return None if unknown or "{" in text or "}" in text else text


def _check_outputs(where: str, paths: Mapping[str, Path]) -> None:
    """Output names that would fail (or destroy something) only after the send."""
    if paths["output"].suffix.lower() not in (".csv", ".txt", ".xlsx"):
        raise ConfigError(f"{where}: 'output' must name a .csv or .xlsx file")
    report = paths.get("report")
    if report is not None:
        if report.suffix.lower() != ".xlsx":
            raise ConfigError(f"{where}: 'report' must name an .xlsx file (it is a workbook)")
        if report == paths["output"]:
            raise ConfigError(f"{where}: 'report' and 'output' name the same file")
    if paths.get("input") is not None and paths["input"] == paths["output"]:
        raise ConfigError(f"{where}: 'output' would overwrite 'input'")


def check_job_paths(
    job_path: Path,
    paths: Mapping[str, Path],
    optout: Path | None,
    summary: Path | None = None,
) -> None:
    """Every file the job writes differs from what it reads and from each other.

    What it writes: the output, its lock, the report, the log, the journal
    (given, or beside the output) with SQLite's files and its lock, and the
    JSON summary of ``run --summary``.  What it reads: the job file, the
    input and the opt-out list.
    """
    output = paths["output"]
    journal = paths.get("journal") or (journal_beside(output) if "input" in paths else None)
    writes: dict[str, Path | None] = {
        "'output'": output,
        "'report'": paths.get("report"),
        "'log'": paths.get("log"),
        "'journal'": journal,
        "the job's lock file": output.with_name(output.name + ".lock"),
        "the --summary file": summary,
    }
    if journal is not None:
        writes.update(sqlite_companions("the journal", journal))
    reads = {"the job file": job_path, "'input'": paths.get("input"), "'send.optout'": optout}
    check_distinct(writes, reads, where=str(job_path))


def check_summary_path(job: Job, summary: Path) -> None:
    """``run --summary FILE`` must not be a file the job reads or writes for something else."""
    paths = {"output": job.output}
    for key in ("input", "report", "journal"):
        value = getattr(job, key)
        if value is not None:
            paths[key] = value
    paths["log"] = job.log
    check_job_paths(job.path, paths, job.send.get("optout"), summary)


def _check_type(where: str, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    # TOML booleans are not numbers here, even though bool is an int in Python.
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join(_TYPE_NAMES[k] for k in kinds)
        raise ConfigError(f"{where}: '{key}' must be {names}, not {value!r}")


_TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


def job_lock(path: Path) -> ProcessLock:
    """The lock that keeps a job from running twice at once (see ``locks``)."""
    return ProcessLock(
        path,
        lambda holder: ConfigError(
            f"this job is already running ({holder}, lock {path}); not starting a second copy"
        ),
    )
