"""Integrators built from named sub-steps (Leimkuhler & Matthews' B, A, O splitting).

* B (kick): v <- v + (h / m) F
* A (drift): x <- x + h v, then a new force evaluation where the step needs one
* O (thermostat): v <- c1 v + sqrt((1 - c1^2) kT / m) xi with c1 = exp(-gamma h), an exact
  Ornstein-Uhlenbeck update

`VelocityVerlet` is B A B (NVE), `Langevin` is B A O A B (BAOAB, NVT: its configurational
sampling error is of high order in the time step); with a barostat it is B C[A O A]C B (NPT), where
the stochastic cell move C is drawn after the first kick, spread over the drifts (which then scale
positions, velocities and cell) and closed after the force evaluation (see `qmml.md.barostat`).
`MultipleTimeStep` is r-RESPA
(Tuckerman, Berne & Martyna, J. Chem. Phys. 97, 1990 (1992)): B_slow [B_fast A B_fast]^n B_slow
with a cheap fast force integrated at the inner step and the (full - fast) correction at the outer.

Integrators know nothing about engines: a potential is anything with
``compute(positions_A) -> result`` where ``result.energy`` is in eV and ``result.forces`` in eV/Å.
Where the state has a cell (a barostat changes the box) it is called as ``compute(positions_A,
cell=cell)`` and must give ``result.stress`` (eV/Å^3); potentials without a box are never given one.
Units: Å, fs, amu, eV, K.
"""

from __future__ import annotations

import numpy as np

from .. import units
from ..errors import InputError, check_range
from ..potential import check_result
from .barostat import scaled_drift
from .state import STREAM_BAROSTAT, MDState, generator, generator_state, kinetic_energy, new_rng_state


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


def _evaluate(potential, positions, cell=None):
    """Result, forces, energy and stress (None for a potential without one) at ``positions`` (in ``cell``)."""
    result = check_result(potential, potential.compute(positions) if cell is None else
                          potential.compute(positions, cell=cell))
    stress = result.stress
    return (result, np.asarray(result.forces, dtype=np.float64), float(result.energy),
            None if stress is None else np.asarray(stress, dtype=np.float64))


#: the largest time step accepted, fs (hydrogen vibrations need about 1 fs or less; heavy atoms with
#: multiple time steps up to a few fs)
MAX_TIMESTEP_FS = 10.0
#: the highest thermostat temperature accepted, K
MAX_TEMPERATURE_K = 5000.0


def _check_timestep(timestep_fs):
    return check_range("timestep_fs", timestep_fs, low=0, low_open=True, high=MAX_TIMESTEP_FS, unit="fs")


class Integrator:
    """Base of integrators: ``init`` builds the first `MDState`, ``step`` maps a state to the next without
    changing it, ``refresh`` recomputes a state after its potential changed.

    ``state``/``restore`` carry the integrator's own memory through checkpoints; ``thermo_columns`` and
    ``thermo_values`` add columns to the thermo log; ``conserved_energy`` is what a correct run keeps
    constant (eV).
    """

    name = "integrator"
    thermo_columns: tuple = ()
    #: the thermostat's target temperature, K (None: no thermostat, the dynamics conserves energy)
    temperature_K: float | None = None

    def degrees_of_freedom(self, n_atoms: int) -> int:
        return 3 * n_atoms - 3  # total momentum is conserved

    def init(self, potential, positions, velocities, masses) -> MDState:
        raise NotImplementedError

    def step(self, potential, state: MDState, masses) -> MDState:
        raise NotImplementedError

    def refresh(self, potential, state: MDState) -> MDState:
        raise NotImplementedError

    def thermo_values(self, state: MDState, masses) -> tuple:
        return ()

    def conserved_energy(self, state: MDState, masses) -> float:
        """Potential plus kinetic energy plus the heat a thermostat took out, eV."""
        return state.potential_energy + kinetic_energy(masses, state.velocities) + state.heat_eV

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        pass


class VelocityVerlet(Integrator):
    """NVE velocity Verlet (B A B).

    Parameters
    ----------
    timestep_fs : float
    """

    name = "velocity_verlet"

    def __init__(self, timestep_fs: float):
        self.timestep_fs = _check_timestep(timestep_fs)

    def init(self, potential, positions, velocities, masses) -> MDState:
        result, forces, energy, stress = _evaluate(potential, positions)
        return MDState(np.array(positions, float), np.array(velocities, float), forces, energy, result=result,
                       stress=stress)

    def refresh(self, potential, state: MDState) -> MDState:
        """``state`` recomputed with ``potential`` (after the potential changed, e.g. a retrained model):
        everything that depends on the potential is evaluated anew at the state's positions and cell;
        positions, velocities, time and random streams stay."""
        result, forces, energy, stress = _evaluate(potential, state.positions, state.cell)
        return state.replace(forces=forces, potential_energy=energy, stress=stress, result=result)

    def step(self, potential, state: MDState, masses) -> MDState:
        h = self.timestep_fs
        v = kick(state.velocities, state.forces, masses, h / 2)
        x = drift(state.positions, v, h)
        result, forces, energy, stress = _evaluate(potential, x, state.cell)
        v = kick(v, forces, masses, h / 2)
        return state.replace(positions=x, velocities=v, forces=forces, potential_energy=energy, stress=stress,
                             step=state.step + 1, time_fs=state.time_fs + h, result=result)


class Langevin(VelocityVerlet):
    """NVT Langevin dynamics, BAOAB splitting; NPT with a barostat; reproducible from ``seed``.

    Parameters
    ----------
    timestep_fs : float
    temperature_K : float
    friction_per_ps : float
        Collision frequency gamma, 1/ps (1-10 for sampling; 0 gives velocity Verlet).
    seed : int
        Seeds the random forces (and the barostat's own stream); the generator states live in the
        `MDState`, so a restart from a checkpoint draws the same numbers as the uninterrupted run.
    barostat : StochasticCellRescaling, optional
        Constant pressure: the cell follows the barostat at this temperature (the potential must be
        periodic and give ``stress``; the run starts from the system's box).  The thermo log then
        gains volume, density, pressure and cell columns, and its conserved energy includes P0 V and
        the barostat's heat.
    """

    name = "langevin"

    def __init__(self, timestep_fs: float, temperature_K: float, friction_per_ps: float = 5.0, seed: int = 0,
                 barostat=None):
        super().__init__(timestep_fs)
        temperature_K = check_range("temperature_K", temperature_K, low=0, high=MAX_TEMPERATURE_K, unit="K")
        friction_per_ps = check_range("friction_per_ps", friction_per_ps, low=0, high=1e4, unit="1/ps")
        if barostat is not None and not temperature_K > 0:
            raise InputError(f"temperature_K={temperature_K}: a barostat needs a positive temperature (K)")
        self.temperature_K = temperature_K
        self.friction_per_ps = friction_per_ps
        self.seed = int(seed)
        self.barostat = barostat

    def degrees_of_freedom(self, n_atoms: int) -> int:
        return 3 * n_atoms  # the random forces do not conserve momentum

    @property
    def thermo_columns(self) -> tuple:
        return () if self.barostat is None else tuple(self.barostat.thermo_columns)

    def thermo_values(self, state: MDState, masses) -> tuple:
        return () if self.barostat is None else self.barostat.thermo_values(state, masses)

    def conserved_energy(self, state: MDState, masses) -> float:
        """Total energy plus the heat the thermostat took out; with a barostat, plus P0 V and its heat."""
        kinetic = kinetic_energy(masses, state.velocities)
        if self.barostat is None or state.cell is None:
            return state.potential_energy + kinetic + state.heat_eV
        return self.barostat.effective_energy(state, kinetic)

    def init(self, potential, positions, velocities, masses) -> MDState:
        state = super().init(potential, positions, velocities, masses).replace(rng_state=new_rng_state(self.seed))
        return state if self.barostat is None else self._with_cell(potential, state)

    def step(self, potential, state: MDState, masses) -> MDState:
        if self.barostat is not None:
            return self._npt_step(potential, self._with_cell(potential, state), masses)
        h = self.timestep_fs
        gen = generator(state.rng_state)
        v = kick(state.velocities, state.forces, masses, h / 2)
        x = drift(state.positions, v, h / 2)
        before = kinetic_energy(masses, v)
        v = thermostat(v, masses, h, self.temperature_K, self.friction_per_ps / units.FS_PER_PS, gen)
        heat = state.heat_eV + before - kinetic_energy(masses, v)
        x = drift(x, v, h / 2)
        result, forces, energy, stress = _evaluate(potential, x, state.cell)
        v = kick(v, forces, masses, h / 2)
        return state.replace(positions=x, velocities=v, forces=forces, potential_energy=energy, stress=stress,
                             step=state.step + 1, time_fs=state.time_fs + h, rng_state=generator_state(gen),
                             heat_eV=heat, result=result)

    def _npt_step(self, potential, state: MDState, masses) -> MDState:
        """B C[A O A]C B: the cell move is drawn after the first kick from the pressure there, its scaling
        split over the two drifts, and closed with the pressure after the force evaluation."""
        h, baro, temperature_K = self.timestep_fs, self.barostat, self.temperature_K
        gen = generator(state.rng_state)
        v = kick(state.velocities, state.forces, masses, h / 2)
        move = baro.begin(state.cell, state.stress, v, masses, h, temperature_K, state.barostat_rng_state)
        f = move.half_factor
        x, v = scaled_drift(state.positions, v, h / 2, f)
        before = kinetic_energy(masses, v)
        v = thermostat(v, masses, h, temperature_K, self.friction_per_ps / units.FS_PER_PS, gen)
        heat = state.heat_eV + before - kinetic_energy(masses, v)
        x, v = scaled_drift(x, v, h / 2, f)
        cell = state.cell if f == 1.0 else f * (f * state.cell)  # scaled as the positions were
        result, forces, energy, stress = _evaluate(potential, x, cell)
        _require_stress(potential, stress)
        baro_heat = state.barostat_heat_eV + baro.end(move, cell, stress, v, masses, h, temperature_K)
        v = kick(v, forces, masses, h / 2)
        return state.replace(positions=x, velocities=v, forces=forces, potential_energy=energy, stress=stress,
                             cell=cell, step=state.step + 1, time_fs=state.time_fs + h,
                             rng_state=generator_state(gen), heat_eV=heat, barostat_rng_state=move.rng_state,
                             barostat_heat_eV=baro_heat, result=result)

    def _with_cell(self, potential, state: MDState) -> MDState:
        """``state`` with what the barostat needs: the cell (the system's box at the start of a run or
        after a restart from an NVT checkpoint), the stress there and the barostat's random stream."""
        if state.cell is not None and state.stress is not None and state.barostat_rng_state is not None:
            return state
        cell = state.cell if state.cell is not None else potential.system.cell
        if cell is None:
            raise InputError(f"{self.barostat!r} needs a periodic system: give the system a box "
                             "([a, b, c, alpha, beta, gamma], Å and degrees)")
        stress = state.stress  # without a cell of its own the state was evaluated in the system's box
        if stress is None:
            stress = _evaluate(potential, state.positions, cell)[3]
            _require_stress(potential, stress)
        return state.replace(cell=np.array(cell, dtype=np.float64), stress=stress,
                             barostat_rng_state=state.barostat_rng_state or new_rng_state(self.seed, STREAM_BAROSTAT))


def _require_stress(potential, stress) -> None:
    if stress is None:
        raise InputError(f"{type(potential).__name__} gives no stress; constant pressure needs a periodic potential "
                         "whose compute(positions, cell=...) returns a result with .stress (eV/Å^3)")


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
        check_range("inner_steps", inner_steps, low=1, high=1000)
        self.inner_steps = int(inner_steps)
        self.fast = fast

    def init(self, potential, positions, velocities, masses) -> MDState:
        return self._with_fast_forces(super().init(potential, positions, velocities, masses))

    def refresh(self, potential, state: MDState) -> MDState:
        return self._with_fast_forces(super().refresh(potential, state))

    def _with_fast_forces(self, state: MDState) -> MDState:
        fast = self.fast.compute(state.positions)  # no barostat here: the system's own box
        return state.replace(extra={**state.extra, "fast_forces": np.asarray(fast.forces, float)})

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
        result, forces, energy, stress = _evaluate(potential, x, state.cell)
        v = kick(v, forces - fast_forces, masses, h_outer / 2)
        return state.replace(positions=x, velocities=v, forces=forces, potential_energy=energy, stress=stress,
                             step=state.step + 1, time_fs=state.time_fs + h_outer, result=result,
                             extra={"fast_forces": fast_forces})

    def state(self) -> dict:
        return self.fast.state()

    def restore(self, state: dict) -> None:
        self.fast.restore(state)
