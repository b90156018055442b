"""One external candidate's outcome, and the checks that turn raw output into metrics or a failure.

Every failure is data: ``category`` is what the evaluation row stores as ``failure_category``
(``timeout``, ``exception``, ``exit_code``, ``invalid_output``, ``nonfinite`` or a category the
simulator named itself), ``detail`` a small JSON object saying what happened (exception type,
message and traceback tail; exit code and stderr tail; what was found instead of a metric).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huntflow.engine.models.base import Status

TAIL = 2000
"""Characters of stderr / traceback kept in a failure detail."""

CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
BUILTIN = {s.failure_category: s for s in Status if s is not Status.OK}


@dataclass
class Outcome:
    """metrics: declared name -> float (NaN where not available); category None when ok."""

    metrics: dict[str, float]
    category: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    tries: int = 1

    @property
    def status(self) -> Status:
        if self.category is None:
            return Status.OK
        return BUILTIN.get(self.category, Status.FAILED)


def failed(declared: tuple[str, ...], category: str, **detail: Any) -> Outcome:
    return Outcome({m: math.nan for m in declared}, category, {k: v for k, v in detail.items() if v is not None})


def tail(text: str | bytes | None, n: int = TAIL) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text[-n:]


def read_tail(path: Path, n: int = TAIL) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4 * n))
            return tail(f.read(), n)
    except OSError:
        return ""


def own_category(value: Any) -> str | None:
    """A simulator-named category, if ``value`` is a valid one (else None)."""
    if isinstance(value, str) and CATEGORY.match(value):
        return value
    return None


def check_metrics(raw: Any, declared: tuple[str, ...]) -> Outcome:
    """Metrics from what a simulator returned (a dict of numbers; see ``worker._convert``).

    Missing, non-numeric or non-dict output -> ``invalid_output`` saying what was found;
    NaN/inf in a declared metric -> ``nonfinite``. Undeclared keys are ignored.
    """
    if not isinstance(raw, dict) or "not_a_dict" in raw and "repr" in raw and len(raw) == 2:
        found = raw.get("repr") if isinstance(raw, dict) else repr(raw)[:500]
        kind = raw.get("not_a_dict") if isinstance(raw, dict) else type(raw).__name__
        return failed(declared, "invalid_output", message=f"expected a mapping of metric name -> number, got {kind}",
                      found=found)
    category = own_category(raw.get("failure_category"))
    if category is not None:
        return failed(declared, category, message=str(raw.get("message") or "")[:TAIL] or None)
    missing = [m for m in declared if m not in raw]
    bad = {m: raw[m]["invalid"] for m in declared
           if isinstance(raw.get(m), dict) and "invalid" in raw[m]}
    bad.update({m: repr(raw[m])[:200] for m in declared if m in raw and m not in bad
                and (isinstance(raw[m], (bool, str)) or not isinstance(raw[m], (int, float)))})
    if missing or bad:
        parts = []
        if missing:
            parts.append(f"missing metric(s) {missing}")
        if bad:
            parts.append(f"non-numeric metric(s) {sorted(bad)}")
        found = {k: (v if isinstance(v, (int, float)) and not isinstance(v, bool) else
                     (v["invalid"] if isinstance(v, dict) and "invalid" in v else repr(v)[:200]))
                 for k, v in list(raw.items())[:20]}
        return failed(declared, "invalid_output", message="; ".join(parts), found=found)
    metrics = {m: float(raw[m]) for m in declared}
    nonfinite = sorted(m for m, v in metrics.items() if not math.isfinite(v))
    if nonfinite:
        return Outcome(metrics, "nonfinite", {"message": f"non-finite metric(s) {nonfinite}",
                                              "found": {m: repr(metrics[m]) for m in nonfinite}})
    return Outcome(metrics)
