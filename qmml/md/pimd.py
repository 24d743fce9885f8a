"""Path-integral molecular dynamics: nuclear quantum effects (zero-point energy, tunnelling-like
delocalisation, isotope effects) by sampling the ring polymer of P classical beads per atom.

Ring-polymer Hamiltonian (physical masses m, beads sampled at P*T; Ceriotti et al., J. Chem. Phys.
133, 124104 (2010)):

    H_P = sum_j [ m v_j^2 / 2 + V(q_j) ] + sum_j m omega_P^2 |q_j - q_{j+1}|^2 / 2,   omega_P = P k_B T / hbar

The free ring polymer (springs and kinetic energy) is propagated exactly in normal-mode coordinates
(frequencies omega_k = 2 omega_P sin(k pi / P)); the PILE-L thermostat is an exact Ornstein-Uhlenbeck
step on every normal mode, friction 2 lambda omega_k for k > 0 and a user friction for the centroid.
`PathIntegralLangevin` composes B (`kick`), A (free ring polymer) and O (`thermostat` per mode) as
B A O A B, so with one bead it is `Langevin` step for step, random numbers included.

Ring-polymer contraction (Markland & Manolopoulos, J. Chem. Phys. 129, 024105 (2008)): the expensive
potential sees only the P' lowest normal modes (P' beads), a cheap potential all P beads:
F_j = F_cheap(q_j) + (P / P') sum_j' T_j'j [F_full - F_cheap](q'_j'), q' = T q.

`MDState` keeps its (n, 3) layout, so `Simulation`, reporters and checkpoints work unchanged: positions,
velocities and forces are the centroid's (the centroid samples the classical Maxwell-Boltzmann
velocity distribution, so the reported temperature is T); the beads are in ``extra``.
Units: Å, fs, amu, eV, K.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import units
from ..errors import InputError, check_range
from ..potential import Potential, PotentialResult, PotentialWrapper, check_result
from ..system import System
from .integrators import MAX_TEMPERATURE_K, Integrator, _check_timestep, drift, kick, thermostat
from .state import MDState, generator, generator_state, kinetic_energy, new_rng_state

#: Atomic masses of the hydrogen isotopes, amu (AME2020), for `with_isotopes`.
ISOTOPE_MASSES_AMU = {"H": 1.00782503223, "D": 2.01410177812, "T": 3.01604928132}


# -- isotopes -----------------------------------------------------------------------------
def with_isotopes(target, masses: dict):
    """The same atoms with other masses: the elements (and so every potential) stay as they are.

    Parameters
    ----------
    target : System or qmml.Potential
        A `System`, or a potential (`Hamiltonian`, `MLPotential`, ...):
        a potential comes back wrapped so that `Simulation` moves its atoms with the new masses.
    masses : dict
        ``{atom index: mass}`` with the mass in amu or an isotope symbol of `ISOTOPE_MASSES_AMU`
        (``"D"``, ``"T"``).

    Returns
    -------
    System or potential
    """
    if not isinstance(target, (System, Potential)):
        raise InputError(f"with_isotopes: give a System or a qmml potential, not {type(target).__name__}")
    system = target if isinstance(target, System) else target.system
    new = np.array(system.masses, dtype=np.float64)
    for index, mass in masses.items():
        if not -system.n_atoms <= int(index) < system.n_atoms:
            raise InputError(f"with_isotopes: atom {index} is outside 0..{system.n_atoms - 1}")
        if isinstance(mass, str) and mass not in ISOTOPE_MASSES_AMU:
            raise InputError(f"with_isotopes: unknown isotope {mass!r}; give a mass in amu or one of "
                             f"{sorted(ISOTOPE_MASSES_AMU)}")
        value = ISOTOPE_MASSES_AMU[mass] if isinstance(mass, str) else float(mass)
        if not value > 0:
            raise InputError(f"with_isotopes: mass {mass} of atom {index} must be positive (amu)")
        new[int(index)] = value
    system = replace(system, masses=new, _universe=None)
    return system if isinstance(target, System) else _WithMasses(target, system)


class _WithMasses(PotentialWrapper):
    """A potential seen through a system with other masses (the potential energy surface is mass-free)."""

    def __init__(self, potential, system):
        super().__init__(potential)
        self._system = system

    @property
    def system(self):
        return self._system

    def __repr__(self) -> str:
        return f"with_isotopes({self.potential!r})"

    def compute_copies(self, positions, *, forces: bool = True, cell=None) -> list:
        """The wrapped potential's `compute_copies` (the masses do not change the energy surface), so an
        `MLPotential` keeps all path-integral beads in one model call."""
        return self.potential.compute_copies(positions, forces=forces, cell=cell)


# -- ring-polymer normal modes -------------------------------------------------------------
def normal_modes(n_beads: int):
    """Orthonormal real normal-mode transform of a ring of ``n_beads`` beads.

    Returns
    -------
    matrix : ndarray (P, P)
        ``q_nm[k] = sum_j matrix[j, k] q[j]``; column 0 is the centroid mode 1/sqrt(P).
    harmonic : ndarray of int (P,)
        Fourier index of each mode (its frequency is 2 omega_P sin(pi harmonic / P)).
    sine : ndarray of bool (P,)
        Whether the mode is the sine partner of a cosine mode with the same index.
    """
    p = int(n_beads)
    j, k = np.arange(p)[:, None], np.arange(p)[None, :]
    angle = 2.0 * np.pi * j * k / p
    matrix = np.where(k <= p / 2, np.sqrt(2.0 / p) * np.cos(angle), np.sqrt(2.0 / p) * np.sin(angle))
    matrix[:, 0] = np.sqrt(1.0 / p)
    if p % 2 == 0:
        matrix[:, p // 2] = np.sqrt(1.0 / p) * (-1.0) ** np.arange(p)
    index = np.arange(p)
    return matrix, np.minimum(index, p - index), index > p / 2


def contraction_matrix(n_beads: int, n_contracted: int) -> np.ndarray:
    """T (P', P): the P' beads that carry the lowest P' normal modes of a P-bead ring (q' = T q).

    The centroid is kept exactly, ``T T^T = (P'/P) 1`` and forces on the contracted beads go back as
    ``(P/P') T^T F'`` (the gradient of the contracted energy ``(P/P') sum_j' V(q'_j')``).
    """
    if not 1 <= n_contracted <= n_beads:
        raise InputError(f"contracted_beads={n_contracted} must be between 1 and n_beads={n_beads}")
    big, big_k, big_sine = normal_modes(n_beads)
    small, small_k, small_sine = normal_modes(n_contracted)
    t = np.zeros((n_contracted, n_beads))
    for mode in range(n_contracted):
        match = np.nonzero((big_k == small_k[mode]) & (big_sine == small_sine[mode]))[0][0]
        t += np.outer(small[:, mode], big[:, match])
    return np.sqrt(n_contracted / n_beads) * t


def _apply(matrix, beads):
    """``matrix`` (B', B) applied along the bead axis of a (B, n, 3) array."""
    return (matrix @ beads.reshape(len(beads), -1)).reshape((len(matrix),) + beads.shape[1:])


@dataclass(frozen=True, eq=False, kw_only=True)
class RingPolymerResult(PotentialResult):
    """The potential on the beads: bead-averaged energy (eV), charges (e), committee spread (eV) and numeric
    ``details`` (e.g. ``restraint_energy``), the centroid force (eV/Å) and the SCF cycles of all beads.

    ``beads`` holds the expensive potential's results on its (contracted) beads."""

    beads: list

    @classmethod
    def of(cls, energy: float, forces, beads: list) -> "RingPolymerResult":
        charges = [r.charges for r in beads]
        details = [r.details for r in beads]
        return cls(energy=energy, forces=forces, beads=beads,
                   charges=None if any(c is None for c in charges) else np.mean(charges, axis=0),
                   energy_std=float(np.mean([r.energy_std for r in beads])),
                   scf_cycles=int(sum(r.scf_cycles for r in beads)),
                   details={k: float(np.mean([d[k] for d in details])) for k in details[0]
                            if all(isinstance(d.get(k), (int, float)) for d in details)})


# -- the integrator --------------------------------------------------------------------------
class PathIntegralLangevin(Integrator):
    """Ring-polymer molecular dynamics with the PILE-L thermostat (NVT), optionally contracted.

    Parameters
    ----------
    timestep_fs : float
        Time step, fs.  The free ring polymer is integrated exactly, so the step is limited by the
        physical forces as in classical MD (0.25-0.5 fs with hydrogen).
    temperature_K : float
        Physical temperature T, K (beads are sampled at P*T).
    n_beads : int
        Beads P per atom; converged when P >> hbar omega_max / (k_B T): for an O-H stretch at 300 K,
        32 beads give 96% and 64 beads 99% of its kinetic energy.  1 gives classical `Langevin`.
    centroid_friction_per_ps : float
        Friction on the centroid mode, 1/ps (= 1000 / tau_0 with tau_0 in fs; 0 leaves the centroid
        unthermostatted: thermostatted ring-polymer MD, Rossi, Ceriotti & Manolopoulos 2014).
    seed : int
        Seeds the random forces; the generator state lives in the `MDState`.
    pile_lambda : float
        Internal-mode friction 2 lambda omega_k (1 = critical damping; 0 switches it off, NVE).
    cheap : potential, optional
        The potential on all P beads in a contracted run (e.g. `qmml.MLPotential` over all atoms);
        the Simulation's potential is the expensive one, evaluated on ``contracted_beads`` beads.
    contracted_beads : int, optional
        P' (1 <= P' <= P); default P (no contraction).  1 puts the expensive correction on the centroid.
    reference : potential, optional
        A reference to reweight the run to afterwards (`qmml.analysis.reweight`): every `ThermoLog` row then
        also holds ``reference_delta_eV``, the bead average of V_ref minus the ring's potential energy, and
        ``kinetic_virial_reference_eV``, the centroid-virial kinetic energy with the reference's forces.  It is
        evaluated on all beads at every row (``ThermoLog(every=...)`` sets how often).
    """

    name = "path_integral_langevin"
    thermo_columns = ("kinetic_primitive_eV", "kinetic_virial_eV")

    def __init__(self, timestep_fs: float, temperature_K: float, n_beads: int, centroid_friction_per_ps: float = 5.0,
                 seed: int = 0, *, pile_lambda: float = 1.0, cheap=None, contracted_beads: int | None = None,
                 reference=None):
        self.timestep_fs = _check_timestep(timestep_fs)
        self.reference = reference
        if reference is not None:
            self.thermo_columns = PathIntegralLangevin.thermo_columns + ("reference_delta_eV",
                                                                        "kinetic_virial_reference_eV")
        # T > 0: the ring-polymer springs stiffen without bound as T -> 0
        check_range("temperature_K", temperature_K, low=0, low_open=True, high=MAX_TEMPERATURE_K, unit="K")
        check_range("n_beads", n_beads, low=1, high=4096)
        check_range("centroid_friction_per_ps", centroid_friction_per_ps, low=0, high=1e4, unit="1/ps")
        check_range("pile_lambda", pile_lambda, low=0, high=100)
        self.temperature_K, self.n_beads, self.seed = float(temperature_K), int(n_beads), int(seed)
        self.centroid_friction_per_ps, self.pile_lambda = float(centroid_friction_per_ps), float(pile_lambda)
        self.cheap = cheap
        self.contracted_beads = self.n_beads if contracted_beads is None else int(contracted_beads)
        self.contraction = contraction_matrix(self.n_beads, self.contracted_beads)
        self.modes, harmonic, _ = normal_modes(self.n_beads)
        p = self.n_beads
        self.kT_eV = units.BOLTZMANN_EV_PER_K * self.temperature_K
        self.omega_p = p * self.kT_eV / units.HBAR_EV_FS  # 1/fs
        self.omega = 2.0 * self.omega_p * np.sin(np.pi * harmonic / p)
        self.friction = 2.0 * self.pile_lambda * self.omega
        self.friction[0] = self.centroid_friction_per_ps / units.FS_PER_PS  # as Langevin computes it
        self._replicas: dict[str, tuple] = {}  # key -> (the potential, one replica of it per bead)
        self._restored: dict[str, list] = {}  # bead potential states read from a checkpoint, not yet in use

    def degrees_of_freedom(self, n_atoms: int) -> int:
        return 3 * n_atoms  # of the centroid, which the thermostat holds at T

    # -- forces on the ring polymer ------------------------------------------------------
    def _on_beads(self, key, potential, beads):
        """Energies (B,), forces (B, n, 3) and results of ``potential`` on each bead.  Each bead follows its
        own replica of the potential (`qmml.Potential.replica`), so SCF guesses extrapolate along that
        bead's own path; a potential without memory (its own replica) gets all beads in one
        `qmml.Potential.compute_copies` call, which an ML potential makes one model pass."""
        source, replicas = self._replicas.get(key, (None, None))
        if source is not potential or len(replicas) != len(beads):
            replicas = [potential.replica() for _ in beads]
            states = self._restored.pop(key, None)
            if states is not None:
                if len(states) != len(beads):
                    raise InputError(f"{len(states)} {key} potential states for {len(beads)} beads; restart with "
                                     "the same n_beads and contracted_beads")
                for replica, state in zip(replicas, states):
                    replica.restore(state)
            self._replicas[key] = (potential, replicas)
        if all(replica is potential for replica in replicas):
            results = [check_result(potential, r) for r in potential.compute_copies(beads)]
        else:
            results = [check_result(replica, replica.compute(x)) for x, replica in zip(beads, replicas)]
        energies = np.array([float(r.energy) for r in results])
        forces = np.array([np.asarray(r.forces, dtype=np.float64) for r in results]).reshape(beads.shape)
        return energies, forces, results

    def _ring_forces(self, potential, beads):
        if self.contracted_beads == self.n_beads and self.cheap is None:
            energies, forces, results = self._on_beads("full", potential, beads)
            return float(energies.mean()), forces, results
        t = self.contraction
        contracted = _apply(t, beads)
        delta_e, delta_f, results = self._on_beads("full", potential, contracted)
        energy, forces = 0.0, np.zeros(beads.shape)
        if self.cheap is not None:
            cheap_e, forces, _ = self._on_beads("cheap", self.cheap, beads)
            at_contracted_e, at_contracted_f, _ = self._on_beads("cheap_contracted", self.cheap, contracted)
            energy, delta_e, delta_f = cheap_e.mean(), delta_e - at_contracted_e, delta_f - at_contracted_f
        forces = forces + (self.n_beads / self.contracted_beads) * _apply(t.T, delta_f)
        return float(energy + delta_e.mean()), forces, results

    def _state(self, state, beads, velocities, potential):
        energy, forces, results = self._ring_forces(potential, beads)
        extra = {"bead_positions": beads, "bead_velocities": velocities, "bead_forces": forces}
        return state.replace(positions=beads.mean(0), velocities=velocities.mean(0), forces=forces.mean(0),
                             potential_energy=energy, extra=extra,
                             result=RingPolymerResult.of(energy, forces.mean(0), results))

    # -- sub-steps --------------------------------------------------------------------------
    def to_normal_modes(self, beads):
        """(P, n, 3) bead array -> its normal-mode coordinates (same units)."""
        return _apply(self.modes.T, beads)

    def from_normal_modes(self, modes):
        return _apply(self.modes, modes)

    def free_ring_polymer(self, q_nm, v_nm, h_fs):
        """A: exact motion of the free ring polymer (springs only) over ``h_fs``, in normal modes."""
        q, v = q_nm.copy(), v_nm.copy()
        q[0] = drift(q_nm[0], v_nm[0], h_fs)  # the centroid
        w = self.omega[1:, None, None]
        c, s = np.cos(w * h_fs), np.sin(w * h_fs)
        q[1:], v[1:] = c * q_nm[1:] + (s / w) * v_nm[1:], c * v_nm[1:] - (w * s) * q_nm[1:]
        return q, v

    def pile(self, v_nm, masses, h_fs, gen):
        """O: PILE-L, the exact Ornstein-Uhlenbeck step of every normal-mode velocity at P*T."""
        out = np.empty_like(v_nm)
        for k in range(self.n_beads):
            out[k] = thermostat(v_nm[k], masses, h_fs, self.n_beads * self.temperature_K, self.friction[k], gen)
        return out

    # -- integrator interface ---------------------------------------------------------------
    def init(self, potential, positions, velocities, masses) -> MDState:
        """Every bead at ``positions`` (Å) moving with ``velocities`` (Å/fs): the internal modes start
        at rest and PILE-L thermalizes them within a few 1/omega_k."""
        self._replicas, self._restored = {}, {}
        p = self.n_beads
        beads = np.repeat(np.array(positions, dtype=np.float64)[None], p, axis=0)
        bead_v = np.repeat(np.array(velocities, dtype=np.float64)[None], p, axis=0)
        state = MDState(beads[0], bead_v[0], np.zeros_like(beads[0]), 0.0, rng_state=new_rng_state(self.seed))
        return self._state(state, beads, bead_v, potential)

    def refresh(self, potential, state: MDState) -> MDState:
        """``state`` with every bead's forces and the ring's energy recomputed with ``potential``."""
        return self._state(state, state.extra["bead_positions"], state.extra["bead_velocities"], potential)

    def step(self, potential, state: MDState, masses) -> MDState:
        h, extra = self.timestep_fs, state.extra
        if extra["bead_positions"].shape[0] != self.n_beads:
            raise InputError(f"the state has {extra['bead_positions'].shape[0]} beads, this integrator "
                             f"{self.n_beads}; continue with the same n_beads")
        gen = generator(state.rng_state)
        v = kick(extra["bead_velocities"], extra["bead_forces"], masses, h / 2)
        q_nm, v_nm = self.free_ring_polymer(self.to_normal_modes(extra["bead_positions"]), self.to_normal_modes(v),
                                            h / 2)
        before = self._bead_kinetic(masses, v_nm)
        v_nm = self.pile(v_nm, masses, h, gen)
        heat = state.heat_eV + before / self.n_beads - self._bead_kinetic(masses, v_nm) / self.n_beads
        q_nm, v_nm = self.free_ring_polymer(q_nm, v_nm, h / 2)
        beads, v = self.from_normal_modes(q_nm), self.from_normal_modes(v_nm)
        state = state.replace(step=state.step + 1, time_fs=state.time_fs + h, rng_state=generator_state(gen),
                              heat_eV=heat)
        state = self._state(state, beads, v, potential)
        v = kick(v, state.extra["bead_forces"], masses, h / 2)
        return state.replace(velocities=v.mean(0), extra={**state.extra, "bead_velocities": v})

    def state(self) -> dict:
        states = {key: [r.state() for r in replicas] for key, (_, replicas) in self._replicas.items()}
        return {"n_beads": self.n_beads, "bead_potentials": {**self._restored, **states}}

    def restore(self, state: dict) -> None:
        if state.get("n_beads", self.n_beads) != self.n_beads:
            raise InputError(f"the checkpoint has {state['n_beads']} beads, this integrator {self.n_beads}; "
                             "restart with the same n_beads")
        self._replicas = {}
        self._restored = {k: list(v) for k, v in state.get("bead_potentials", {}).items()}

    # -- estimators ---------------------------------------------------------------------------
    @staticmethod
    def _bead_kinetic(masses, v):
        return kinetic_energy(np.tile(masses, len(v)), v.reshape(-1, 3))  # as Langevin sums it when P = 1

    def spring_energy_per_atom(self, state: MDState, masses) -> np.ndarray:
        """sum_j m omega_P^2 norm(q_j - q_{j+1})^2 / 2 of each atom, eV (n,)."""
        q = state.extra["bead_positions"]
        stretch = np.sum((q - np.roll(q, -1, axis=0)) ** 2, axis=(0, 2))
        return 0.5 * units.AMU_A2_PER_FS2_EV * np.asarray(masses) * self.omega_p ** 2 * stretch

    def kinetic_energy_per_atom(self, state: MDState, masses, estimator: str = "virial") -> np.ndarray:
        """Quantum kinetic energy of each atom, eV (n,); divide by 3 for the value per degree of freedom.

        Parameters
        ----------
        estimator : {"virial", "primitive"}
            Centroid virial, 3 k_B T / 2 - sum_j (q_j - q_c) . F_j / (2P) (its variance does not grow
            with P; use it), or primitive, 3 P k_B T / 2 - spring energy / P.
        """
        p, q = self.n_beads, state.extra["bead_positions"]
        if estimator == "virial":
            return self._centroid_virial(q, state.extra["bead_forces"])
        if estimator == "primitive":
            return 1.5 * p * self.kT_eV - self.spring_energy_per_atom(state, masses) / p
        raise InputError(f"estimator={estimator!r}: use 'virial' or 'primitive'")

    def _centroid_virial(self, beads, forces) -> np.ndarray:
        virial = np.sum((beads - beads.mean(0)) * forces, axis=(0, 2))
        return 1.5 * self.kT_eV - virial / (2.0 * self.n_beads)

    def thermo_values(self, state: MDState, masses) -> tuple:
        """Total primitive and centroid-virial kinetic energies, eV (the extra `ThermoLog` columns), and with a
        ``reference`` the bead-averaged energy difference to it and its centroid-virial kinetic energy (eV)."""
        values = tuple(float(self.kinetic_energy_per_atom(state, masses, e).sum()) for e in ("primitive", "virial"))
        if self.reference is None:
            return values
        beads = state.extra["bead_positions"]
        results = [check_result(self.reference, r) for r in self.reference.compute_copies(beads)]
        forces = np.array([np.asarray(r.forces, dtype=np.float64) for r in results]).reshape(beads.shape)
        delta = float(np.mean([r.energy for r in results])) - state.potential_energy
        return values + (delta, float(self._centroid_virial(beads, forces).sum()))

    def conserved_energy(self, state: MDState, masses) -> float:
        """H_P / P plus the heat the thermostat removed (per bead), eV: constant up to integration error."""
        v = state.extra["bead_velocities"]
        springs = float(self.spring_energy_per_atom(state, masses).sum())
        return state.potential_energy + (self._bead_kinetic(masses, v) + springs) / self.n_beads + state.heat_eV
