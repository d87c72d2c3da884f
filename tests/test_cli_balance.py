"""`mobizon-batch balance` and `emulator` end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mobizon_batch.cli import main
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from tests.helpers import TEST_KEY, free_port, stop


def test_balance_against_the_emulator(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["balance"]) == 0
    out = capsys.readouterr().out
    assert "Balance: 100,000.00 KZT" in out
    assert api_env.calls()[0].method == "user/getownbalance"


def test_bad_key_exits_5_with_a_sentence(
    api_env: MobizonEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other_key = "Zz" * 20
    monkeypatch.setenv("MOBIZON_API_KEY", other_key)
    assert main(["balance"]) == 5
    err = capsys.readouterr().err
    assert "key was refused" in err
    assert "Traceback" not in err and other_key not in err


def test_missing_key_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MOBIZON_API_KEY", raising=False)
    assert main(["balance"]) == 2
    assert "MOBIZON_API_KEY" in capsys.readouterr().err


def test_unreachable_server_names_the_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOBIZON_API_URL", f"http://127.0.0.1:{port}")
    assert main(["balance"]) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "could not connect" in err
    assert "Traceback" not in err


def test_verbose_shows_a_traceback_but_never_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOBIZON_API_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["-vv", "balance"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "urllib3" in err  # -vv turned on HTTP debug logs ...
    assert TEST_KEY not in err  # ... which name the URL, but not the key


def test_verbose_http_logs_are_redacted_on_success(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-vv", "balance"]) == 0
    captured = capsys.readouterr()
    assert "getownbalance" in captured.err
    assert TEST_KEY not in captured.err + captured.out


def test_api_url_flag_beats_the_environment(
    api_env: MobizonEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOBIZON_API_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["balance", "--api-url", api_env.url]) == 0


def test_python_dash_m_and_help_on_every_command() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mobizon_batch", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and "balance" in run.stdout
    for command in ("balance", "emulator"):
        assert main([command, "--help"]) == 0


def test_no_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_emulator_command_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mobizon_batch", "emulator", "--port", "0", "--api-key", TEST_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        with MobizonClient(TEST_KEY, url) as api:
            assert api.get_balance()[1] == "KZT"
    finally:
        _, err = stop(process)
    assert process.returncode == 130
    assert "Traceback" not in err
