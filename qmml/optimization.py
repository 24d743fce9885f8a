"""Geometry optimization of any potential (QM/ML `Hamiltonian`, `Restrained`, `QMPotential`, ...).

L-BFGS (SciPy's L-BFGS-B) on the positions of the free atoms, stopped when the largest force on a
free atom falls below ``fmax``.  Energies are taken relative to the start so the line search works
on numbers of order one whatever the absolute QM energy.  Each energy evaluation warm-starts the
SCF from the previous density (the engine's guess history).  Units: Å, eV, eV/Å.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .potential import check_result

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Optimization:
    """Outcome of `optimize`.

    Attributes
    ----------
    positions : ndarray (n_atoms, 3)
        Final positions, Å.
    energy : float
        Energy at ``positions``, eV.
    forces : ndarray (n_atoms, 3)
        Forces at ``positions``, eV/Å (fixed atoms included).
    max_force : float
        Largest force norm on a free atom, eV/Å.
    converged : bool
        ``max_force < fmax``.
    n_steps, n_evaluations : int
        L-BFGS iterations and energy + force evaluations.
    energies, max_forces : ndarray (n_steps + 1,)
        Energy (eV) and largest free-atom force (eV/Å) at the start and after each iteration.
    result : object
        The potential's full result at ``positions`` (charges, SCF cycles, ...).
    """

    positions: np.ndarray
    energy: float
    forces: np.ndarray
    max_force: float
    converged: bool
    n_steps: int
    n_evaluations: int
    energies: np.ndarray
    max_forces: np.ndarray
    result: object


def optimize(potential, positions=None, *, fmax: float = 0.05, max_steps: int = 200, fixed=None,
             progress: bool = True, callback=None) -> Optimization:
    """Minimize the energy of ``potential`` from ``positions``.

    Parameters
    ----------
    potential : qmml.Potential
        A `Hamiltonian`, `MLPotential`, `QMPotential`, a wrapper of one, or your own subclass.
    positions : array_like (n_atoms, 3), optional
        Start, Å (default: the system's positions).
    fmax : float
        Convergence threshold on the largest force norm of a free atom, eV/Å.
    max_steps : int
        Most L-BFGS iterations; the result says whether it converged.
    fixed : array_like of int or bool mask, optional
        Atoms kept in place (e.g. the outer solvent shell, so it does not collapse onto the solute).
    progress : bool
        A tqdm bar with the current energy change and largest force.
    callback : callable, optional
        ``callback(step, positions, result)`` after every accepted step (positions in Å, all atoms; the
        potential's `Result` there): e.g. to write the geometry, so that a long optimization stopped by a
        crash or the end of a session continues from its last step instead of its start.

    Returns
    -------
    Optimization
    """
    from scipy.optimize import minimize
    from tqdm.auto import tqdm

    system = potential.system
    x0 = np.array(system.positions if positions is None else positions, dtype=np.float64)
    n = system.n_atoms
    if x0.shape != (n, 3):
        raise InputError(f"optimize: positions have shape {x0.shape}, expected ({n}, 3)")
    if fmax <= 0 or max_steps < 1:
        raise InputError(f"optimize: fmax={fmax} (eV/Å) must be positive and max_steps={max_steps} at least 1")
    free = np.ones(n, dtype=bool)
    if fixed is not None:
        fixed = np.asarray(fixed)
        if fixed.dtype == bool:
            if fixed.shape != (n,):
                raise InputError(f"optimize: the fixed mask has shape {fixed.shape}, expected ({n},)")
            free &= ~fixed
        else:
            if fixed.size and (fixed.min() < 0 or fixed.max() >= n):
                raise InputError(f"optimize: fixed atom indices must lie in 0..{n - 1}")
            free[fixed.astype(int)] = False
    if not free.any():
        raise InputError("optimize: every atom is fixed; nothing to optimize")

    last = {}
    evaluations = [0]

    def full_positions(z):
        x = x0.copy()
        x[free] = z.reshape(-1, 3)
        return x

    def evaluate(z):
        key = z.tobytes()
        if last.get("key") != key:
            result = check_result(potential, potential.compute(full_positions(z)))
            evaluations[0] += 1
            last.update(key=key, result=result)
        return last["result"]

    def largest_force(result):
        return float(np.linalg.norm(result.forces[free], axis=1).max())

    first = evaluate(x0[free].ravel())
    e0 = first.energy
    energies, max_forces = [e0], [largest_force(first)]

    def objective(z):
        result = evaluate(z)
        return result.energy - e0, -result.forces[free].ravel()

    accepted = [x0[free].ravel()]
    bar = tqdm(total=max_steps, unit="step", disable=not progress, dynamic_ncols=True, desc="optimize")

    def accept(intermediate_result):
        accepted[0] = np.array(intermediate_result.x)
        result = evaluate(accepted[0])
        energies.append(result.energy)
        max_forces.append(largest_force(result))
        bar.update(1)
        bar.set_postfix(dE=f"{result.energy - e0:.4f} eV", fmax=f"{max_forces[-1]:.3f} eV/Å")
        if callback is not None:
            callback(len(energies) - 1, full_positions(accepted[0]), result)
        if max_forces[-1] < fmax:
            raise StopIteration

    try:
        if max_forces[0] >= fmax:
            minimize(objective, x0[free].ravel(), jac=True, method="L-BFGS-B", callback=accept,
                     options={"maxiter": int(max_steps), "maxfun": 4 * int(max_steps), "ftol": 1e-14,
                              "gtol": 1e-10, "maxcor": 20})
    finally:
        bar.close()
    # the last accepted iterate, not a trial point of a line search that failed
    result = evaluate(accepted[0])
    x_final = full_positions(accepted[0])
    max_force = largest_force(result)
    converged = max_force < fmax
    if not converged:
        log.warning("optimize: stopped after %d steps with a largest force of %.3g eV/Å (fmax %.3g)",
                    len(energies) - 1, max_force, fmax)
    return Optimization(positions=x_final, energy=float(result.energy), forces=np.array(result.forces),
                        max_force=max_force, converged=converged, n_steps=len(energies) - 1,
                        n_evaluations=evaluations[0], energies=np.array(energies), max_forces=np.array(max_forces),
                        result=result)
