"""A trial's baseline rides with its first epoch's report when that epoch is quick, and
goes alone once the hold has passed, in order, never lost, never sent twice."""

import threading
import time
from pathlib import Path

import pytest

from sweeper.driver.baseline_hold import BaselineHold
from trainers.loop import Metrics

Sent = list[tuple[Metrics, Path | None, list[Metrics]]]
BASELINE: Metrics = {"epoch": 0, "top_1_accuracy": 0.1}
EPOCH_1: Metrics = {"epoch": 1, "top_1_accuracy": 0.3}
FOLDER = Path("/ckpt")


def recorder() -> tuple[Sent, BaselineHold]:
    sent: Sent = []
    return sent, BaselineHold(lambda m, f, e: sent.append((m, f, e)), hold_s=0.2)


def test_a_quick_first_epoch_carries_the_baseline_in_one_report() -> None:
    sent, hold = recorder()
    hold.report(BASELINE, None)
    assert sent == []
    hold.report(EPOCH_1, FOLDER)
    hold.report({"epoch": 2}, FOLDER)
    time.sleep(0.3)  # the cancelled timer sends nothing
    hold.flush()
    assert sent == [(EPOCH_1, FOLDER, [BASELINE]), ({"epoch": 2}, FOLDER, [])]


def test_a_slow_first_epoch_sends_the_baseline_alone_once_the_hold_has_passed() -> None:
    sent, hold = recorder()
    hold.report(BASELINE, None)
    time.sleep(0.4)
    assert sent == [(BASELINE, None, [])]
    hold.report(EPOCH_1, FOLDER)
    assert sent[1:] == [(EPOCH_1, FOLDER, [])]


def test_a_trial_that_fails_or_ends_sends_its_held_baseline_and_a_stopped_one_drops_it(
        ) -> None:
    sent, hold = recorder()
    hold.report(BASELINE, None)
    hold.flush()
    hold.flush()
    assert sent == [(BASELINE, None, [])]
    sent, hold = recorder()
    hold.report(BASELINE, None)
    hold.discard()
    time.sleep(0.3)
    assert sent == []


def test_a_resumed_trial_s_reports_and_a_baseline_with_a_checkpoint_pass_straight_through(
        ) -> None:
    sent, hold = recorder()
    hold.report(EPOCH_1, FOLDER)
    hold.report(BASELINE, FOLDER)
    assert sent == [(EPOCH_1, FOLDER, []), (BASELINE, FOLDER, [])]
    sent, never = [], BaselineHold(lambda m, f, e: sent.append((m, f, e)), hold_s=0)
    never.report(BASELINE, None)
    assert sent == [(BASELINE, None, [])]


def test_a_report_waits_for_the_timer_s_and_follows_it() -> None:
    sent: Sent = []
    entered, release = threading.Event(), threading.Event()

    def slow_send(m: Metrics, f: Path | None, e: list[Metrics]) -> None:
        if m["epoch"] == 0:  # the timer's report, waiting for the driver
            entered.set()
            release.wait(5)
        sent.append((m, f, e))

    hold = BaselineHold(slow_send, hold_s=0.05)
    hold.report(BASELINE, None)
    assert entered.wait(5)
    later = threading.Thread(target=hold.report, args=(EPOCH_1, FOLDER))
    later.start()
    time.sleep(0.1)
    assert sent == []  # epoch 1 waits behind the baseline
    release.set()
    later.join(5)
    assert sent == [(BASELINE, None, []), (EPOCH_1, FOLDER, [])]


def test_a_trial_stopped_while_the_timer_reported_stops_at_its_next_report() -> None:
    def stopped(m: Metrics, f: Path | None, e: list[Metrics]) -> None:
        raise SystemExit(0)  # what Ray's session does to a stopped trial's report

    hold = BaselineHold(stopped, hold_s=0.05)
    hold.report(BASELINE, None)
    time.sleep(0.2)
    with pytest.raises(SystemExit):
        hold.report(EPOCH_1, FOLDER)
