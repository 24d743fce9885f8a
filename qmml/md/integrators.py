"""Integrators built from named sub-steps (Leimkuhler & Matthews' B, A, O splitting).

* B (kick): v <- v + (h / m) F
* A (drift): x <- x + h v, then a new force evaluation where the step needs one
* O (thermostat): v <- c1 v + sqrt((1 - c1^2) kT / m) xi with c1 = exp(-gamma h), an exact
  Ornstein-Uhlenbeck update

`VelocityVerlet` is B A B (NVE), `Langevin` is B A O A B (BAOAB, NVT: its configurational
sampling error is of high order in the time step), and `MultipleTimeStep` is r-RESPA
(Tuckerman, Berne & Martyna, J. Chem. Phys. 97, 1990 (1992)): B_slow [B_fast A B_fast]^n B_slow
with a cheap fast force integrated at the inner step and the (full - fast) correction at the outer.

Integrators know nothing about engines: a potential is anything with
``compute(positions_A) -> result`` where ``result.energy`` is in eV and ``result.forces`` in eV/Å.
Units: Å, fs, amu, eV, K.
"""

from __future__ import annotations

import numpy as np

from .. import units
from ..errors import InputError
from .state import MDState, generator, generator_state, kinetic_energy, new_rng_state


# -- sub-steps ----------------------------------------------------------------------------
def kick(velocities, forces, masses, h_fs):
    """B: velocities after forces act for ``h_fs``."""
    return velocities + (h_fs / units.AMU_A2_PER_FS2_EV) * forces / masses[:, None]


def drift(positions, velocities, h_fs):
    """A: positions after moving at constant velocity for ``h_fs``."""
    return positions + h_fs * velocities


def thermostat(velocities, masses, h_fs, temperature_K, friction_per_fs, gen):
    """O: exact Ornstein-Uhlenbeck update of the velocities over ``h_fs``."""
    c1 = np.exp(-friction_per_fs * h_fs)
    sigma = np.sqrt((1.0 - c1 * c1) * units.BOLTZMANN_EV_PER_K * temperature_K / (masses * units.AMU_A2_PER_FS2_EV))
    return c1 * velocities + sigma[:, None] * gen.standard_normal(velocities.shape)


def _evaluate(potential, positions):
    result = potential.compute(positions)
    return result, np.asarray(result.forces, dtype=np.float64), float(result.energy)


def _check_timestep(timestep_fs):
    if not timestep_fs > 0:
        raise InputError(f"timestep_fs={timestep_fs} must be positive (fs)")
    return float(timestep_fs)


class VelocityVerlet:
    """NVE velocity Verlet (B A B).

    Parameters
    ----------
    timestep_fs : float
    """

    name = "velocity_verlet"

    def __init__(self, timestep_fs: float):
        self.timestep_fs = _check_timestep(timestep_fs)

    def degrees_of_freedom(self, n_atoms: int) -> int:
        return 3 * n_atoms - 3  # total momentum is conserved

    def init(self, potential, positions, velocities, masses) -> MDState:
        result, forces, energy = _evaluate(potential, positions)
        return MDState(np.array(positions, float), np.array(velocities, float), forces, energy, result=result)

    def step(self, potential, state: MDState, masses) -> MDState:
        h = self.timestep_fs
        v = kick(state.velocities, state.forces, masses, h / 2)
        x = drift(state.positions, v, h)
        result, forces, energy = _evaluate(potential, x)
        v = kick(v, forces, masses, h / 2)
        return state.replace(positions=x, velocities=v, forces=forces, potential_energy=energy,
                             step=state.step + 1, time_fs=state.time_fs + h, result=result)

    def state(self) -> dict:
        return {}

    def restore(self, _state: dict) -> None:
        pass


class Langevin(VelocityVerlet):
    """NVT Langevin dynamics, BAOAB splitting; reproducible from ``seed``.

    Parameters
    ----------
    timestep_fs : float
    temperature_K : float
    friction_per_ps : float
        Collision frequency gamma, 1/ps (1-10 for sampling; 0 gives velocity Verlet).
    seed : int
        Seeds the random forces; the generator state lives in the `MDState`, so a restart from a
        checkpoint draws the same numbers as the uninterrupted run.
    """

    name = "langevin"

    def __init__(self, timestep_fs: float, temperature_K: float, friction_per_ps: float = 5.0, seed: int = 0):
        super().__init__(timestep_fs)
        if not temperature_K >= 0:
            raise InputError(f"temperature_K={temperature_K} must be zero or positive (K)")
        if not friction_per_ps >= 0:
            raise InputError(f"friction_per_ps={friction_per_ps} must be zero or positive (1/ps)")
        self.temperature_K = float(temperature_K)
        self.friction_per_ps = float(friction_per_ps)
        self.seed = int(seed)

    def degrees_of_freedom(self, n_atoms: int) -> int:
        return 3 * n_atoms  # the random forces do not conserve momentum

    def init(self, potential, positions, velocities, masses) -> MDState:
        return super().init(potential, positions, velocities, masses).replace(rng_state=new_rng_state(self.seed))

    def step(self, potential, state: MDState, masses) -> MDState:
        h = self.timestep_fs
        gen = generator(state.rng_state)
        v = kick(state.velocities, state.forces, masses, h / 2)
        x = drift(state.positions, v, h / 2)
        before = kinetic_energy(masses, v)
        v = thermostat(v, masses, h, self.temperature_K, self.friction_per_ps / units.FS_PER_PS, gen)
        heat = state.heat_eV + before - kinetic_energy(masses, v)
        x = drift(x, v, h / 2)
        result, forces, energy = _evaluate(potential, x)
        v = kick(v, forces, masses, h / 2)
        return state.replace(positions=x, velocities=v, forces=forces, potential_energy=energy, step=state.step + 1,
                             time_fs=state.time_fs + h, rng_state=generator_state(gen), heat_eV=heat, result=result)


class MultipleTimeStep(VelocityVerlet):
    """r-RESPA: a cheap force at the inner step, the expensive correction at the outer step (NVE).

    Parameters
    ----------
    timestep_fs : float
        Outer step (one evaluation of the full potential), fs.
    inner_steps : int
        Inner steps per outer step (inner step = timestep_fs / inner_steps).
    fast : potential
        The cheap force, e.g. `qmml.ml.MLPotential` (the environment model for all atoms) or a
        Hamiltonian with a low-level QM method.  The outer force is full - fast.

    Notes
    -----
    The fast force must contain the fast motions (bond vibrations) of every atom, including the QM
    region; otherwise the correction is not slow and the outer step resonates.
    """

    name = "multiple_time_step"

    def __init__(self, timestep_fs: float, inner_steps: int, fast):
        super().__init__(timestep_fs)
        if int(inner_steps) < 1:
            raise InputError(f"inner_steps={inner_steps} must be 1 or more")
        self.inner_steps = int(inner_steps)
        self.fast = fast

    def init(self, potential, positions, velocities, masses) -> MDState:
        state = super().init(potential, positions, velocities, masses)
        fast = self.fast.compute(state.positions)
        return state.replace(extra={"fast_forces": np.asarray(fast.forces, float)})

    def step(self, potential, state: MDState, masses) -> MDState:
        h_outer, h = self.timestep_fs, self.timestep_fs / self.inner_steps
        fast_forces = state.extra["fast_forces"]
        v = kick(state.velocities, state.forces - fast_forces, masses, h_outer / 2)
        x = state.positions
        for _ in range(self.inner_steps):
            v = kick(v, fast_forces, masses, h / 2)
            x = drift(x, v, h)
            fast_forces = np.asarray(self.fast.compute(x).forces, dtype=np.float64)
            v = kick(v, fast_forces, masses, h / 2)
        result, forces, energy = _evaluate(potential, x)
        v = kick(v, forces - fast_forces, masses, h_outer / 2)
        return state.replace(positions=x, velocities=v, forces=forces, potential_energy=energy,
                             step=state.step + 1, time_fs=state.time_fs + h_outer, result=result,
                             extra={"fast_forces": fast_forces})

    def state(self) -> dict:
        return potential_state(self.fast)

    def restore(self, state: dict) -> None:
        restore_potential_state(self.fast, state)


def potential_state(potential) -> dict:
    """What a potential carries from step to step (SCF density history), for checkpoints."""
    getter = getattr(potential, "state", None)
    return getter() if callable(getter) else {}


def restore_potential_state(potential, state: dict) -> None:
    setter = getattr(potential, "restore", None)
    if callable(setter) and state:
        setter(state)
