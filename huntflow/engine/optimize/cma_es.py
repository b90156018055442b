"""The same CMA-ES for nevergrad's ``_CMA`` (what NGOpt's ``MetaModel`` runs), without
rebuilding a ``Normalizer`` on every access.

Upstream's ``_CMA.es`` property (nevergrad 1.0.12, ``optimization/optimizerlib.py``) builds a
``p.helpers.Normalizer`` of the parametrization each time it is read, only to choose the initial
step size when it creates the strategy; it is read on every tell (``self.es.popsize``) and ask,
and the ``Normalizer`` spawns and checks two parameter copies (~0.4 ms): about a quarter of the
demo's NGOpt tell and ask. :func:`install` wraps the property: while a strategy exists and has
not stopped, it returns it as upstream does (one ``stop()`` check, as upstream); otherwise it
defers to upstream's property, which then builds the strategy exactly as before. The
``Normalizer`` draws nothing from the parametrization's random state (its copies' uids come from
``uuid4``), so the points asked are bit for bit upstream's (tests/engine/test_optimize_metamodel.py).
"""

from __future__ import annotations

from typing import Any

_UPSTREAM: Any = None


def _es(self: Any) -> Any:
    es = self._es
    if es is None or self.dimension == 1:  # upstream builds it (and, at dimension 1, sets fcmaes)
        return _UPSTREAM.fget(self)
    if self._config.fcmaes or not es.stop():
        return es
    self._es = None  # stopped: upstream builds a new one (stop() was already asked, once, as upstream does)
    return _UPSTREAM.fget(self)


def install() -> None:
    """Point nevergrad's ``_CMA.es`` at :func:`_es` (idempotent)."""
    global _UPSTREAM
    from nevergrad.optimization import optimizerlib

    current = optimizerlib._CMA.__dict__["es"]
    if current.fget is _es:
        return
    _UPSTREAM = current
    optimizerlib._CMA.es = property(_es, doc=current.__doc__)
