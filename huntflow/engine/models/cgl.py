"""Nonlocal complex Ginzburg–Landau (CGL) on a periodic square: pseudo-spectral ETD solver.

Equation, for a complex field A(x, t) on x ∈ [0, L)² with periodic boundaries::

    ∂t A = A + (1 + iα) ∇²A − (1 + iβ) |A|² A + κ (K_ℓ * A − A) + σ ξ

``K_ℓ`` is the unit-mass Gaussian kernel of width ℓ, so in Fourier space K̂_ℓ(k) = exp(−ℓ²|k|²/2)
and the nonlocal term vanishes on a uniform field. ``ξ`` is complex space-time white noise,
⟨ξ(x, t) ξ*(x', t')⟩ = δ(x − x') δ(t − t'). With Â the (unnormalised, ``fft2``) Fourier
coefficients on an N×N grid, k = 2π/L · (integer wavevector), the equation splits into a diagonal
linear part and the cubic nonlinearity::

    ∂t Â = Λ(k) Â + N̂(A),   Λ(k) = 1 − (1 + iα)|k|² + κ (exp(−ℓ²|k|²/2) − 1),
                             N(A) = −(1 + iβ) |A|² A.

Time stepping (step h = ``dt``) is exponential time differencing: ``etdrk4`` (Cox & Matthews
2002, fourth order; default) or ``etdrk2`` (Cox & Matthews, second order). The φ-functions of
z = hΛ are evaluated by the Kassam–Trefethen (2005) contour mean over M = 16 points on the unit
circle around z, which has no cancellation as z → 0 and is accurate in float32. Noise is added
after each deterministic step, Â ← Â + σ √h · N²/L · η̂ with η̂ standard complex normal
(E|η̂|² = 1), the Fourier image of an Euler–Maruyama increment of variance h/(L/N)² per cell
(strong order ½ in the noise). No dealiasing; runs are judged by ``h_norm`` below.

Plane waves A = a exp(i(q·x − ωt)) are exact solutions for σ = 0 when
a² = 1 − |q|² + κ (exp(−ℓ²|q|²/2) − 1) > 0 and ω = α|q|² + β a² (the tests check both).
The uniform state (q = 0) is linearly stable iff 1 + αβ > 0 (Benjamin–Feir–Newell).

Metrics of the final field (``metrics``; m = 4 primes p = 2, 3, 5, 7):
  energy        E = ⟨|A|²⟩ = Σ_k |Â|² / N⁴  (mean over the domain).
  max_amp       max_x |A|.
  log_prime_sse radial spectrum S(s) = mean of |Â(k)|²/N⁴ over the shell round(|k|L/2π) = s,
                s = 0..N/2. Peaks are shells 1 ≤ s ≤ N/2 with S(s) > S(s−1) (not tested at s = 1)
                and S(s) ≥ S(s+1) (not tested at s = N/2) and S(s) ≥ 10⁻³ max_{s≥1} S. The m
                strongest peaks (fixed-size top-k), refined by a parabola through log S at
                s−1, s, s+1 (offset clipped to ±½; none at the ends), sorted ascending
                p₁ < … < p_n (n ≤ m found). Each peak has a soft weight w ∈ [0, 1], the product of
                a power ramp clip(log(S/(10⁻³ S_max)) / ln 10, 0, 1) (0 at the floor, 1 from
                10⁻² S_max up) and a prominence ramp clip(min(ln S(s)/S(s−1), ln S(s)/S(s+1)) /
                ln 1.25, 0, 1) (the s−1 term dropped at s = 1, the s+1 term at s = N/2), so a peak
                that is born from a shoulder or sinks to the floor fades in/out continuously.
                With ratios r_j = p_j/p₁, targets t_j = ln(prime_j)/ln 2 = 1, 1.585, 2.322,
                2.807, pair weights v_j = w₁ w_j (v_j = 0 for a missing peak j > n) and
                c = ``MISS_COST`` = 1::
                    log_prime_sse = Σ_{j=2..m} [ v_j ρ(r_j − t_j) + (1 − v_j) c ],
                    ρ(d) = c d² / (c + d²)   (≈ d² for |d| ≪ 1, < c always).
                So 0 for a perfect log-prime spectrum, ≈ Σ (r_j − t_j)² near it, 3c with no
                usable second peak, and a misplaced peak never costs more than a missing one.
  h_norm        the PDE residual of one extra noise-free step A_N → A_{N+1} from the final
                field, at the midpoint Ā = (A_N + A_{N+1})/2 (Fourier norms, Parseval)::
                    h_norm = ‖(Â_{N+1} − Â_N)/h − Λ Ā̂ − N̂(Ā)‖ / (‖Λ Ā̂ + N̂(Ā)‖ + ‖Ā̂‖)
                the second denominator term (unit rate × amplitude) keeps steady states finite.
                A trustworthy run has h_norm ≪ 1; it grows like h² × (time scale)⁻².

Status (per candidate, never raised): INVALID_PARAMS if a parameter is non-finite, ℓ ≤ 0 or
σ < 0; else BLOWUP if max|A| at any record point or at the end exceeds ``blowup`` or is not
finite (a diverged state); else NONFINITE if a metric is not finite (e.g. h_norm of a zero field);
else OK. Metrics of INVALID_PARAMS are NaN.

Searched or fixed parameters (defaults when neither): alpha 0, beta 0, kappa 0, ell 1, sigma 0.
Other ``fixed`` options: ``L`` (domain side, 40), ``amp0`` (initial noise amplitude: A₀ = amp0·η
with η standard complex normal per cell, drawn from the key; 0.1), ``blowup`` (100).
Fidelity settings: ``grid`` N (even, ≥ 8; 32), ``steps`` (200), ``dt`` (0.05), ``record_every``
(max(1, steps // 50)), ``scheme`` (``etdrk4``), ``fft`` (``auto``: ``fused`` on the CPU, ``xla``
elsewhere). ``fused`` is :class:`~huntflow.engine.spectral.Fourier2D`'s own batched FFT with
the population on the last axis (the whole generation in every vectorised loop, all CPU cores
busy); ``xla`` is XLA's FFT under ``vmap`` (cuFFT on a GPU). The two agree to rounding
(~1e-6 relative in float32); results are reproducible for a fixed choice and backend.
Extras: ``field_re``/``field_im`` (final A, spectrally truncated to at most 64×64),
``energy_series``/``amp_series`` (E and max|A| every ``record_every`` steps), ``radial_spectrum``
S(s) (N/2+1,), ``peak_wavenumbers`` (m,) |k| of the sorted peaks (NaN where missing).

Review perturbations: ``half_dt`` (default; dt/2 with twice the steps, same physical time and
initial field, cost ×2), ``noise_key`` (default when σ ≠ 0: another noise realisation) and
``fine_grid`` (opt-in, ``review.perturbations``: twice the grid points per side, cost ~×4.5).
Tolerances (measured in benchmarks/RESULTS.md, "review"): ``h_norm`` scales like h², so it only
has to stay below its constraint; the pattern metrics may move as much as a chaotic field does
between two accurate step sizes, but not by the jump of a step-size artefact.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from huntflow.engine.models.base import CandidateResult, Perturbation, Status, Tolerance
from huntflow.engine.spectral import Fourier2D

PARAMS: dict[str, float] = {"alpha": 0.0, "beta": 0.0, "kappa": 0.0, "ell": 1.0, "sigma": 0.0}
OPTIONS: dict[str, float] = {"L": 40.0, "amp0": 0.1, "blowup": 100.0}
FIDELITY: dict[str, Any] = {
    "grid": 32, "steps": 200, "dt": 0.05, "record_every": None, "scheme": "etdrk4", "fft": "auto",
}
FFTS = ("auto", "fused", "xla")
METRICS = ("log_prime_sse", "h_norm", "energy", "max_amp")
TOLERANCES: dict[str, Tolerance] = {
    "log_prime_sse": Tolerance(rtol=0.5, atol=0.25),
    "h_norm": Tolerance(rtol=0.9, atol=1e-3),
    "energy": Tolerance(rtol=0.3, atol=1e-3),
    "max_amp": Tolerance(rtol=0.3, atol=1e-3),
}
PRIMES = (2, 3, 5, 7)
PEAK_FLOOR = 1e-3
PEAK_FULL = 1e-2
PEAK_PROMINENCE = 1.25
MISS_COST = 1.0
CONTOUR_POINTS = 16
MAX_STORED_GRID = 64
MAX_GRID = 8192  # 8192² complex cells: 1 GiB per field and candidate in float64
MAX_STEPS = 10**8


class CGLParams(NamedTuple):
    """Physical parameters of one candidate, each a scalar of the real dtype."""

    alpha: jax.Array
    beta: jax.Array
    kappa: jax.Array
    ell: jax.Array
    sigma: jax.Array


class CGLState(NamedTuple):
    """Solver state of one candidate, or of a batch of P on a *trailing* axis.

    The grid axes come first so that a population sits on the last, contiguous axis: every
    elementwise loop and FFT stage then vectorises over candidates, and per-candidate scalars
    (β, σ) broadcast against fields without reshaping. Spectral arrays are in the order of the
    solver's :class:`~huntflow.engine.spectral.Fourier2D` (``CGL.fourier.order`` along each
    axis), not ``fft2``'s natural order; :meth:`CGL.spectrum` returns the natural-order Â.

    a_hat: (N, N, *B) complex — Fourier coefficients Â of A (unnormalised, transform order).
    t:     ()  real — simulated time.
    key:   B   PRNG keys — split once per step when the run is noisy.
    lin:   (N, N, *B) complex — Λ(k).
    coef:  tuple of (N, N, *B) complex — ETD coefficients: etdrk4 (E, E½, Q, f1, f2, f3),
           etdrk2 (E, hφ1, hφ2).
    beta, sigma: B real — the parameters the step uses outside Λ.

    B is () for one candidate and (P,) for a batch (at most one batch axis).
    """

    a_hat: jax.Array
    t: jax.Array
    key: jax.Array
    lin: jax.Array
    coef: tuple[jax.Array, ...]
    beta: jax.Array
    sigma: jax.Array


def simulate(step: Callable, state: Any, *, steps: int, record_every: int, observe: Callable):
    """Generic driver: ``steps`` applications of ``step``; ``observe(state)`` every ``record_every``.

    Returns ``(final_state, records)``; ``records`` is ``observe``'s pytree with a leading axis
    of length ``steps // record_every`` (the remainder steps run after the last record).
    """
    n_records, rest = divmod(steps, record_every)

    def one(s, _):
        return step(s), None

    def chunk(s, _):
        s, _ = jax.lax.scan(one, s, None, length=record_every)
        return s, observe(s)

    state, records = jax.lax.scan(chunk, state, None, length=n_records)
    if rest:
        state, _ = jax.lax.scan(one, state, None, length=rest)
    return state, records


@dataclass(frozen=True)
class CGL:
    """A static solver configuration; its methods are pure functions of the state.

    n: grid points per side; length: domain side L; dt: step h; scheme: etdrk4 | etdrk2;
    noisy: whether the step draws noise (False compiles the noise out); dtype: real dtype name;
    fft: fused | xla (see :class:`~huntflow.engine.spectral.Fourier2D`).
    """

    n: int = 32
    length: float = 40.0
    dt: float = 0.05
    scheme: str = "etdrk4"
    noisy: bool = False
    dtype: str = "float32"
    fft: str = "fused"

    @property
    def cdtype(self):
        return jnp.complex128 if self.dtype == "float64" else jnp.complex64

    @property
    def fourier(self) -> Fourier2D:
        """The batched 2-D FFT over the grid axes (its ``order`` is the solver's spectral order)."""
        return _fourier(self.n, self.dtype, self.fft == "fused")

    def _shells(self) -> tuple[np.ndarray, np.ndarray]:
        """The U distinct values of |k|² (U,) and the (N, N) index of each mode into them.

        The index is in the solver's spectral order (``fourier.order`` along both axes).
        """
        m = np.fft.fftfreq(self.n, 1.0 / self.n).astype(np.int64)
        uniq, inverse = np.unique(m[:, None] ** 2 + m[None, :] ** 2, return_inverse=True)
        return uniq * (2 * np.pi / self.length) ** 2, self.fourier.take(inverse.reshape(self.n, self.n))

    def linear(self, params: CGLParams) -> jax.Array:
        """Λ(k), shape (N, N, *B) complex (spectral order)."""
        k2, inverse = self._shells()
        return self._lambda(params, k2)[inverse]

    def _lambda(self, params: CGLParams, k2: np.ndarray) -> jax.Array:
        """Λ at each |k|² of ``k2`` (U,) for parameters of shape B: (U, *B) complex."""
        k2 = jnp.asarray(k2, self.dtype).reshape((-1,) + (1,) * jnp.ndim(params.alpha))
        nonlocal_ = params.kappa * (jnp.exp(-0.5 * params.ell**2 * k2) - 1.0)
        return (1.0 - k2 + nonlocal_) - 1j * params.alpha * k2

    def coefficients(self, params: CGLParams) -> tuple[jax.Array, ...]:
        """ETD coefficients of z = hΛ, each (N, N, *B) complex (spectral order).

        Λ depends on |k|² only, so the Kassam–Trefethen contour means are taken once per
        distinct |k|² (U ≈ N²/7 values) and gathered onto the grid.
        """
        k2, inverse = self._shells()
        h = self.dt
        z = (h * self._lambda(params, k2)).astype(self.cdtype)
        theta = np.pi * (np.arange(1, CONTOUR_POINTS + 1) - 0.5) / CONTOUR_POINTS
        r = z[..., None] + jnp.asarray(np.exp(2j * theta), self.cdtype)

        er, ir = jnp.exp(r), 1.0 / r
        if self.scheme == "etdrk2":
            integrands = [(er - 1.0) * ir, (er - 1.0 - r) * ir * ir]
        else:
            ir3 = ir * ir * ir
            integrands = [
                (jnp.exp(r / 2) - 1.0) * ir,
                (-4.0 - r + er * (4.0 - 3.0 * r + r * r)) * ir3,
                (2.0 + r + er * (r - 2.0)) * ir3,
                (-4.0 - 3.0 * r - r * r + er * (4.0 - r)) * ir3,
            ]
        means = h * jnp.mean(jnp.stack(integrands), axis=-1)  # one fused reduction
        coef = (jnp.exp(z), *means) if self.scheme == "etdrk2" else (jnp.exp(z), jnp.exp(z / 2), *means)
        return tuple(c[inverse] for c in coef)

    def nonlinear(self, a_hat: jax.Array, beta: jax.Array) -> jax.Array:
        """N̂(A) = F(−(1 + iβ)|A|²A), shape (N, N, *B) complex (F: ``fourier.forward``)."""
        a = self.fourier.inverse(a_hat)
        mod2 = a.real**2 + a.imag**2
        return self.fourier.forward(-(1.0 + 1j * beta) * mod2 * a)

    def complex_normal(self, key: jax.Array) -> jax.Array:
        """(N, N, *B) standard complex normal η (E|η|² = 1), one draw of 2N² reals per key.

        One ``normal`` call instead of ``jax.random.normal(..., complex)`` (which splits the key
        and draws twice): the same distribution at half the threefry code to compile. A batch
        of keys (P,) draws each candidate's field from its own key, exactly as one key would.
        """

        def draw(k):
            z = jax.random.normal(k, (2, self.n, self.n), self.dtype)
            return (z[0] + 1j * z[1]).astype(self.cdtype) * math.sqrt(0.5)

        return draw(key) if key.ndim == 0 else jnp.moveaxis(jax.vmap(draw)(key), 0, -1)

    def init(self, params: CGLParams, *, key: jax.Array, amp0: float = 0.1, field=None) -> CGLState:
        """Initial state: A₀ = ``field`` (N, N) complex if given, else amp0·η (η complex normal).

        ``key`` has the batch shape B (() or (P,)), as do the ``params`` leaves.
        """
        key, sub = _split(key)
        if field is None:
            field = amp0 * self.complex_normal(sub)
        field = jnp.broadcast_to(jnp.asarray(field, self.cdtype), (self.n, self.n) + key.shape)
        lin = self.linear(params)
        return CGLState(
            a_hat=self.fourier.forward(field),
            t=jnp.zeros((), self.dtype),
            key=key,
            lin=lin,
            coef=self.coefficients(params),
            beta=jnp.asarray(params.beta, self.dtype),
            sigma=jnp.asarray(params.sigma, self.dtype),
        )

    def deterministic(self, state: CGLState) -> jax.Array:
        """One noise-free ETD step of Â; returns the new Â, shape (N, N) complex."""
        v, c, nl = state.a_hat, state.coef, self.nonlinear
        nv = nl(v, state.beta)
        if self.scheme == "etdrk2":
            e, p1, p2 = c
            a = e * v + p1 * nv
            return a + p2 * (nl(a, state.beta) - nv)
        e, e2, q, f1, f2, f3 = c
        a = e2 * v + q * nv
        na = nl(a, state.beta)
        b = e2 * v + q * na
        nb = nl(b, state.beta)
        cc = e2 * a + q * (2.0 * nb - nv)
        nc = nl(cc, state.beta)
        return e * v + f1 * nv + 2.0 * f2 * (na + nb) + f3 * nc

    def step(self, state: CGLState) -> CGLState:
        """Advance one step h (deterministic ETD step, then the noise increment if noisy)."""
        a_hat, key = self.deterministic(state), state.key
        if self.noisy:
            key, sub = _split(key)
            eta = self.complex_normal(sub)
            a_hat = a_hat + (state.sigma * math.sqrt(self.dt) * self.n**2 / self.length) * eta
        return state._replace(a_hat=a_hat, t=state.t + self.dt, key=key)

    def field(self, state: CGLState) -> jax.Array:
        """The field A on the grid, (N, N, *B) complex."""
        return self.fourier.inverse(state.a_hat)

    def spectrum(self, state: CGLState) -> jax.Array:
        """Â in ``fft2``'s natural order, (N, N, *B) complex."""
        return self.fourier.natural(state.a_hat)

    def observe(self, state: CGLState) -> dict[str, jax.Array]:
        """Cheap per-record observables: energy ⟨|A|²⟩ and max|A| (shape B)."""
        return {"energy": _energy(state.a_hat), "max_amp": jnp.max(jnp.abs(self.field(state)), axis=(0, 1))}

    def h_norm(self, state: CGLState) -> jax.Array:
        """Relative PDE residual of one extra noise-free step (see the module docstring)."""
        nxt = self.deterministic(state)
        mid = 0.5 * (state.a_hat + nxt)
        rhs = state.lin * mid + self.nonlinear(mid, state.beta)
        resid = (nxt - state.a_hat) / self.dt - rhs
        return _norm(resid) / (_norm(rhs) + _norm(mid))

    def metrics(self, state: CGLState) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """(metrics, extras) of the final state (see the module docstring).

        Metrics have shape B; extras have the batch axis first (P, ...) like every result.
        """
        natural = self.spectrum(state)
        spectral = _each(lambda a: spectrum_metrics(a, self.length), natural)
        metrics = {
            "log_prime_sse": spectral["log_prime_sse"],
            "h_norm": self.h_norm(state),
            "energy": _energy(state.a_hat),
            "max_amp": jnp.max(jnp.abs(self.field(state)), axis=(0, 1)),
        }
        small = _each(lambda a: truncate(a, MAX_STORED_GRID), natural)
        extras = {
            "field_re": small.real,
            "field_im": small.imag,
            "radial_spectrum": spectral["radial_spectrum"],
            "peak_wavenumbers": spectral["peak_wavenumbers"],
        }
        return metrics, extras


@functools.lru_cache(maxsize=None)
def _fourier(n: int, dtype: str, fused: bool) -> Fourier2D:
    return Fourier2D(n, jnp.complex128 if dtype == "float64" else jnp.complex64, fused=fused)


def _split(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``jax.random.split`` of one key () or of each of a batch of keys (P,)."""
    if key.ndim == 0:
        new, sub = jax.random.split(key)
        return new, sub
    both = jax.vmap(jax.random.split)(key)
    return both[:, 0], both[:, 1]


def _each(fn: Callable, x: jax.Array):
    """``fn`` of one candidate's (N, N) array, mapped over a trailing batch axis if there is one.

    The results carry the batch axis first (the layout of every result the engine returns).
    """
    return fn(x) if x.ndim == 2 else jax.vmap(fn, in_axes=-1)(x)


def _norm(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(x.real**2 + x.imag**2, axis=(0, 1)))


def _energy(a_hat: jax.Array) -> jax.Array:
    n = a_hat.shape[0]
    return jnp.sum(a_hat.real**2 + a_hat.imag**2, axis=(0, 1)) / n**4


def truncate(a_hat: jax.Array, m: int) -> jax.Array:
    """The field A on an m×m grid by keeping the |index| < m/2 Fourier modes, (m, m) complex.

    Returns the full field unchanged when N ≤ m.
    """
    n = a_hat.shape[-1]
    if n <= m:
        return jnp.fft.ifft2(a_hat)
    idx = np.fft.fftfreq(m, 1.0 / m).astype(int) % n
    return jnp.fft.ifft2(a_hat[np.ix_(idx, idx)]) * (m * m) / (n * n)


def _shell_matrix(n: int) -> np.ndarray:
    """(N², N/2+1) averaging matrix: column s averages the modes with round(|m|) = s."""
    m = np.fft.fftfreq(n, 1.0 / n)
    shell = np.rint(np.sqrt(m[:, None] ** 2 + m[None, :] ** 2)).astype(int).ravel()
    s = n // 2 + 1
    mat = np.zeros((n * n, s))
    inside = shell < s
    mat[np.flatnonzero(inside), shell[inside]] = 1.0
    return mat / np.maximum(mat.sum(axis=0), 1.0)


def spectrum_metrics(a_hat: jax.Array, length: float) -> dict[str, jax.Array]:
    """Radial spectrum, sorted peaks and ``log_prime_sse`` of Â (N, N) complex.

    Returns radial_spectrum (N/2+1,), peak_wavenumbers (m,) with NaN where missing, and the
    scalar log_prime_sse, all of Â's real dtype (module docstring gives the definitions).
    """
    n = a_hat.shape[-1]
    power = (a_hat.real**2 + a_hat.imag**2).ravel() / n**4
    spec = power @ jnp.asarray(_shell_matrix(n), a_hat.real.dtype)
    return {"radial_spectrum": spec, **peak_metrics(spec, length)}


def peak_metrics(spec: jax.Array, length: float) -> dict[str, jax.Array]:
    """``peak_wavenumbers`` (m,) and ``log_prime_sse`` () of a radial spectrum S (N/2+1,).

    Soft-weighted and bounded (module docstring): a peak that is born, dies or sinks under the
    power floor moves ``log_prime_sse`` continuously instead of by a whole missing-peak term.
    """
    real = spec.dtype
    s = spec.shape[0]
    inner = spec[1:]
    left = jnp.concatenate([jnp.full((1,), -jnp.inf, real), inner[:-1]])
    right = jnp.concatenate([inner[1:], jnp.full((1,), -jnp.inf, real)])
    is_peak = (inner > left) & (inner >= right) & (inner >= PEAK_FLOOR * jnp.max(inner)) & (inner > 0)
    m = len(PRIMES)
    log_s = jnp.log(jnp.maximum(inner, jnp.finfo(real).tiny))
    # soft weight of every shell as a peak: power ramp × prominence ramp, each in [0, 1]
    log_floor = math.log(PEAK_FLOOR) + jnp.max(log_s)
    w_power = jnp.clip((log_s - log_floor) / math.log(PEAK_FULL / PEAK_FLOOR), 0.0, 1.0)
    big = jnp.full((1,), jnp.inf, real)
    drop_left = jnp.concatenate([big, log_s[1:] - log_s[:-1]])  # no left test at s = 1
    drop_right = jnp.concatenate([log_s[:-1] - log_s[1:], big])  # no right test at s = N/2
    prominence = jnp.minimum(drop_left, drop_right)
    w_prom = jnp.clip(prominence / math.log(PEAK_PROMINENCE), 0.0, 1.0)
    weight = jnp.where(is_peak, w_power * w_prom, 0.0)
    _, top = jax.lax.top_k(jnp.where(is_peak, log_s, -jnp.inf), m)
    found = is_peak[top]
    y0 = log_s[top]
    ym = log_s[jnp.clip(top - 1, 0, s - 2)]
    yp = log_s[jnp.clip(top + 1, 0, s - 2)]
    curv = ym - 2.0 * y0 + yp
    offset = jnp.where(curv < 0, 0.5 * (ym - yp) / jnp.where(curv < 0, curv, -1.0), 0.0)
    interior = (top > 0) & (top < s - 2)
    pos = (top + 1).astype(real) + jnp.where(interior, jnp.clip(offset, -0.5, 0.5), 0.0)
    order = jnp.argsort(jnp.where(found, pos, jnp.inf))
    pos, w, present = pos[order], weight[top][order], found[order]
    ratios = jnp.where(present, pos / jnp.where(present[0], pos[0], 1.0), 0.0)
    targets = jnp.asarray([math.log(p) / math.log(2) for p in PRIMES], real)
    err2 = (ratios[1:] - targets[1:]) ** 2
    bounded = MISS_COST * err2 / (MISS_COST + err2)
    v = w[0] * w[1:]  # a pair counts only as much as both of its peaks
    sse = jnp.sum(v * bounded + (1.0 - v) * MISS_COST)
    k_peaks = jnp.where(present, pos * (2 * math.pi / length), jnp.nan)
    return {"peak_wavenumbers": k_peaks, "log_prime_sse": sse}


def metrics_from_extras(extras: Mapping[str, np.ndarray], *, length: float, grid: int) -> dict[str, np.ndarray]:
    """Recompute metrics of P candidates from their stored extras (NumPy in, (P,) float64 out).

    ``log_prime_sse`` always (from ``radial_spectrum`` (P, N/2+1)); ``energy`` and ``max_amp``
    only when the stored field (P, M, M) is at full resolution (M = grid).
    """
    spec = jnp.asarray(np.asarray(extras["radial_spectrum"]))
    out = {"log_prime_sse": np.asarray(jax.vmap(lambda sp: peak_metrics(sp, length)["log_prime_sse"])(spec), np.float64)}
    if "field_re" in extras and np.shape(extras["field_re"])[-1] == grid:
        amp2 = np.asarray(extras["field_re"], np.float64) ** 2 + np.asarray(extras["field_im"], np.float64) ** 2
        out["energy"] = amp2.mean(axis=(-2, -1))
        out["max_amp"] = np.sqrt(amp2.max(axis=(-2, -1)))
    return out


def _settings(param_names, fixed, fidelity) -> dict[str, Any]:
    values = {**PARAMS, **OPTIONS, **FIDELITY, **dict(fixed), **dict(fidelity)}
    if values["record_every"] is None:
        values["record_every"] = max(1, int(values["steps"]) // 50)
    return values


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) or (
        isinstance(v, float) and v.is_integer()
    )


@dataclass(frozen=True)
class CGLModel:
    """The ``cgl`` model: the Model protocol around :class:`CGL`."""

    name: str = "cgl"

    def metric_names(self, param_names, fixed) -> tuple[str, ...]:
        return METRICS

    def known_optimum(self, param_names, fixed):
        return None

    def perturbations(self, param_names, fixed, fidelity) -> tuple[Perturbation, ...]:
        s = _settings(param_names, fixed, fidelity)
        dt, steps, grid = float(s["dt"]), int(s["steps"]), int(s["grid"])
        half = {"dt": dt / 2, "steps": 2 * steps}
        if "record_every" in fidelity and fidelity["record_every"] is not None:
            half["record_every"] = 2 * int(fidelity["record_every"])
        out = [Perturbation("half_dt", f"the time step halved (dt {dt:g} -> {dt / 2:g}, {2 * steps} steps)",
                            fidelity=half, cost=2.0),
               Perturbation("fine_grid", f"twice the grid points per side ({grid} -> {2 * grid})",
                            fidelity={"grid": 2 * grid}, cost=4.5, default=False)]
        noisy = "sigma" in param_names or float(s["sigma"]) != 0.0
        out.append(Perturbation("noise_key", "another noise realisation", reseed=True, default=noisy))
        return tuple(out)

    def tolerances(self, param_names, fixed) -> dict[str, Tolerance]:
        return dict(TOLERANCES)

    def validate(self, param_names, fixed, fidelity) -> None:
        for p in param_names:
            if p not in PARAMS:
                raise ValueError(f"parameter {p!r}: unknown for cgl (known: {', '.join(PARAMS)})")
        if len(set(param_names)) != len(param_names):
            raise ValueError("cgl: parameter names must be unique")
        for k, v in dict(fixed).items():
            if k not in PARAMS and k not in OPTIONS:
                raise ValueError(f"fixed.{k}: unknown option for cgl (known: {', '.join([*PARAMS, *OPTIONS])})")
            if k in param_names:
                raise ValueError(f"fixed.{k}: is also a searched parameter")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"fixed.{k}: must be a finite number, got {v!r}")
        for k in dict(fidelity):
            if k not in FIDELITY:
                raise ValueError(f"fidelity setting {k!r}: unknown for cgl (known: {', '.join(FIDELITY)})")
        s = _settings(param_names, fixed, fidelity)
        if not _is_int(s["grid"]) or not 8 <= int(s["grid"]) <= MAX_GRID or int(s["grid"]) % 2:
            raise ValueError(f"fidelity setting 'grid': must be an even integer in [8, {MAX_GRID}], got {s['grid']!r}")
        if not _is_int(s["steps"]) or not 1 <= int(s["steps"]) <= MAX_STEPS:
            raise ValueError(f"fidelity setting 'steps': must be an integer in [1, {MAX_STEPS:.0e}], got {s['steps']!r}")
        if not _is_int(s["record_every"]) or not 1 <= int(s["record_every"]) <= int(s["steps"]):
            raise ValueError(f"fidelity setting 'record_every': must be an integer in [1, steps], got {s['record_every']!r}")
        if isinstance(s["dt"], bool) or not isinstance(s["dt"], (int, float)) or not 0 < s["dt"] < math.inf:
            raise ValueError(f"fidelity setting 'dt': must be a positive number, got {s['dt']!r}")
        if s["scheme"] not in ("etdrk4", "etdrk2"):
            raise ValueError(f"fidelity setting 'scheme': must be 'etdrk4' or 'etdrk2', got {s['scheme']!r}")
        if s["fft"] not in FFTS:
            raise ValueError(f"fidelity setting 'fft': must be one of {', '.join(FFTS)}, got {s['fft']!r}")
        for k in ("L", "amp0", "blowup"):
            if not s[k] > 0:
                raise ValueError(f"fixed.{k}: must be > 0, got {s[k]!r}")

    def estimate_bytes(self, param_names, fixed, fidelity, *, population: int, dtype: str) -> int:
        """A generous upper estimate of one batch's memory: ~32 complex (N, N) work arrays and the
        recorded series per candidate (checked at ``campaign add`` against this machine)."""
        s = _settings(tuple(param_names), fixed, fidelity)
        real = np.dtype(dtype).itemsize
        records = int(s["steps"]) // int(s["record_every"])
        return int(population) * (32 * int(s["grid"]) ** 2 * 2 * real + 2 * records * real)

    def build(self, param_names, fixed, fidelity, *, dtype) -> Callable:
        """The single-candidate function ``(params (D,), key) -> CandidateResult``."""
        return self._runner(param_names, fixed, fidelity, dtype)[0]

    def build_batch(self, param_names, fixed, fidelity, *, dtype) -> Callable:
        """The population function ``(params (P, D), keys (P,)) -> CandidateResult`` (batch first).

        The same function also takes one candidate (params (D,), one key). With the ``fused``
        FFT a population runs natively batched (fields (N, N, P), candidates on the contiguous
        axis) rather than under ``vmap``, which would put the batch axis first and the FFT
        stages' vectors across grid rows; per candidate the arithmetic is the same either way.
        With ``xla`` the single-candidate function is vmapped (XLA's batched FFT wants the
        batch first).
        """
        run, fft = self._runner(param_names, fixed, fidelity, dtype)
        return run if fft == "fused" else jax.vmap(run)

    def _runner(self, param_names, fixed, fidelity, dtype) -> tuple[Callable, str]:
        """(run, fft): ``run`` takes one candidate or a trailing-axis batch; fft is resolved."""
        param_names = tuple(param_names)
        s = _settings(param_names, fixed, fidelity)
        real = np.dtype(dtype).name
        noisy = "sigma" in param_names or float(s["sigma"]) != 0.0
        fft = s["fft"] if s["fft"] != "auto" else ("fused" if jax.default_backend() == "cpu" else "xla")
        solver = CGL(int(s["grid"]), float(s["L"]), float(s["dt"]), str(s["scheme"]), noisy, real, fft)
        steps, every = int(s["steps"]), int(s["record_every"])
        amp0, blowup = float(s["amp0"]), float(s["blowup"])
        columns = {p: param_names.index(p) for p in param_names}

        def run(params: jax.Array, key: jax.Array) -> CandidateResult:
            batch = key.shape  # () or (P,)
            values = {p: (params[..., columns[p]] if p in columns else jnp.full(batch, s[p])) for p in PARAMS}
            values = {p: jnp.asarray(v, real) for p, v in values.items()}
            valid = jnp.all(jnp.isfinite(jnp.stack(list(values.values()))), axis=0)
            valid &= (values["ell"] > 0) & (values["sigma"] >= 0)
            safe = {p: jnp.where(valid, v, PARAMS[p]) for p, v in values.items()}
            state = solver.init(CGLParams(**safe), key=key, amp0=amp0)
            state, records = simulate(solver.step, state, steps=steps, record_every=every, observe=solver.observe)
            metrics, extras = solver.metrics(state)
            # records are (R, *B): the batch axis goes first, like every other result
            extras["energy_series"] = jnp.moveaxis(records["energy"], 0, -1)
            extras["amp_series"] = jnp.moveaxis(records["max_amp"], 0, -1)
            amps = jnp.concatenate([records["max_amp"], metrics["max_amp"][None]])
            blew_up = jnp.any(~(amps <= blowup), axis=0) | ~jnp.all(jnp.isfinite(state.a_hat), axis=(0, 1))  # NaN counts
            finite = jnp.all(jnp.isfinite(jnp.stack(list(metrics.values()))), axis=0)
            status = jnp.where(
                ~valid, Status.INVALID_PARAMS,
                jnp.where(blew_up, Status.BLOWUP, jnp.where(finite, Status.OK, Status.NONFINITE)),
            ).astype(jnp.int32)
            metrics = {k: jnp.where(valid, v, jnp.nan) for k, v in metrics.items()}
            return CandidateResult(metrics=metrics, status=status, extras=extras)

        return run, fft


MODEL = CGLModel()
