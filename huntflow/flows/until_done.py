"""``tick --until-done``: tick while work moves; otherwise wait, saying for what, or stop.

After a tick that moved nothing (:func:`huntflow.store.waits.progress_key` unchanged) the loop
asks :func:`decide` what the active campaigns wait for:

* another live tick holds a lease — sleep until it lapses (at most ``poll`` seconds), no tick;
* Slurm jobs queued or running, pool runs in flight — sleep ``poll`` seconds, then tick;
* only people can move them (pending gates, kits out) — stop, exit code 3;
* nothing visible (a stage failing on each tick) — sleep ``poll`` seconds: the failure streak
  (:mod:`huntflow.tasks.poison`) fails the campaign after a few ticks.

When no selected campaign is active any more the loop stops: exit code 1 when a campaign that
was active when it started has failed (the message carries its reason), else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_FAILED = 1
EXIT_WAITING_FOR_PEOPLE = 3


@dataclass(frozen=True)
class Verdict:
    """What the loop does next: ``tick``, ``sleep`` (``seconds``; ``tick_after``: tick once
    slept) or ``stop`` (with ``exit_code``); ``message`` says why."""

    action: str
    message: str = ""
    seconds: float = 0.0
    tick_after: bool = True
    exit_code: int = 0


def finished(rows: list[dict[str, Any]], started_active: set[str]) -> Verdict | None:
    """The stop verdict when no selected campaign is active, else None."""
    if any(r["status"] == "active" for r in rows):
        return None
    failed = [r for r in rows if r["status"] == "failed" and r["slug"] in started_active]
    if failed:
        lines = "; ".join(f"campaign {r['slug']} failed: {r['completion_reason']}" for r in failed)
        return Verdict("stop", lines, exit_code=EXIT_FAILED)
    return Verdict("stop")


def decide(blocked: list[dict[str, Any]], poll: float) -> Verdict:
    """The verdict after a tick that moved nothing; ``blocked`` from
    :func:`huntflow.store.waits.blockers` (active campaigns only)."""
    poll = max(0.05, float(poll))
    leased = [b for b in blocked if b["lease_left"] is not None]
    slurm = sum(b["slurm"] for b in blocked)
    pool = sum(b["pool"] for b in blocked)
    gates = sum(b["gates_pending"] for b in blocked)
    kits = sum(b["kits_out"] for b in blocked)
    if leased and len(leased) == len(blocked):
        left = min(b["lease_left"] for b in leased)
        who = ", ".join(f"{b['slug']} ({b['lease_owner']}, {b['lease_left']:.0f} s left)" for b in leased)
        return Verdict("sleep", f"waiting for the lease held by another tick: {who}",
                       seconds=min(poll, left + 0.1), tick_after=False)
    if slurm or pool:
        parts = [f"{slurm} slurm job(s) queued or running"] if slurm else []
        parts += [f"{pool} pool run(s) in flight"] if pool else []
        return Verdict("sleep", "waiting for " + ", ".join(parts), seconds=poll)
    if (gates or kits) and all(b["gates_pending"] or b["kits_out"] or b["lease_left"] is not None for b in blocked):
        parts = [f"{gates} pending gate(s); see `huntflow gate list`"] if gates else []
        parts += [f"{kits} kit(s) out; see `huntflow kit list`, then `huntflow kit import`"] if kits else []
        return Verdict("stop", "waiting for a decision: " + "; ".join(parts), exit_code=EXIT_WAITING_FOR_PEOPLE)
    errors = [f"{b['slug']}: {b['last_error']}" for b in blocked if b["last_error"] and b["failure_streak"]]
    why = f"no progress in the last tick ({'; '.join(errors)})" if errors else "no progress in the last tick"
    return Verdict("sleep", f"{why}; ticking again in {poll:g} s", seconds=poll)
