"""A NumPy/SciPy simulator hunted as a huntflow function model (examples/byo_function/spec.yaml).

A driven, damped oscillator x'' + 2 zeta w x' + w^2 x = sin(t), integrated with SciPy's
``solve_ivp``. huntflow tunes the natural frequency ``w`` and the damping ``zeta`` so that the
steady-state amplitude is as close as possible to ``target_amplitude`` (a ``model.fixed`` value)
while the peak displacement during the transient stays below a limit (a constraint).

huntflow calls ``simulate(params, fidelity=..., seed=..., workdir=...)`` once per candidate in a
worker process, with the rung's settings in ``fidelity`` (here the integration tolerance) and a
fresh ``workdir`` (the trajectory is saved there). Nothing here imports huntflow.
"""

from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp


def simulate(params: dict, *, fidelity: dict, seed: int, workdir: Path) -> dict[str, float]:
    w, zeta = float(params["w"]), float(params["zeta"])
    t_end = float(fidelity.get("t_end", 60.0))

    def rhs(t, y):
        return [y[1], np.sin(t) - 2.0 * zeta * w * y[1] - w * w * y[0]]

    t = np.linspace(0.0, t_end, 2001)
    sol = solve_ivp(rhs, (0.0, t_end), [0.0, 0.0], t_eval=t, rtol=float(fidelity.get("rtol", 1e-6)), atol=1e-9)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    x = sol.y[0]
    steady = x[t > 0.75 * t_end]
    amplitude = 0.5 * float(steady.max() - steady.min())
    np.save(workdir / "trajectory.npy", np.stack([t, x]))
    return {
        "amplitude_error": abs(amplitude - float(params["target_amplitude"])),
        "peak": float(np.abs(x).max()),
        "amplitude": amplitude,
    }
