"""Shared fixtures: the emulator on loopback, clients, and the generated input files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.runs.webhook import Receiver, ReceiverOptions
from tests.fixtures.make_fixtures import build
from tests.helpers import TEST_KEY, WEBHOOK_SECRET
from tests.scripted_server import ScriptedServer


@pytest.fixture(autouse=True)
def machine_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own machine state (registered journals, account clocks)."""
    folder = tmp_path / "machine-state"
    monkeypatch.setenv("MOBIZON_BATCH_STATE", str(folder))
    return folder


@pytest.fixture(autouse=True)
def english_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports in English whatever the machine's locale (``report`` follows it by default)."""
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def emulator() -> Iterator[MobizonEmulator]:
    with MobizonEmulator(api_key=TEST_KEY, status_step=0.05) as emu:
        yield emu


@pytest.fixture
def client(emulator: MobizonEmulator) -> Iterator[MobizonClient]:
    with MobizonClient(TEST_KEY, emulator.url, timeout=(2.0, 5.0)) as api:
        yield api


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, emulator: MobizonEmulator) -> MobizonEmulator:
    """Point the command line at the emulator through the environment."""
    monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOBIZON_API_URL", emulator.url)
    return emulator


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture file, written once per test session."""
    return build(tmp_path_factory.mktemp("fixtures"))


# ------------------------------------------------------------------ webhooks


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """The webhook receiver on loopback (real waitress, port 0), path /mobizon/events."""
    options = ReceiverOptions(
        store=tmp_path / "events.sqlite", path="/mobizon/events", secret=WEBHOOK_SECRET
    )
    with Receiver(options).running() as running:
        yield running
