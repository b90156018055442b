"""The same nevergrad, with per-candidate bookkeeping skipped where it cannot
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
  A ``Dict`` of ``Constant`` s without checkers answers True without asking each constant.
* ``Parameter.freeze`` runs 9 times per candidate (ask and tell at three levels, three archive
  entries), each walking the subparameters: :func:`_freeze` returns at once for an already
  frozen parameter of those same layer stacks (only ``freeze`` sets ``_frozen``, and it froze
  the subparameters then; a copy starts unfrozen).
* ``Subobjects.items`` (how every walk over subparameters finds them) is a generator over the
  parameter's ``__dict__``; :func:`_items` builds the same pairs as a list, in the same order.

:func:`install` is idempotent; inside :func:`upstream` nevergrad is upstream's (tests compare the two:
tests/engine/test_optimize_metamodel.py asks the demo's batches both ways, bit for bit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_UPSTREAM: dict[str, Any] = {}
_CLS: dict[str, type] = {}
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
    if type(self) is _CLS["Dict"] and all(not v._constraint_checkers for v in self._content.values()):
        return True  # a Dict of Constants without checkers (_pure): every answer below is True
    return all(self._subobjects.apply("satisfies_constraints").values())


def _freeze(self: Any) -> None:
    if self._frozen and _pure(self):
        return  # frozen before, with its subparameters (only freeze() sets _frozen; copies unset it)
    _UPSTREAM["freeze"](self)


def _items(self: Any) -> list:
    """``Subobjects.items`` as a list (upstream yields the same pairs from a generator)."""
    container = getattr(self.obj, self.attribute)
    cls = self.cls
    if isinstance(container, dict):
        return [(key, val) for key, val in container.items() if isinstance(val, cls)]
    if isinstance(container, list):
        return [(key, val) for key, val in enumerate(container) if isinstance(val, cls)]
    raise TypeError("Subcaller only work on list and dict")


def installed() -> bool:
    """Whether nevergrad points at this module's functions now (cheap: no imports)."""
    return bool(_CLS) and not _OFF and _CLS["Parameter"].freeze is _freeze \
        and _CLS["Parameter"].satisfies_constraints is _satisfies_constraints \
        and _CLS["Subobjects"].items is _items and _CLS["_CMA"].__dict__["es"].fget is _es


def install() -> None:
    """Point nevergrad at :func:`_es`, :func:`_satisfies_constraints`, :func:`_freeze` and
    :func:`_items` (idempotent; nothing inside :func:`upstream`)."""
    if installed():
        return
    from nevergrad.optimization import optimizerlib
    from nevergrad.parametrization import _datalayers, _layering, container, core, data, utils

    if _OFF:
        return
    if not _UPSTREAM:
        _UPSTREAM["es"] = optimizerlib._CMA.__dict__["es"]
        _UPSTREAM["satisfies_constraints"] = core.Parameter.satisfies_constraints
        _UPSTREAM["freeze"] = core.Parameter.freeze
        _UPSTREAM["items"] = utils.Subobjects.items
        _CLS.update(Dict=container.Dict, Parameter=core.Parameter, Subobjects=utils.Subobjects,
                    _CMA=optimizerlib._CMA)
        _PURE_STACKS.update({(data.Array, _datalayers.Bound, _layering.ArrayCasting), (data.Array,),
                             (data.Array, _layering.ArrayCasting), (core.Constant,)})
    if optimizerlib._CMA.__dict__["es"].fget is not _es:
        optimizerlib._CMA.es = property(_es, doc=_UPSTREAM["es"].__doc__)
    core.Parameter.satisfies_constraints = _satisfies_constraints
    core.Parameter.freeze = _freeze
    utils.Subobjects.items = _items


_OFF = False


@contextlib.contextmanager
def upstream() -> Iterator[None]:
    """Upstream nevergrad inside the block (for comparisons); ours again after it."""
    global _OFF
    from nevergrad.optimization import optimizerlib
    from nevergrad.parametrization import core, utils

    install()
    _OFF = True
    optimizerlib._CMA.es = _UPSTREAM["es"]
    core.Parameter.satisfies_constraints = _UPSTREAM["satisfies_constraints"]
    core.Parameter.freeze = _UPSTREAM["freeze"]
    utils.Subobjects.items = _UPSTREAM["items"]
    try:
        yield
    finally:
        _OFF = False
        install()
