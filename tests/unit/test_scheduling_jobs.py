"""The scheduler's job settings: a late wake-up runs a job once, neither skipped nor replayed."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from monitor.service import JOB_DEFAULTS


def test_a_job_missed_for_an_hour_runs_once_not_six_times() -> None:
    runs: list[datetime] = []
    ran = threading.Event()

    def job() -> None:
        runs.append(datetime.now(UTC))
        ran.set()

    scheduler = BackgroundScheduler(job_defaults=JOB_DEFAULTS, timezone=UTC)
    # Due an hour ago, every 10 minutes: six runs were missed while the machine slept.
    scheduler.add_job(job, "interval", minutes=10, next_run_time=datetime.now(UTC) - timedelta(hours=1))
    scheduler.start()
    try:
        assert ran.wait(5), "the late job was skipped"
        time.sleep(1)
    finally:
        scheduler.shutdown()
    assert len(runs) == 1


def test_a_slow_job_never_overlaps_itself() -> None:
    running = 0
    overlaps = 0
    calls = 0
    lock = threading.Lock()

    def slow() -> None:
        nonlocal running, overlaps, calls
        with lock:
            running += 1
            calls += 1
            overlaps += running > 1
        time.sleep(0.5)
        with lock:
            running -= 1

    scheduler = BackgroundScheduler(job_defaults=JOB_DEFAULTS, timezone=UTC)
    scheduler.add_job(slow, "interval", seconds=0.1, next_run_time=datetime.now(UTC))
    scheduler.start()
    time.sleep(1.6)
    scheduler.shutdown()
    assert calls >= 2
    assert overlaps == 0
