"""The shared way to end a process under test leaves nothing running, even a stubborn one."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.helpers import stop

# Ignores Ctrl-C and SIGTERM, says it is ready, then would sleep for a minute.
STUBBORN = (
    "import signal, time; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def test_a_process_that_ignores_the_signal_is_killed_and_reaped() -> None:
    process = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"

    stop(process, signal.SIGTERM, timeout=0.5)

    assert process.returncode == -signal.SIGKILL


def test_a_process_that_stops_on_the_signal_keeps_its_exit_and_output() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "up"

    out, err = stop(process)

    assert process.returncode == -signal.SIGINT  # ended by Ctrl-C itself, not killed
    assert out == "" and err is not None and "KeyboardInterrupt" in err


def test_without_a_signal_it_waits_for_the_process_to_end_by_itself() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('done'); sys.exit(3)"],
        stdout=subprocess.PIPE,
        text=True,
    )

    out, _ = stop(process, None)

    assert process.returncode == 3 and out == "done\n"
