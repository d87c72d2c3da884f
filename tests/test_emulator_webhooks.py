"""The emulator pushes delivery reports as Mobizon's webhooks do, to a real receiver."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.runs.webhook import Receiver, ReceiverOptions, export_optout
from mobizon_batch.webhook_store import EventStore
from tests.helpers import TEST_KEY, WEBHOOK_SECRET, stop, wait_for


def send(emulator: MobizonEmulator, count: int) -> list[int]:
    with MobizonClient(TEST_KEY, emulator.url) as api:
        return [api.send_sms(f"7701{i:07d}", f"Hi {i}").message_id for i in range(count)]


def test_final_statuses_are_pushed_signed_and_redelivered(receiver: Receiver) -> None:
    with MobizonEmulator(
        api_key=TEST_KEY,
        status_step=0.01,
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        webhook_redeliveries=2,
        webhook_retry_pause=0.01,
    ) as emu:
        ids = send(emu, 20)
        wait_for(lambda: emu.webhooks_outstanding() == 0, "every report delivered")
        deliveries = emu.webhook_deliveries()
        finals = {m.id: m.final_status for m in emu.messages()}

    attempts: dict[int, list[int]] = defaultdict(list)
    for delivery in deliveries:
        assert delivery.status == 200, delivery
        assert delivery.message_id is not None
        attempts[delivery.message_id].append(delivery.attempt)
    assert sorted(attempts) == sorted(ids)
    assert all(sorted(a) == [1, 2, 3] for a in attempts.values())
    assert len({d.event_id for d in deliveries}) == 20  # redeliveries keep the eventId
    with EventStore(receiver.options.store, create=False) as store:
        counts = store.counts()
        reports = store.reports_for(ids)
    assert (counts.events, counts.deliveries) == (20, 60)
    assert {i: r.status for i, r in reports.items()} == finals


def test_refused_events_are_retried_then_given_up(receiver: Receiver) -> None:
    with MobizonEmulator(
        api_key=TEST_KEY,
        status_step=0.01,
        webhook_url=receiver.url,
        webhook_secret="not-the-receivers-secret",
        webhook_retries=3,
        webhook_retry_pause=0.01,
    ) as emu:
        send(emu, 2)
        wait_for(lambda: emu.webhooks_outstanding() == 0, "the retries to run out")
        deliveries = emu.webhook_deliveries()

    assert sorted(d.attempt for d in deliveries) == [1, 1, 2, 2, 3, 3, 4, 4]
    assert {d.status for d in deliveries} == {403}
    with EventStore(receiver.options.store, create=False) as store:
        assert store.counts().events == 0


def test_an_unreachable_receiver_is_retried_like_a_refusal(tmp_path: Path) -> None:
    options = ReceiverOptions(store=tmp_path / "e.sqlite", secret=WEBHOOK_SECRET)
    gone = Receiver(options)
    url = gone.url
    gone.server.stop()
    gone.serve()  # stops at once and closes the port

    with MobizonEmulator(
        api_key=TEST_KEY,
        status_step=0.01,
        webhook_url=url,
        webhook_retries=1,
        webhook_retry_pause=0.01,
    ) as emu:
        send(emu, 1)
        wait_for(lambda: emu.webhooks_outstanding() == 0, "the retries to run out")
        deliveries = emu.webhook_deliveries()

    assert [(d.attempt, d.status) for d in deliveries] == [(1, 0), (2, 0)]
    assert deliveries[0].error


def test_numbers_sent_as_text_are_accepted(receiver: Receiver) -> None:
    with MobizonEmulator(
        api_key=TEST_KEY,
        status_step=0.01,
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        webhook_numbers_as_text=True,
        webhook_redeliveries=1,
        webhook_retry_pause=0.01,
    ) as emu:
        ids = send(emu, 5)
        wait_for(lambda: emu.webhooks_outstanding() == 0, "every report delivered")
        assert {d.status for d in emu.webhook_deliveries()} == {200}

    with EventStore(receiver.options.store, create=False) as store:
        assert sorted(store.reports_for(ids)) == ids


def test_nothing_is_pushed_without_a_url_and_the_backlog_goes_once_one_is_set(
    receiver: Receiver,
) -> None:
    with MobizonEmulator(api_key=TEST_KEY, status_step=0.01, webhook_retry_pause=0.01) as emu:
        ids = send(emu, 3)
        wait_for(
            lambda: all(emu.status_of(m)["status"] == m.final_status for m in emu.messages()),
            "every message final",
        )
        assert emu.webhook_deliveries() == []

        emu.configure(webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        wait_for(lambda: len(emu.webhook_deliveries()) == 3, "the backlog delivered")

    assert sorted(d.message_id for d in emu.webhook_deliveries() if d.message_id) == ids


def test_unsubscribe_events_reach_the_optout_list(receiver: Receiver, tmp_path: Path) -> None:
    with MobizonEmulator(
        api_key=TEST_KEY, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET
    ) as emu:
        emu.webhooks.push_unsubscribe([("EMAIL", "a@b.kz"), ("MOBILE", "77011234567")])
        wait_for(lambda: emu.webhooks_outstanding() == 0, "the event delivered")
        [delivery] = emu.webhook_deliveries()
    assert (delivery.event_type, delivery.status) == ("form-contact-unsubscribe", 200)

    optout = tmp_path / "optout.txt"
    assert export_optout(receiver.options.store, optout).added == 1
    assert optout.read_text() == "+77011234567\n"


def test_stopping_the_emulator_stops_the_deliveries(receiver: Receiver) -> None:
    emu = MobizonEmulator(
        api_key=TEST_KEY,
        status_step=0.01,
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
    )
    emu.start()
    send(emu, 3)
    emu.stop()
    delivered = len(emu.webhook_deliveries())

    assert emu.webhooks._thread is None and emu.webhooks._pool is None
    assert len(emu.webhook_deliveries()) == delivered


def test_the_emulator_command_pushes_to_the_webhook_url(receiver: Receiver) -> None:
    env = dict(os.environ, MOBIZON_WEBHOOK_SECRET=WEBHOOK_SECRET)
    command = [sys.executable, "-m", "mobizon_batch", "emulator", "--port", "0"]
    command += ["--api-key", TEST_KEY, "--status-step", "0.01", "--webhook-url", receiver.url]
    command += ["--webhook-redeliveries", "1"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        said = [process.stdout.readline() for _ in range(3)]  # the exports, then the webhook
        with MobizonClient(TEST_KEY, url) as api:
            message_id = api.send_sms("77011234567", "Hi").message_id

        def delivered_twice() -> bool:
            with EventStore(receiver.options.store, create=False) as store:
                return store.counts().deliveries == 2

        wait_for(delivered_twice, "the report and its redelivery")
    finally:
        out, err = stop(process)
    with EventStore(receiver.options.store, create=False) as store:
        assert list(store.reports_for([message_id])) == [message_id]
    assert f"delivery reports pushed to {receiver.url} (signed)" in said[-1]
    assert WEBHOOK_SECRET not in "".join(said) + out + err
