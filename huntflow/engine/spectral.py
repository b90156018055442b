"""Batched 2-D discrete Fourier transforms written as XLA loop fusions (the CGL solver's FFT).

:class:`Fourier2D` transforms the two *leading* axes of a complex array of shape
``(N, N, *batch)``. It is a mixed-radix decimation-in-frequency Cooley–Tukey FFT (radix 4
first, then 2, 3, 5, 7) expressed in plain ``jax.numpy`` reshapes, slices, multiplies and
stacks, so that XLA compiles every radix stage into one elementwise loop over the whole batch:

* with the population on the last (contiguous) axis every stage vectorises over candidates,
  and XLA's CPU backend splits large loop fusions over its intra-op threads, so one generation
  uses every core (XLA's own FFT custom call runs one transform after another on one thread);
* the output is left in *digit-reversed* order along each axis (``order``: position i holds
  frequency ``order[i]``), which saves the reordering pass. A pseudo-spectral solver works in
  that order throughout: its diagonal operators are gathered into the same order once
  (:meth:`Fourier2D.take`), and :meth:`Fourier2D.natural` reorders a spectrum for analysis.

Stage algebra, for a sub-transform of length m = r·q with input blocks x_l[j] = x[j + l q]
(l < r, j < q) and ω_m = exp(−2πi/m)::

    y_d[j] = ω_m^{j d} · Σ_l x_l[j] ω_r^{l d}        (d < r)

after which each y_d is transformed recursively (length q). The inverse runs the stages in
reverse with conjugated roots, x_l[j] = Σ_d ω_r^{−l d} ω_m^{−j d} y_d[j] / r, then divides by N²
(``inverse`` matches ``numpy.fft.ifft2``'s normalisation, ``forward`` matches ``fft2``'s).

Grids whose size has a prime factor above 7, and ``fused=False``, use ``jnp.fft`` (XLA's FFT:
pocketfft/DUCC on the CPU, cuFFT on a GPU, where it is the better choice) in natural order.
Accuracy is that of a textbook FFT (error ~ ε log N; twiddles are computed in float64).
Both transforms are jitted functions, so eager callers dispatch one compiled call per
transform (inside an outer ``jit`` they are inlined).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

RADICES = (4, 2, 3, 5, 7)


def factor(n: int) -> tuple[int, ...] | None:
    """Radices of the stages for length ``n`` (4s first), or None if a prime factor exceeds 7."""
    out, m = [], n
    for r in RADICES:
        while m % r == 0 and m > 1:
            out.append(r)
            m //= r
    return tuple(out) if m == 1 else None


def _digit_reversed(radices: tuple[int, ...]) -> np.ndarray:
    """Frequency at each output position of the stages for ``radices`` (mixed-radix reversal).

    The first stage puts digit d of the frequency k = d + r·k' in front of a length-q
    sub-transform whose own output order holds k' (recursively).
    """
    order = np.zeros(1, np.int64)
    for r in reversed(radices):
        order = (np.arange(r)[:, None] + r * order[None, :]).ravel()
    return order


def _times(x, c: complex):
    """x · c for a constant c, with the exact shortcuts for ±1 and ±i."""
    rounded = complex(round(c.real, 12), round(c.imag, 12))
    if rounded == 1:
        return x
    if rounded == -1:
        return -x
    if rounded == 1j:
        return 1j * x
    if rounded == -1j:
        return -1j * x
    return x * complex(c)  # a Python complex is weakly typed: keeps x's precision under x64


class Fourier2D:
    """2-D DFT over the leading two axes of ``(N, N, *batch)`` complex arrays (see module doc)."""

    def __init__(self, n: int, cdtype=jnp.complex64, *, fused: bool = True):
        self.n = int(n)
        self.cdtype = jnp.dtype(cdtype)
        self.radices = factor(self.n) if fused else None
        self.plan = self._plan() if self.fused else ()
        # int32 index tables: an int64 NumPy index meets an int32 extent when x64 is off
        self.order = (_digit_reversed(self.radices) if self.fused else np.arange(self.n)).astype(np.int32)
        self._to_natural = np.argsort(self.order).astype(np.int32)
        self.forward = jax.jit(self._forward)
        self.inverse = jax.jit(self._inverse)

    @property
    def fused(self) -> bool:
        """True when the stages are our own loop fusions (False: the ``jnp.fft`` fallback)."""
        return self.radices is not None

    # -- the two transforms -------------------------------------------------------------
    def _forward(self, x):
        """Unnormalised DFT (``fft2`` convention) of x (N, N, ...), in ``order`` along both axes."""
        if not self.fused:
            return jnp.fft.fft2(x, axes=(0, 1))
        return self._axis(self._axis(x, 0), 1)

    def _inverse(self, x_hat):
        """Inverse of :meth:`forward` (``ifft2`` normalisation); the result is in natural order."""
        if not self.fused:
            return jnp.fft.ifft2(x_hat, axes=(0, 1))
        out = self._axis_inverse(self._axis_inverse(x_hat, 1), 0)
        return out * (1.0 / (self.n * self.n))

    # -- orderings --------------------------------------------------------------------
    def take(self, table: np.ndarray) -> np.ndarray:
        """Re-index an (N, N, ...) array given in natural frequency order into ``order``."""
        return np.asarray(table)[np.ix_(self.order, self.order)]

    def natural(self, x_hat):
        """Reorder a spectrum from ``order`` into natural (``fft2``) order, leading two axes."""
        if not self.fused:
            return x_hat
        return x_hat[self._to_natural][:, self._to_natural]

    def from_natural(self, x_hat):
        """Reorder a natural-order spectrum into ``order`` (inverse of :meth:`natural`)."""
        if not self.fused:
            return x_hat
        return x_hat[self.order][:, self.order]

    def _plan(self) -> tuple[tuple[int, int, int, np.ndarray], ...]:
        """(r, q, blocks, twiddles (r, q) complex128) of each forward stage."""
        out, m, blocks = [], self.n, 1
        for r in self.radices:
            q = m // r
            tw = np.exp(-2j * np.pi * np.outer(np.arange(r), np.arange(q)) / m)
            out.append((r, q, blocks, tw))
            m, blocks = q, blocks * r
        return tuple(out)

    def _twiddle(self, tw_row: np.ndarray, ndim_after: int):
        return jnp.asarray(tw_row.reshape((-1,) + (1,) * ndim_after), self.cdtype)

    def _axis(self, x, axis: int):
        pre, post = x.shape[:axis], x.shape[axis + 1 :]
        for r, q, blocks, tw in self.plan:
            xs = x.reshape(pre + (blocks, r, q) + post)
            parts = [xs[(slice(None),) * (axis + 1) + (l,)] for l in range(r)]
            outs = []
            for d in range(r):
                acc = parts[0]
                for l in range(1, r):
                    acc = acc + _times(parts[l], np.exp(-2j * np.pi * l * d / r))
                if d:
                    acc = acc * self._twiddle(tw[d], len(post))
                outs.append(acc)
            x = jnp.stack(outs, axis=axis + 1).reshape(pre + (self.n,) + post)
        return x

    def _axis_inverse(self, x, axis: int):
        pre, post = x.shape[:axis], x.shape[axis + 1 :]
        for r, q, blocks, tw in reversed(self.plan):
            xs = x.reshape(pre + (blocks, r, q) + post)
            parts = [xs[(slice(None),) * (axis + 1) + (d,)] for d in range(r)]
            parts = [parts[0]] + [parts[d] * self._twiddle(np.conj(tw[d]), len(post)) for d in range(1, r)]
            outs = []
            for l in range(r):
                acc = parts[0]
                for d in range(1, r):
                    acc = acc + _times(parts[d], np.exp(2j * np.pi * l * d / r))
                outs.append(acc)
            x = jnp.stack(outs, axis=axis + 1).reshape(pre + (self.n,) + post)
        return x
