"""Plain values for the report: strict-JSON copies of rows, and Markdown-safe text and numbers."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np

FORMAT = "huntflow.report/1"
SEVERITIES = ("critical", "high", "medium", "low")
STAGES = ("discover", "dispatch", "parse", "review", "evolve", "learn")
IMPROVEMENT_TOL = 1e-12
TOP_FINDINGS = 5
MAX_TRAJECTORY_ROWS = 25
MAX_FRONT_ROWS = 20
MAX_MESSAGE = 240

Row = dict[str, Any]


def jsonable(value: Any) -> Any:
    """A strict-JSON copy: datetimes as ISO strings, UUIDs as strings, non-finite floats as
    ``None``, numpy scalars and arrays as Python values, bytes dropped (``None``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (UUID, Path)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return (end - start).total_seconds()
    return None


# --- Markdown cells ----------------------------------------------------------------------------
def num(v: Any) -> str:
    """A number for people: 6 significant digits; ``—`` for none."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return text(v)


def text(v: Any) -> str:
    """Free text safe inside a Markdown table cell (no pipes, newlines, markup or HTML)."""
    s = " ".join(str(v).split())
    for ch in "\\`*_[]<>|":
        s = s.replace(ch, "\\" + ch)
    return s


def code(v: Any) -> str:
    """An identifier or path as a code span."""
    return "`" + " ".join(str(v).split()).replace("`", "'") + "`"


def value(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return code(json.dumps(v, sort_keys=True))
    return num(v)


def when(v: Any) -> str:
    if not v:
        return "—"
    try:
        t = dt.datetime.fromisoformat(str(v))
    except ValueError:
        return text(v)
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
        return t.strftime("%Y-%m-%d %H:%M:%S UTC")
    return t.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 172800:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.3g} %"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def pick(n: int, keep: list[int], limit: int) -> list[int]:
    """Indices to show of ``n`` rows: ``keep`` (first, last, changes) thinned to ``limit``."""
    idx = sorted(set(keep))
    if len(idx) <= limit:
        return idx
    step = (len(idx) - 1) / (limit - 1)
    return sorted({idx[round(i * step)] for i in range(limit)})
