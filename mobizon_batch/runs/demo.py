"""run_demo: the whole flow against the built-in emulator, offline, in a folder of its own."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mobizon_batch.config import DEMO_LOST_ANSWERS as DEMO_LOST_ANSWERS
from mobizon_batch.emulator import EmulatorConfig, MobizonEmulator, emulator_url_for_env
from mobizon_batch.errors import ConfigError
from mobizon_batch.journal import default_journal_path
from mobizon_batch.prepare import PlanOptions
from mobizon_batch.runs.campaign import CAMPAIGN
from mobizon_batch.runs.jobs import JobObserver, StepResult, run_steps
from mobizon_batch.runs.report import ReportOptions, build_report
from mobizon_batch.runs.send import SendListOptions, send_list
from mobizon_batch.runs.status import StatusOptions, refresh_statuses
from mobizon_batch.samples import write_samples
from mobizon_batch.send import SendOptions

DEMO_KEY = "demo-key-0000000000000000000000000000000"
DEMO_MARK = ".mobizon-demo"
#: share of answers the demo's emulator loses on purpose, to show the recovery
#: the demo's campaign-mode send: a reminder to the whole list, one template campaign
#: (a text the first send did not use, so the history guard has nothing to hold back)
DEMO_TEMPLATE = "{Имя}, напоминаем: скидка 20% действует до воскресенья."


class DemoObserver(JobObserver):
    """A job observer that also hears where the demo's list and API are."""

    def demo_list(self, path: Path) -> None:
        """The sample list was written."""

    def demo_api(self, url: str) -> None:
        """The emulator listens at ``url``."""


@dataclass
class DemoResult:
    """The demo's steps and files, and how many messages the emulator accepted."""

    folder: Path
    results: Path
    report: Path
    #: the same list sent again in campaign mode, to a results file of its own
    campaign_results: Path | None = None
    steps: list[StepResult] = field(default_factory=list)
    accepted: int = 0
    #: messages the campaign-mode send delivered through Campaign-module campaigns
    accepted_in_campaigns: int = 0

    @property
    def journal(self) -> Path:
        return default_journal_path(self.results)


def run_demo(folder: Path, observer: DemoObserver | None = None) -> DemoResult:
    """Write the sample list, send it, wait for the statuses and write the report."""
    observer = observer or DemoObserver()
    prepare_demo_folder(folder)
    samples = write_samples(folder)
    result = DemoResult(folder, folder / "results.xlsx", folder / "report.xlsx")
    config = EmulatorConfig(
        api_key=DEMO_KEY,
        latency=0.02,
        status_step=0.4,
        fault_drop_after=DEMO_LOST_ANSWERS,
        seed=7,
    )
    observer.demo_list(samples["csv"])
    sending = SendListOptions(
        input=samples["csv"],
        output=result.results,
        plan=PlanOptions(optout_path=samples["optout"]),
        send=SendOptions(settle_seconds=0.5),
    )
    status = StatusOptions(result.results, wait=120.0, interval=1.0)
    report = ReportOptions(result.results, result.report)
    result.campaign_results = folder / "results-campaign.xlsx"
    # Campaign mode: the list staged in one template campaign, priced, sent once.
    campaign = SendListOptions(
        input=samples["csv"],
        output=result.campaign_results,
        plan=PlanOptions(optout_path=samples["optout"], template=DEMO_TEMPLATE),
        send=SendOptions(settle_seconds=0.5, name="demo"),
        mode=CAMPAIGN,
    )
    with MobizonEmulator(config) as emulator, _environment(emulator_url_for_env(emulator)):
        observer.demo_api(emulator.url)
        result.steps = run_steps(
            [
                ("send", sending, lambda: send_list(sending, observer)),
                ("status", status, lambda: refresh_statuses(status, observer)),
                ("report", report, lambda: build_report(report)),
                ("send", campaign, lambda: send_list(campaign, observer)),
            ],
            observer,
        )
        campaigns = set(emulator.state.campaigns)
        messages = emulator.messages()
        result.accepted = sum(1 for m in messages if m.campaign_id not in campaigns)
        result.accepted_in_campaigns = len(messages) - result.accepted
    return result


def prepare_demo_folder(folder: Path) -> None:
    """Make (or reuse) the demo's folder; never touch a folder the demo did not make.

    The demo writes and deletes files by fixed names (recipients.csv,
    results.xlsx and its journal…): in someone's work folder that would
    destroy their own files.  A mark file says the folder is the demo's.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / DEMO_MARK).exists():
        raise ConfigError(
            f"--out {folder} already holds files the demo did not make: give a new or empty folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / DEMO_MARK).write_text("made by mobizon-batch demo\n", encoding="utf-8")
        for leftover in (
            "results.xlsx",
            "results.xlsx.journal.sqlite",
            "report.xlsx",
            "results-campaign.xlsx",
            "results-campaign.xlsx.journal.sqlite",
        ):
            with contextlib.suppress(FileNotFoundError):
                (folder / leftover).unlink()  # each demo starts afresh
    except OSError as exc:
        raise ConfigError(f"cannot use {folder} for the demo: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, then restore them.

    The demo's key and URL go through the environment, as a user's would,
    so that the logging filter that hides the key sees it too.
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
