"""``optimizer.options``: the names the hunt reads, their ranges, and the check run at
``campaign add`` so that a spec the optimizer would refuse at its first evolve never gets stored.

:func:`check` applies exactly the rules :class:`~huntflow.engine.optimize.hunt.Hunt` applies
when it starts (it calls the same :func:`share`, :func:`size`, ladder plan and prefilter
config), plus: every option name must be known (:data:`KNOWN`; a typo is an error, not a
silently ignored setting) and the two batch shares may not add up to more than 1.
"""

from __future__ import annotations

from typing import Any, Mapping

KNOWN: dict[str, str] = {
    "scalarization": "'hypervolume' (default) or 'chebyshev' (several objectives)",
    "exploit_share": "share of a search batch spent near the incumbent, in [0, 1]",
    "recover_share": "share of a search batch spent space-filling, in [0, 1]",
    "nsga2_size": "NSGA-II population size, integer >= 2",
    "max_in_flight": "generations asked but not told (default 2 on a pool, 1 inline), integer in [1, 64]",
    "prefilter": "true/false: the k-NN feasibility prefilter",
    "prefilter_threshold": "in [0, 1]",
    "prefilter_max_reject_fraction": "in [0, 1]",
    "prefilter_min_data": "integer >= 1",
    "prefilter_k": "integer >= 1",
    "duplicates": "'tell' (default: a repeated point is told its stored result) or 'drop'",
    "feasibility_first": "true/false: tell the total constraint violation until a search rung finds a feasible point",
}
SCALARIZATIONS = ("hypervolume", "chebyshev")
MAX_IN_FLIGHT = 64


def share(options: Mapping[str, Any], name: str, default: float) -> float:
    """A batch share option in ``[0, 1]``.

    Raises:
        ValueError: not a number in ``[0, 1]``.
    """
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"optimizer.options.{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def duplicate_policy(options: Mapping[str, Any]) -> str:
    """``duplicates``: ``tell`` (the default: a repeated point is told its stored result) or
    ``drop`` (told nothing; for benchmarks/search_spaces.py's comparison).

    Raises:
        ValueError: another value.
    """
    value = options.get("duplicates", "tell")
    if value not in ("tell", "drop"):
        raise ValueError(f"optimizer.options.duplicates must be 'tell' or 'drop', got {value!r}")
    return str(value)


def size(options: Mapping[str, Any], name: str, default: int, low: int = 2, high: int = 2**20) -> int:
    """An integer size option in ``[low, high]``.

    Raises:
        ValueError: not an integer in range.
    """
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not low <= int(value) <= high:
        raise ValueError(f"optimizer.options.{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def check(spec) -> list[tuple[str, str]]:
    """Every problem the hunt would raise at its first evolve, as ``(field, message)`` pairs."""
    from huntflow.engine.optimize import prefilter
    from huntflow.engine.optimize.ladder import plan_ladder

    errors: list[tuple[str, str]] = []
    options = dict(spec.optimizer.options)
    for name in sorted(set(options) - set(KNOWN)):
        errors.append((f"optimizer.options.{name}", f"unknown option (known: {', '.join(sorted(KNOWN))})"))

    def attempt(field: str, fn) -> Any:
        try:
            return fn()
        except (ValueError, TypeError, OverflowError) as e:
            errors.append((field, str(e).removeprefix(f"{field} ").removeprefix(f"{field}: ")))
            return None

    stages = attempt("budget.evaluations", lambda: plan_ladder(
        int(spec.budget.evaluations), [f.budget for f in spec.fidelities], [f.promote_top_k for f in spec.fidelities]))
    if stages is not None and not any(s.kind == "search" and s.count > 0 for s in stages):
        errors.append(("budget.evaluations", "the fidelity ladder leaves no evaluation to search with"))
    value = options.get("scalarization", "hypervolume")
    if value not in SCALARIZATIONS:
        errors.append(("optimizer.options.scalarization", f"must be one of {SCALARIZATIONS}, got {value!r}"))
    for name in ("prefilter", "feasibility_first"):
        if name in options and not isinstance(options[name], bool):
            errors.append((f"optimizer.options.{name}", f"must be true or false, got {options[name]!r}"))
    for name in ("prefilter_min_data", "prefilter_k"):
        if name in options:
            attempt(f"optimizer.options.{name}", lambda n=name: size(options, n, 1, low=1, high=10**6))
    attempt("optimizer.options", lambda: prefilter.PrefilterConfig.from_options(options))
    shares = [attempt(f"optimizer.options.{n}", lambda n=n: share(options, n, 0.0))
              for n in ("exploit_share", "recover_share")]
    if None not in shares and sum(shares) > 1.0:
        errors.append(("optimizer.options", f"exploit_share + recover_share must be <= 1, got {sum(shares)}"))
    if "nsga2_size" in options:
        attempt("optimizer.options.nsga2_size", lambda: size(options, "nsga2_size", 2, high=4096))
    attempt("optimizer.options.duplicates", lambda: duplicate_policy(options))
    if "max_in_flight" in options:
        attempt("optimizer.options.max_in_flight", lambda: size(options, "max_in_flight", 1, low=1, high=MAX_IN_FLIGHT))
    return errors
