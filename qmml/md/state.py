"""The state of a simulation: an immutable record of everything a step needs, RNG included.

A step maps one `MDState` to the next without side effects on it, so a state written to a checkpoint
and read back continues the run exactly (same positions to the last bit, same random numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from .. import units


@dataclass(frozen=True, eq=False)
class MDState:
    """Positions, velocities and forces at one time, with the integrator's bookkeeping.

    Attributes
    ----------
    positions : ndarray (n, 3)
        Å.
    velocities : ndarray (n, 3)
        Å/fs.
    forces : ndarray (n, 3)
        Forces at ``positions``, eV/Å.
    potential_energy : float
        eV.
    step : int
    time_fs : float
    rng_state : str or None
        JSON of the NumPy ``PCG64`` bit-generator state (stochastic integrators), so a restart draws
        the same random numbers.
    heat_eV : float
        Energy the thermostat has taken out of the system (so that potential + kinetic + heat is
        conserved by a correct Langevin integrator), eV.
    extra : dict
        Integrator-specific arrays (e.g. the fast forces of a multiple-time-step integrator).
    result : object
        The potential's full result at ``positions`` (charges, SCF cycles, ...); not checkpointed.
    cell : ndarray (3, 3) or None
        Lattice vectors as rows, Å, where the run changes the box (a barostat); the potential is then
        evaluated in this cell.  None: the potential's own box (or none) is used.
    stress : ndarray (3, 3) or None
        The potential's stress at ``positions`` and ``cell``, eV/Å^3 ((1/V) dE/d(strain)); kept (and
        checkpointed) because the barostat needs it at the start of the next step.
    barostat_rng_state : str or None
        JSON state of the barostat's own random stream (separate from the thermostat's, so that
        switching the barostat's coupling off leaves the thermostat's numbers, and so the run, unchanged).
    barostat_heat_eV : float
        Energy the barostat's stochastic cell moves took out of the system, eV; E_kin + E_pot + P V +
        heat_eV + barostat_heat_eV is the effective energy a correct NPT integrator conserves.
    """

    positions: np.ndarray
    velocities: np.ndarray
    forces: np.ndarray
    potential_energy: float
    step: int = 0
    time_fs: float = 0.0
    rng_state: str | None = None
    heat_eV: float = 0.0
    extra: dict = field(default_factory=dict)
    result: object = None
    cell: np.ndarray | None = None
    stress: np.ndarray | None = None
    barostat_rng_state: str | None = None
    barostat_heat_eV: float = 0.0

    def replace(self, **changes) -> "MDState":
        return replace(self, **changes)


def kinetic_energy(masses: np.ndarray, velocities: np.ndarray) -> float:
    """Kinetic energy in eV of masses (amu) moving at velocities (Å/fs).

    Parameters
    ----------
    masses : ndarray (n,)
        amu.
    velocities : ndarray (n, 3)
        Å/fs.
    """
    return 0.5 * units.AMU_A2_PER_FS2_EV * float(np.sum(masses[:, None] * velocities * velocities))


def temperature(masses: np.ndarray, velocities: np.ndarray, degrees_of_freedom: int) -> float:
    """Kinetic temperature, K.

    Parameters
    ----------
    masses : ndarray (n,)
        amu.
    velocities : ndarray (n, 3)
        Å/fs.
    degrees_of_freedom : int
    """
    return 2.0 * kinetic_energy(masses, velocities) / (degrees_of_freedom * units.BOLTZMANN_EV_PER_K)


#: Independent random streams drawn from one user seed: the same seed for the initial velocities and
#: the thermostat must not give the same numbers (the first random kick would then be parallel to
#: the velocities and heat the system).
STREAM_VELOCITIES, STREAM_THERMOSTAT, STREAM_BAROSTAT = 0, 1, 2


def _stream(seed: int, purpose: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(purpose,))))


def new_rng_state(seed: int, purpose: int = STREAM_THERMOSTAT) -> str:
    """State of the thermostat's (or another ``purpose``'s) random stream for ``seed``."""
    return json.dumps(_stream(seed, purpose).bit_generator.state)


def generator(rng_state: str) -> np.random.Generator:
    """A NumPy generator positioned at ``rng_state``."""
    gen = np.random.Generator(np.random.PCG64())
    gen.bit_generator.state = json.loads(rng_state)
    return gen


def generator_state(gen: np.random.Generator) -> str:
    return json.dumps(gen.bit_generator.state)


def maxwell_boltzmann(masses: np.ndarray, temperature_K: float, seed: int) -> np.ndarray:
    """Velocities (Å/fs) drawn at ``temperature_K``, zero total momentum, rescaled to exactly that
    temperature over 3N - 3 degrees of freedom.

    Parameters
    ----------
    masses : ndarray (n,)
        amu.
    temperature_K : float
        K.
    seed : int
    """
    masses = np.asarray(masses, dtype=float)
    gen = _stream(seed, STREAM_VELOCITIES)
    sigma = np.sqrt(units.BOLTZMANN_EV_PER_K * temperature_K / (masses * units.AMU_A2_PER_FS2_EV))
    v = gen.standard_normal((len(masses), 3)) * sigma[:, None]
    v -= (masses[:, None] * v).sum(0) / masses.sum()
    if len(masses) > 1 and temperature_K > 0:
        v *= np.sqrt(temperature_K / temperature(masses, v, 3 * len(masses) - 3))
    return v
