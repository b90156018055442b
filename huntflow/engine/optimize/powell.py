"""scipy's Powell, as the quad metamodel calls it, without its per-evaluation overhead.

:func:`minimize` returns what ``scipy.optimize.minimize(f, x0, method="Powell",
options={"maxiter": maxiter}, tol=0)`` returns as ``(res.x, res.fun)`` (scipy 1.17: no
bounds, ``xtol = ftol = 0``, ``maxfev`` unset, the default ``direc``): the same line searches
(``bracket`` from 0 and 1, then Brent with ``tol = 0``), the same floating-point operations in
the same order on plain floats instead of numpy scalars (both IEEE doubles, so every
intermediate is the same), and the same points handed to ``f``. What it drops is scipy's
per-call machinery (``OptimizeResult`` objects, option validation, wrapper closures, numpy
scalar arithmetic), about three quarters of the metamodel's Powell time at 4 parameters.
tests/engine/test_optimize_metamodel.py checks it against scipy on random quadratics.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

_GOLD = 1.618034
_VERYSMALL = 1e-21
_CG = 0.3819660
_MINTOL = 1.0e-11
_XTOL = 0  # scipy's ``tol=0`` (an int: ``0 * inf`` is nan there too)
_FTOL = 0


def _bracket(f: Callable[[float], float]) -> tuple:
    """scipy's ``bracket(f)`` (``xa=0, xb=1, grow_limit=110, maxiter=1000``); a failed
    bracket returns ``(False, xs, fs)`` like the ``BracketError`` scipy raises."""
    xa, xb = 0.0, 1.0
    fa = f(xa)
    fb = f(xb)
    if fa < fb:
        xa, xb = xb, xa
        fa, fb = fb, fa
    xc = xb + _GOLD * (xb - xa)
    fc = f(xc)
    it = 0
    while fc < fb:
        tmp1 = (xb - xa) * (fb - fc)
        tmp2 = (xb - xc) * (fb - fa)
        val = tmp2 - tmp1
        denom = 2.0 * _VERYSMALL if abs(val) < _VERYSMALL else 2.0 * val
        w = xb - ((xb - xc) * tmp2 - (xb - xa) * tmp1) / denom
        wlim = xb + 110.0 * (xc - xb)
        if it > 1000:
            raise RuntimeError("No valid bracket was found before the iteration limit was reached.")
        it += 1
        if (w - xc) * (xb - w) > 0.0:
            fw = f(w)
            if fw < fc:
                xa, xb, fa, fb = xb, w, fb, fw
                break
            elif fw > fb:
                xc, fc = w, fw
                break
            w = xc + _GOLD * (xc - xb)
            fw = f(w)
        elif (w - wlim) * (wlim - xc) >= 0.0:
            w = wlim
            fw = f(w)
        elif (w - wlim) * (xc - w) > 0.0:
            fw = f(w)
            if fw < fc:
                xb, xc = xc, w
                w = xc + _GOLD * (xc - xb)
                fb, fc = fc, fw
                fw = f(w)
        else:
            w = xc + _GOLD * (xc - xb)
            fw = f(w)
        xa, xb, xc = xb, xc, w
        fa, fb, fc = fb, fc, fw
    ok = ((fb < fc and fb <= fa) or (fb < fa and fb <= fc)) and (xa < xb < xc or xc < xb < xa) \
        and math.isfinite(xa) and math.isfinite(xb) and math.isfinite(xc)
    return ok, (xa, xb, xc), (fa, fb, fc)


def _brent(f: Callable[[float], float]) -> tuple[float, float]:
    """``_recover_from_bracket_error(_minimize_scalar_brent, f, None, (), xtol=0)``: (x, fun)."""
    ok, (xa, xb, xc), fs = _bracket(f)
    if not ok:
        xs = (xa, xb, xc)
        if any(math.isnan(v) for v in (*xs, *fs)):
            return math.nan, math.nan
        imin = int(np.argmin(fs))
        return xs[imin], fs[imin]
    fb = fs[1]
    x = w = v = xb
    fw = fv = fx = fb
    a, b = (xa, xc) if xa < xc else (xc, xa)
    deltax = 0.0
    rat = 0.0  # scipy leaves it unbound until first set (always before use)
    it = 0
    while it < 500:
        tol1 = _XTOL * abs(x) + _MINTOL
        tol2 = 2.0 * tol1
        xmid = 0.5 * (a + b)
        if abs(x - xmid) < (tol2 - 0.5 * (b - a)):
            break
        if abs(deltax) <= tol1:
            deltax = a - x if x >= xmid else b - x
            rat = _CG * deltax
        else:
            tmp1 = (x - w) * (fx - fv)
            tmp2 = (x - v) * (fx - fw)
            p = (x - v) * tmp2 - (x - w) * tmp1
            tmp2 = 2.0 * (tmp2 - tmp1)
            if tmp2 > 0.0:
                p = -p
            tmp2 = abs(tmp2)
            dx_temp = deltax
            deltax = rat
            if (p > tmp2 * (a - x)) and (p < tmp2 * (b - x)) and (abs(p) < abs(0.5 * tmp2 * dx_temp)):
                rat = p * 1.0 / tmp2
                u = x + rat
                if (u - a) < tol2 or (b - u) < tol2:
                    rat = tol1 if xmid - x >= 0 else -tol1
            else:
                deltax = a - x if x >= xmid else b - x
                rat = _CG * deltax
        if abs(rat) < tol1:
            u = x + tol1 if rat >= 0 else x - tol1
        else:
            u = x + rat
        fu = f(u)
        if fu > fx:
            if u < x:
                a = u
            else:
                b = u
            if (fu <= fw) or (w == x):
                v, w, fv, fw = w, u, fw, fu
            elif (fu <= fv) or (v == x) or (v == w):
                v, fv = u, fu
        else:
            if u >= x:
                a = x
            else:
                b = x
            v, w, x = w, x, u
            fv, fw, fx = fw, fx, fu
        it += 1
    return x, fx


def _linesearch(func: Callable[[np.ndarray], float], p: np.ndarray, xi: np.ndarray, fval: float) -> tuple:
    """scipy's ``_linesearch_powell`` without bounds: (fval, new point, step)."""
    if not np.any(xi):
        return fval, p, xi
    alpha, fret = _brent(lambda alpha: func(p + alpha * xi))
    xi = alpha * xi
    return fret, p + xi, xi


def minimize(func: Callable[[np.ndarray], Any], x0: np.ndarray, maxiter: int) -> tuple[np.ndarray, float]:
    """``(res.x, res.fun)`` of scipy's Powell from ``x0`` (see the module docstring). ``func``
    gets fresh arrays it may keep (scipy hands it a copy; here every point is a new array)."""
    x = np.asarray(x0, dtype=float).flatten()
    n = len(x)
    direc = np.eye(n, dtype=float)
    fval = func(x)
    x1 = x.copy()
    it = 0
    while True:
        fx = fval
        bigind = 0
        delta = 0.0
        for i in range(n):
            fx2 = fval
            fval, x, _ = _linesearch(func, x, direc[i], fval)
            if (fx2 - fval) > delta:
                delta = fx2 - fval
                bigind = i
        it += 1
        bnd = _FTOL * (abs(fx) + abs(fval)) + 1e-20
        if 2.0 * (fx - fval) <= bnd:
            break
        if it >= maxiter:
            break
        if math.isnan(fx) and math.isnan(fval):
            break
        direc1 = x - x1
        x1 = x.copy()
        x2 = x + 1 * direc1
        fx2 = func(x2)
        if fx > fx2:
            t = 2.0 * (fx + fx2 - 2.0 * fval)
            temp = (fx - fval - delta)
            t *= temp * temp
            temp = fx - fx2
            t -= delta * temp * temp
            if t < 0.0:
                fval, x, direc1 = _linesearch(func, x, direc1, fval)
                if np.any(direc1):
                    direc[bigind] = direc[-1]
                    direc[-1] = direc1
    return x, fval
