"""The in-process executor of inline generations: the next generation computes while the tick
parses, reviews, tells and asks the last one.

A loop that owns its process (``tick --until-done``, the demo, the benchmark) opens one
:class:`Executor` for its whole run under the loop's lease owner (:func:`executor_of` finds it
by owner). dispatch hands it the inline generations it marked ``dispatched`` (reference
``inline:<loop id>``) instead of running them as a plain call; one worker thread — one device
slot — evaluates them one at a time, in the order dispatch handed them over
(:func:`~huntflow.tasks.execute.begin_generation`, fenced by that reference like any inline
run; review's verification batches go ahead of the queued ones, since the tell that the next
asks wait for waits for them); a second thread records each one in the same order (its HDF5
artifact, its result document, ``succeeded``: the host's part) while the next one evaluates,
and says when one finished, so the tick waits on that instead of polling (:meth:`Executor.wait`).
The first generation of each campaign it sees starts a compile-ahead of the campaign's later
batch shapes (:class:`~huntflow.tasks.warmup.LoopWarmer`: verification batches, the budget's
remainder, promotions) behind the running generations; ``HUNTFLOW_COMPILE_AHEAD=0`` turns it off. The loop :meth:`drains <Executor.close>` it before it ends, so no
generation is left ``dispatched``.

What stays true: a generation's result is the same whichever path ran it (its seed and rows
were fixed by evolve's ask), evolve tells in ask order whatever finished first
(:mod:`huntflow.tasks.evolve`), and liveness is the loop's lease: its heartbeat session keeps
the campaign's lease across the loop's ticks while a generation of it is here; if the process
dies, the session's lock goes with it and the next tick of anyone requeues the generation
(dispatch, the reference is not that tick's).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from huntflow.tasks.execute import begin_generation
from huntflow.tasks.warmup import LoopWarmer

_log = logging.getLogger(__name__)
_REGISTRY: dict[str, "Executor"] = {}
_REGISTRY_LOCK = threading.Lock()


def executor_of(owner: str) -> Executor | None:
    """The open executor of the loop ``owner`` in this process, if any."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get(owner)


class Executor:
    """One device slot for inline generations (FIFO), owned by one loop (``owner``).

    ``with Executor(owner):`` opens it (registered for :func:`executor_of`) and drains it at the
    end; :meth:`submit` queues a generation, :meth:`wait` blocks until one of a campaign's
    generations has finished (or none is queued), :meth:`finished` hands back what finished.
    """

    def __init__(self, owner: str, runner: Callable[[str, str], Any] | None = None,
                 compile_ahead: bool | None = None) -> None:
        self.owner = owner
        self._runner = runner or (lambda gid, ref: begin_generation(gid, dispatch_ref=ref))
        if compile_ahead is None:  # the real runner: unless HUNTFLOW_COMPILE_AHEAD=0
            compile_ahead = runner is None and os.environ.get("HUNTFLOW_COMPILE_AHEAD", "1") != "0"
        self.warmer = LoopWarmer() if compile_ahead else None
        self._queue: collections.deque[tuple[UUID, str, str] | None] = collections.deque()
        self._records: collections.deque[tuple[UUID, str, Any] | None] = collections.deque()
        self._recorder: threading.Thread | None = None
        self._cond = threading.Condition()
        self._queued: dict[UUID, int] = {}  # campaign -> generations queued or running
        self._done: dict[UUID, list[dict[str, Any]]] = {}  # campaign -> results not yet handed back
        self._thread: threading.Thread | None = None
        self.ran = 0

    def __enter__(self) -> Executor:
        self._thread = threading.Thread(target=self._work, name=f"inline {self.owner}", daemon=True)
        self._recorder = threading.Thread(target=self._record, name=f"inline record {self.owner}", daemon=True)
        self._thread.start()
        self._recorder.start()
        with _REGISTRY_LOCK:
            _REGISTRY[self.owner] = self
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(abandon=exc_type is not None)

    def close(self, abandon: bool = False) -> None:
        """Run what is queued to its end, then stop the worker (the loop's end: nothing is left
        ``dispatched``). ``abandon`` (the loop is failing or interrupted): only the generation
        running now is finished; the queued ones stay ``dispatched`` under the loop's reference
        and the next tick of anyone requeues them without spending an attempt. Either way the
        compile-ahead starts nothing more, and a compile of it running is waited for at the end."""
        if self.warmer is not None:
            self.warmer.stop()
        if abandon:
            with self._cond:
                left = [item for item in self._queue if item is not None]
                self._queue.clear()
            for item in left:
                self._finish(item[0], {"generation_id": item[1], "status": "abandoned"})
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self.owner) is self:
                _REGISTRY.pop(self.owner)
        if self._thread is not None:
            with self._cond:
                self._queue.append(None)
                self._cond.notify_all()
            self._thread.join()
            self._thread = None
        if self._recorder is not None:
            with self._cond:
                self._records.append(None)
                self._cond.notify_all()
            self._recorder.join()
            self._recorder = None
        if self.warmer is not None:
            self.warmer.close()  # no new compile starts; one running now is waited for (see there)

    def submit(self, campaign_id: UUID, generation_id: str, dispatch_ref: str, first: bool = False) -> None:
        """Queue a generation; ``first``: ahead of the queued ones, after the one running now
        (review's verification batches: the tell the next asks wait for waits for them)."""
        if self.warmer is not None:
            self.warmer.see(campaign_id)  # its later shapes compiled behind this generation
        with self._cond:
            self._queued[campaign_id] = self._queued.get(campaign_id, 0) + 1
            item = (campaign_id, str(generation_id), dispatch_ref)
            if first:
                self._queue.appendleft(item)
            else:
                self._queue.append(item)
            self._cond.notify_all()

    def busy(self, campaign_id: UUID | None = None) -> bool:
        """Whether a generation (of ``campaign_id``, or of any campaign) is queued or running."""
        with self._cond:
            if campaign_id is None:
                return any(self._queued.values())
            return self._queued.get(campaign_id, 0) > 0

    def wait(self, campaign_id: UUID, timeout: float | None = None) -> bool:
        """Block until a generation of the campaign finished that :meth:`finished` has not
        handed back yet, or none of its generations is here (True), or ``timeout`` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done.get(campaign_id) or not self._queued.get(campaign_id),
                                       timeout=timeout)

    def wait_past(self, ran: int, timeout: float | None = None) -> bool:
        """Block until more than ``ran`` generations have run here in all, or nothing is queued."""
        with self._cond:
            return self._cond.wait_for(lambda: self.ran > ran or not any(self._queued.values()), timeout=timeout)

    def finished(self, campaign_id: UUID) -> list[dict[str, Any]]:
        """The results of the campaign's generations that finished since the last call."""
        with self._cond:
            return self._done.pop(campaign_id, [])

    def _work(self) -> None:
        """The device's side: start a generation and evaluate its batch; what is left of it
        (the runner may return it as a call: the artifact, the result document, ``succeeded``)
        goes to :meth:`_record`, so the next generation evaluates meanwhile."""
        while (item := self._take(self._queue)) is not None:
            campaign_id, gid, ref = item
            try:
                result = self._runner(gid, ref)
            except Exception as e:  # begin_generation gave the attempt back (or failed it) already
                result = _failed(gid, e)
            except BaseException as e:  # never leave a waiter hanging
                self._hand_over(campaign_id, gid, _failed(gid, e))
                raise
            self._hand_over(campaign_id, gid, result)

    def _take(self, items: collections.deque) -> Any:
        """The next item of ``items`` (waiting for one); None: the thread's end."""
        with self._cond:
            self._cond.wait_for(lambda: items)
            return items.popleft()

    def _hand_over(self, campaign_id: UUID, gid: str, result: Any) -> None:
        with self._cond:  # in the order they ran: results are handed back in that order
            self._records.append((campaign_id, gid, result))
            self._cond.notify_all()

    def _record(self) -> None:
        """The host's side: finish what :meth:`_work` evaluated, one at a time, in order."""
        while (item := self._take(self._records)) is not None:
            campaign_id, gid, result = item
            try:
                if callable(result):
                    result = result()
            except Exception as e:  # the call gave the attempt back (or failed it) already
                result = _failed(gid, e)
            except BaseException as e:
                self._finish(campaign_id, _failed(gid, e))
                raise
            self._finish(campaign_id, result)

    def _finish(self, campaign_id: UUID, result: dict[str, Any]) -> None:
        with self._cond:
            self.ran += 1
            self._queued[campaign_id] = max(0, self._queued.get(campaign_id, 0) - 1)
            self._done.setdefault(campaign_id, []).append(result)
            self._cond.notify_all()


def _failed(gid: str, e: BaseException) -> dict[str, Any]:
    """The summary of a generation whose run or recording raised ``e`` (an ``Exception`` is
    logged with its message; anything else — an interrupt — is named only)."""
    if not isinstance(e, Exception):
        return {"generation_id": gid, "status": "error", "error": type(e).__name__}
    _log.warning("inline generation %s failed: %s: %s", gid, type(e).__name__, e)
    return {"generation_id": gid, "status": "error", "error": f"{type(e).__name__}: {e}"}
