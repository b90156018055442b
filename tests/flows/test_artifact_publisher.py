"""The background artifact publisher: jobs run in order, off the caller's thread, in the caller's
context; a newer job for the same key replaces one still waiting, a spaced key waits its turn;
flush runs and waits for all."""

from __future__ import annotations

import contextvars
import threading
import time

from huntflow.flows.artifacts import Publisher

WHO = contextvars.ContextVar("who", default="nobody")


def test_jobs_run_in_order_in_the_callers_context_and_a_waiting_key_is_replaced():
    pub, gate, ran = Publisher(), threading.Event(), []
    pub.submit(lambda: (gate.wait(10), ran.append(("first", threading.current_thread().name))))
    WHO.set("tick-1")
    pub.submit(lambda: ran.append(("batch", WHO.get())))  # no key: never replaced
    pub.submit(lambda: ran.append(("progress", 1)), key="campaign-a")
    WHO.set("tick-2")
    pub.submit(lambda: ran.append(("batch", WHO.get())))
    pub.submit(lambda: ran.append(("progress", 2)), key="campaign-a")  # replaces the waiting one
    gate.set()
    assert pub.flush(timeout=10)
    assert ran[0] == ("first", "huntflow-artifacts")
    assert ran[1:] == [("batch", "tick-1"), ("batch", "tick-2"), ("progress", 2)]


def test_a_failing_job_does_not_stop_the_ones_after_it_and_flush_times_out_honestly():
    pub, gate, ran = Publisher(), threading.Event(), []
    pub.submit(lambda: 1 / 0)
    pub.submit(lambda: ran.append("after"))
    assert pub.flush(timeout=10) and ran == ["after"]
    pub.submit(lambda: gate.wait(10))
    assert pub.flush(timeout=0.05) is False  # still running
    gate.set()
    assert pub.flush(timeout=10)


def _until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_spaced_key_waits_its_turn_without_holding_up_others_and_flush_runs_it_at_once():
    pub, ran = Publisher(), []

    def mark(what):
        return lambda: ran.append((what, time.monotonic()))

    pub.submit(mark("progress-1"), key="campaign-a", spacing=0.3)  # nothing ran for the key yet: at once
    assert _until(lambda: len(ran) == 1)
    pub.submit(mark("progress-2"), key="campaign-a", spacing=0.3)
    pub.submit(mark("progress-3"), key="campaign-a", spacing=0.3)  # replaces the waiting one
    pub.submit(mark("batch"))  # no key: not held up behind the spaced one
    assert _until(lambda: len(ran) == 3)
    assert [w for w, _ in ran] == ["progress-1", "batch", "progress-3"]
    assert ran[2][1] - ran[0][1] >= 0.3  # the key's next write came its spacing after the last
    pub.submit(mark("progress-4"), key="campaign-a", spacing=600)
    assert pub.flush(timeout=10) and ran[-1][0] == "progress-4"  # the run's end does not wait


def test_a_job_queued_while_its_key_still_runs_waits_its_spacing_after_that_run():
    """A slow API write must not let the next write of its key through at once (the spacing
    counts from the last run's end, read when the job is taken, not when it was queued)."""
    pub, started, gate, ran = Publisher(), threading.Event(), threading.Event(), []
    pub.submit(lambda: (started.set(), gate.wait(10), ran.append(("batch-1", time.monotonic()))),
               key="batch-a", spacing=600)
    assert started.wait(10)  # the first write is running (a slow API)
    pub.submit(lambda: ran.append(("batch-2", time.monotonic())), key="batch-a", spacing=600)
    gate.set()
    assert _until(lambda: len(ran) == 1)
    time.sleep(0.3)
    assert [w for w, _ in ran] == ["batch-1"]  # the second waits its 600 s, not 0
    assert pub.flush(timeout=10) and [w for w, _ in ran] == ["batch-1", "batch-2"]
