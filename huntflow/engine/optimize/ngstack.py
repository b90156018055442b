"""NGOpt's ask and tell on the demo's optimizer stack with the repeated bookkeeping done once.

At the demo's size NGOpt runs ``MetaModel`` over ``CMA``: three nested ``base.Optimizer`` s
sharing one parametrization. Upstream every ask passes through three ``base.ask`` s and every
tell through three ``base.tell`` s, and each repeats the same per-candidate work: the
constraint check (always true here), the value read and freeze (no-ops after the first), the
candidate's standardized data (the same array at every level, the reference being shared).
:func:`ask` and :func:`tell` make exactly the state changes the nested calls make, in the same
order (counters, ``_asked`` sets, ``optim_curve``, each level's archive, ``current_bests``
and pruning, CMA's queue, told list and strategy updates, the metamodel's schedule), with
that work done once. They apply only to that stack in the state where upstream takes its
plain path (nevergrad 1.0.12 classes and methods, no callbacks, no suggestions, constraints
skipped at every level, a bounded ``Array`` without checkers or tabu list, a finite loss
below nevergrad's clipping); anything else goes to upstream's ``ask`` / ``tell`` unchanged.
tests/engine/test_optimize_metamodel.py compares candidates and state with upstream's.
"""

from __future__ import annotations

import math
from typing import Any

_CLS: dict[str, Any] = {}


def _classes() -> dict[str, Any]:
    if not _CLS:
        import nevergrad
        from nevergrad.optimization import base, optimizerlib
        from nevergrad.optimization import utils as outils
        from nevergrad.parametrization import core

        _CLS.update(version=nevergrad.__version__, base=base.Optimizer, NGOptBase=optimizerlib.NGOptBase,
                    MetaModel=optimizerlib._MetaModel, CMA=optimizerlib._CMA, optimizerlib=optimizerlib,
                    MultiValue=outils.MultiValue, Parameter=core.Parameter)
    return _CLS


def _plain(opt: Any) -> bool:
    return opt.skip_constraints and not opt._suggestions and not any(opt._callbacks.values()) \
        and opt.budget is not None and opt._hypervolume_pareto is None


def stack(ng: Any) -> tuple[Any, Any, Any] | None:
    """``(ngopt, metamodel, cma)`` when :func:`ask` / :func:`tell` apply to ``ng`` now, else None."""
    from huntflow.engine.optimize import ngfast

    c = _classes()
    if ngfast._OFF or c["version"] != "1.0.12" or not isinstance(ng, c["NGOptBase"]):
        return None
    mm = ng._optim
    if type(mm) is not c["MetaModel"] or mm.algorithm != "quad" or mm.degree != 2:
        return None
    cma = mm._optim
    if type(cma) is not c["CMA"] or cma._config.fcmaes or cma.dimension < 2:
        return None
    cls = type(ng)
    if cls._internal_ask_candidate is not c["NGOptBase"]._internal_ask_candidate \
            or cls._internal_tell_candidate is not c["NGOptBase"]._internal_tell_candidate \
            or cls._internal_tell_not_asked is not c["NGOptBase"]._internal_tell_not_asked \
            or cls.ask is not c["base"].ask or cls.tell is not c["base"].tell:
        return None
    par = ng.parametrization
    if mm.parametrization is not par or cma.parametrization is not par or par._constraint_checkers \
            or par.tabu_length or not ngfast._pure(par):
        return None
    if not (_plain(ng) and _plain(mm) and _plain(cma)):
        return None
    return ng, mm, cma


def _finish_ask(opt: Any, cand: Any) -> None:
    """The end of ``base.ask`` for a candidate that satisfies the constraints."""
    if cand.uid in opt._asked:
        raise RuntimeError("Cannot submit the same candidate twice: please recreate a new candidate from data.")
    opt._asked.add(cand.uid)
    opt._num_ask += 1


def _cma_ask(cma: Any) -> Any:
    cand = cma._internal_ask_candidate()  # its set_standardized_data read the value (Data does)
    _finish_ask(cma, cand)
    cand.freeze()
    return cand


def ask(st: tuple[Any, Any, Any]) -> Any:
    """``ng.ask()`` for ``st = stack(ng)`` (not None; see the module docstring)."""
    from nevergrad.optimization.metamodel import MetaModelFailure

    ng, mm, cma = st
    par = ng.parametrization
    par.tabu_fails = 0  # each level's base.ask resets it; nothing in between changes it
    d = mm.dimension
    sample_size = int((d * (d - 1)) / 2 + 2 * d + 1)
    freq = max(13, mm.num_workers, d, int(mm.frequency_ratio * sample_size))
    cand = None
    if len(mm.archive) >= sample_size and not mm._num_ask % freq:
        try:
            shape = par.value.shape
        except Exception:  # noqa: BLE001 -- upstream's bare except
            shape = None
        try:
            data = _CLS["optimizerlib"].learn_on_k_best(mm.archive, sample_size, mm.algorithm, mm.degree, shape, par)
            cand = par.spawn_child().set_standardized_data(data)
        except (OverflowError, MetaModelFailure):
            pass
    if cand is None:
        cand = _cma_ask(cma)  # read and frozen there (upstream's later reads and freezes change nothing)
    else:
        cand.value  # noqa: B018 -- a metamodel candidate's first read, then frozen
        cand.freeze()
    _finish_ask(mm, cand)
    _finish_ask(ng, cand)
    return cand


def _curve(opt: Any, loss: float) -> None:
    if not opt.optim_curve or opt._num_tell > opt.optim_curve[-1][0] * 1.1:
        opt.optim_curve += [(opt._num_tell, loss)]


def _archive(opt: Any, cand: Any, loss: float, key: bytes) -> None:
    """``base._update_archive_and_bests`` with the candidate's data bytes computed once."""
    bytesdict = opt.archive.bytesdict
    mvalue = bytesdict.get(key)
    if mvalue is None:
        bytesdict[key] = _CLS["MultiValue"](cand, loss, reference=opt.parametrization)
    else:
        mvalue.add_evaluation(loss)
        if mvalue.parameter.loss > cand.loss:
            mvalue.parameter = cand
    entry = bytesdict[key]
    bests = opt.current_bests
    for name in bests:
        if mvalue is bests[name]:  # reboot
            bests[name] = min(opt.archive.values(), key=lambda mv, n=name: mv.get_estimation(n))
        elif entry.get_estimation(name) <= bests[name].get_estimation(name):
            bests[name] = entry
    if opt.pruning is not None:
        opt.archive = opt.pruning(opt.archive)


def tell(ng: Any, cand: Any, loss: float) -> None:
    """``ng.tell(cand, loss)`` (see the module docstring); upstream's ``tell`` where it does not apply."""
    st = stack(ng)
    loss = float(loss)
    if st is None or not (math.isfinite(loss) and loss < 5.0e20) or not isinstance(cand, _CLS["Parameter"]) \
            or not cand.satisfies_constraints(ng.parametrization):
        ng.tell(cand, loss)  # (the constraint check has no side effect: no tabu list, see stack)
        return
    ng, mm, cma = st
    x = cand.get_standardized_data(reference=ng.parametrization)
    key = x.tobytes()
    levels = (ng, mm, cma)
    for opt in levels:  # each level's base.tell up to its own internal tell, outermost first
        _curve(opt, loss)
        opt.num_objectives = 1
        if opt is ng:
            cand.freeze()
        cand.loss = loss
        _archive(opt, cand, loss, key)
    if cma._CACHE_KEY not in cand._meta:
        cand._meta[cma._CACHE_KEY] = x
    cma._internal_tell_candidate(cand, loss)  # asked or not, CMA's tell pipeline is this
    for opt in reversed(levels):  # and back out: each level's bookkeeping after its inner tell
        if cand.uid in opt._asked:
            opt._asked.remove(cand.uid)
        else:
            opt._num_tell_not_asked += 1
        opt._num_tell += 1

