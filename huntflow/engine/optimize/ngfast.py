"""The same nevergrad, with two pieces of per-candidate bookkeeping skipped where they cannot
change anything (nevergrad 1.0.12; what the demo's NGOpt spends most of its tell and ask on).

* ``_CMA.es`` (the CMA under NGOpt's ``MetaModel``) builds a ``p.helpers.Normalizer`` of the
  parametrization every time it is read, only to choose the initial step size when it creates
  the strategy; it is read on every tell (``self.es.popsize``) and ask. :func:`_es` returns the
  strategy as upstream does while it exists and has not stopped (one ``stop()`` check, as
  upstream), and otherwise defers to upstream's property, which builds it exactly as before.
  The ``Normalizer`` draws nothing from the random state (its copies' uids come from ``uuid4``).
* ``Parameter.satisfies_constraints`` (called at each of NGOpt's three levels on every tell and
  ask) evaluates the parameter's value through its layers even when nothing uses it: without
  constraint checkers and without a tabu list the answer is its subparameters' answers alone.
  :func:`_satisfies_constraints` skips that evaluation for parameters whose layers are known to
  have no effect on being read twice (a bounded ``Array``, a ``Dict`` of constants, a
  ``Constant``; a bounded value out of bounds is folded back on its first read, and ``ask``
  reads every candidate's value itself before handing it out); anything else goes to upstream.

:func:`install` is idempotent; inside :func:`upstream` nevergrad is upstream's (tests compare the two:
tests/engine/test_optimize_metamodel.py asks the demo's batches both ways, bit for bit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_UPSTREAM: dict[str, Any] = {}
_PURE_STACKS: set[tuple[type, ...]] = set()


def _es(self: Any) -> Any:
    es = self._es
    if es is None or self.dimension == 1:  # upstream builds it (and, at dimension 1, sets fcmaes)
        return _UPSTREAM["es"].fget(self)
    if self._config.fcmaes or not es.stop():
        return es
    self._es = None  # stopped: upstream builds a new one (stop() was asked once, as upstream does)
    return _UPSTREAM["es"].fget(self)


def _pure(param: Any) -> bool:
    from nevergrad.parametrization import container, core

    stack = tuple(type(layer) for layer in param._layers)
    if stack in _PURE_STACKS:
        return True
    return stack == (container.Dict,) and all(type(v) is core.Constant for v in param._content.values())


def _satisfies_constraints(self: Any, ref: Any = None, no_tabu: bool = False) -> bool:
    tabu = not no_tabu and ref is not None and ref.tabu_length > 0 and self.tabu_fails < 30
    if self._constraint_checkers or tabu or not _pure(self):
        return _UPSTREAM["satisfies_constraints"](self, ref, no_tabu)
    return all(self._subobjects.apply("satisfies_constraints").values())


def install() -> None:
    """Point nevergrad at :func:`_es` and :func:`_satisfies_constraints` (idempotent; nothing
    inside :func:`upstream`)."""
    from nevergrad.optimization import optimizerlib
    from nevergrad.parametrization import _datalayers, _layering, core, data

    if _OFF:
        return
    if not _UPSTREAM:
        _UPSTREAM["es"] = optimizerlib._CMA.__dict__["es"]
        _UPSTREAM["satisfies_constraints"] = core.Parameter.satisfies_constraints
        _PURE_STACKS.update({(data.Array, _datalayers.Bound, _layering.ArrayCasting), (data.Array,),
                             (data.Array, _layering.ArrayCasting), (core.Constant,)})
    if optimizerlib._CMA.__dict__["es"].fget is not _es:
        optimizerlib._CMA.es = property(_es, doc=_UPSTREAM["es"].__doc__)
    core.Parameter.satisfies_constraints = _satisfies_constraints


_OFF = False


@contextlib.contextmanager
def upstream() -> Iterator[None]:
    """Upstream nevergrad inside the block (for comparisons); ours again after it."""
    global _OFF
    from nevergrad.optimization import optimizerlib
    from nevergrad.parametrization import core

    install()
    _OFF = True
    optimizerlib._CMA.es = _UPSTREAM["es"]
    core.Parameter.satisfies_constraints = _UPSTREAM["satisfies_constraints"]
    try:
        yield
    finally:
        _OFF = False
        install()
