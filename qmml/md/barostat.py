"""Stochastic cell rescaling: the barostat sub-step C that turns Langevin dynamics into NPT.

Bernetti & Bussi, J. Chem. Phys. 153, 114107 (2020).  The volume follows the overdamped Langevin
equation

    d eps = -(beta_T / tau_p) (P0 - P_int) dt + sqrt(2 k_B T beta_T / (V tau_p)) dW,   eps = ln V,

with P_int = 2 K / (3 V) - tr(stress) / 3 the instantaneous pressure (kinetic part included), and
every move scales the positions and the cell by s = exp(d eps / 3) and the velocities by 1 / s.
It samples the isothermal-isobaric ensemble for any compressibility beta_T and relaxation time tau_p:
those set only how fast the volume relaxes (beta_T / tau_p), the fluctuations come from the physics.

Integration follows the reference implementation's time-reversible scheme (the "T" integrator of
the authors' SimpleMD, github.com/bussilab/crescale): the move is made in lambda = sqrt(V), where the
diffusion coefficient D = k_B T beta_T / (4 tau_p) is constant, by an Euler-Maruyama step with the
force on lambda taken at the start of the step; the same force at the end of the step (where the
potential is evaluated anyway) gives the log-ratio of the forward and backward move probabilities,
i.e. the heat the move exchanged with the bath.  With that heat the effective energy

    E_kin + E_pot + P0 V + (thermostat heat) + (barostat heat)

is conserved up to the integration error, so its drift tests the whole scheme.  The scaling is
spread over the drifts of the step (`scaled_drift`, exactly time-reversible), so no extra
evaluation of the potential is needed.

Atoms, not molecules, are scaled (bond lengths follow the box, as in the reference method: exact for
flexible models; only rigid, constrained molecules would need their centres scaled instead).
Positions are scaled about the origin and never wrapped: an affine map, so every periodic image is
scaled consistently.

Units: Å, fs, eV, K, amu; pressure in bar and compressibility in 1/bar at the interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import InputError
from .state import generator, generator_state



def volume(cell) -> float:
    """Volume of the cell (rows are lattice vectors), Å^3."""
    return abs(float(np.linalg.det(cell)))


def pressure_tensor(masses, velocities, stress, cell) -> np.ndarray:
    """Instantaneous pressure tensor, eV/Å^3: P_ab = (sum_i m_i v_ia v_ib) / V - stress_ab.

    ``stress`` is the potential's (1/V) dE/d(strain) (ASE sign), velocities Å/fs, masses amu."""
    kinetic = units.AMU_A2_PER_FS2_EV * np.einsum("i,ia,ib->ab", masses, velocities, velocities)
    return kinetic / volume(cell) - np.asarray(stress, dtype=np.float64)


def density_g_per_cm3(masses, cell) -> float:
    """Mass density of atoms with ``masses`` (amu) in ``cell`` (rows, Å), g/cm^3."""
    return float(np.sum(masses)) / volume(cell) * units.AMU_PER_A3_G_PER_CM3


def cell_parameters(cell) -> tuple:
    """Lengths a, b, c (Å) and angles alpha, beta, gamma (degrees) of a cell with lattice vectors as rows."""
    cell = np.asarray(cell, dtype=np.float64)
    lengths = np.linalg.norm(cell, axis=1)

    def angle(i, j):
        return float(np.degrees(np.arccos(np.clip(cell[i] @ cell[j] / (lengths[i] * lengths[j]), -1.0, 1.0))))

    return (*map(float, lengths), angle(1, 2), angle(0, 2), angle(0, 1))


def scaled_drift(positions, velocities, h_fs, factor):
    """A with cell scaling: positions move for ``h_fs`` while they (and the cell) are scaled by ``factor``
    and the velocities by 1 / ``factor``.

    x' = f x + (f + 1/f) / 2 h v,  v' = v / f: its own inverse after reversing the velocities and the
    scaling, and volume-preserving in (x, v), so the step stays time-reversible.  ``factor`` = 1 is
    the plain drift, to the last bit.
    """
    if factor == 1.0:
        return positions + h_fs * velocities, velocities
    return factor * positions + (0.5 * (factor + 1.0 / factor) * h_fs) * velocities, velocities / factor


@dataclass(frozen=True)
class CellMove:
    """One step's cell move, drawn at the start of the step and completed at its end.

    Attributes
    ----------
    half_factor : float
        Scaling of positions and cell in each of the step's two drifts (velocities by its inverse).
    log_volume_change : float
        ln(V_new / V_old).
    d_lambda : float
        Change of lambda = sqrt(V), Å^1.5.
    heat_eV : float
        The start's share of the move's heat, eV.
    rng_state : str
        The barostat's random stream after the draw.
    """

    half_factor: float
    log_volume_change: float
    d_lambda: float
    heat_eV: float
    rng_state: str


class StochasticCellRescaling:
    """Isotropic stochastic cell rescaling barostat (the volume moves, the cell keeps its shape).

    Give it to `Langevin` (``Langevin(..., barostat=StochasticCellRescaling(...))``), which then samples
    the NPT ensemble at its temperature; the potential must be periodic and return ``stress``.

    Parameters
    ----------
    pressure_bar : float
        Target pressure P0, bar.
    compressibility_per_bar : float
        Isothermal compressibility beta_T used to couple, 1/bar (4.5e-5 is water's).  Only the ratio
        compressibility / relaxation time enters: it sets how fast the volume relaxes, not its
        distribution.  0 switches the barostat off (the NVT run, bit for bit).
    relaxation_fs : float
        Relaxation time tau_p of the volume, fs (hundreds of steps or more; 1000 is typical).
    mode : {"isotropic"}
        Only isotropic scaling is implemented.

    Notes
    -----
    The barostat draws one normal number per step from its own random stream (seeded from the
    integrator's seed, kept in the `MDState` and in checkpoints), so a restarted run continues bit for
    bit, and the thermostat's random numbers are those of the NVT run with the same seed.
    """

    name = "stochastic_cell_rescaling"
    thermo_columns = ("volume_A3", "density_g_per_cm3", "pressure_bar", "a_A", "b_A", "c_A",
                      "alpha_deg", "beta_deg", "gamma_deg")

    def __init__(self, pressure_bar: float = 1.0, compressibility_per_bar: float = 4.5e-5,
                 relaxation_fs: float = 1000.0, mode: str = "isotropic"):
        if not np.isfinite(pressure_bar):
            raise InputError(f"pressure_bar={pressure_bar} must be a finite number (bar)")
        if not 0 <= compressibility_per_bar < np.inf:
            raise InputError(f"compressibility_per_bar={compressibility_per_bar} must be zero or positive (1/bar; "
                             "4.5e-5 for water)")
        if not relaxation_fs > 0:
            raise InputError(f"relaxation_fs={relaxation_fs} must be positive (fs; e.g. 1000)")
        if mode != "isotropic":
            raise InputError(f"mode={mode!r}: only 'isotropic' stochastic cell rescaling is implemented")
        self.pressure_bar = float(pressure_bar)
        self.compressibility_per_bar = float(compressibility_per_bar)
        self.relaxation_fs = float(relaxation_fs)
        self.mode = mode

    def __repr__(self) -> str:
        return (f"StochasticCellRescaling(pressure_bar={self.pressure_bar}, compressibility_per_bar="
                f"{self.compressibility_per_bar}, relaxation_fs={self.relaxation_fs}, mode={self.mode!r})")

    @property
    def pressure(self) -> float:
        """P0, eV/Å^3."""
        return self.pressure_bar * units.BAR_EV_PER_A3

    def _diffusion(self, kT: float) -> float:
        """Diffusion coefficient of lambda = sqrt(V), Å^3/fs."""
        return kT * (self.compressibility_per_bar / units.BAR_EV_PER_A3) / (4.0 * self.relaxation_fs)

    def _force(self, cell, stress, velocities, masses, kT) -> float:
        """-dF/d lambda, eV/Å^1.5, with F = E_kin + E_pot + P0 V - (k_B T / 2) ln V the free energy of
        lambda = sqrt(V) at fixed scaled positions and velocities (the log from dV = 2 lambda d lambda)."""
        v = volume(cell)
        p_int = float(np.trace(pressure_tensor(masses, velocities, stress, cell))) / 3.0
        return -2.0 * np.sqrt(v) * (self.pressure - p_int - 0.5 * kT / v)

    # -- the sub-step C -----------------------------------------------------------------------
    def begin(self, cell, stress, velocities, masses, h_fs: float, temperature_K: float, rng_state: str) -> CellMove:
        """Draw the step's cell move from the pressure at the start of the step (after the first kick)."""
        if stress is None:
            raise InputError("constant pressure needs the potential's stress, and this potential gives none (an MM "
                             "layer with stress=False, job file mm.stress: false); turn the stress on")
        kT = units.BOLTZMANN_EV_PER_K * temperature_K
        diffusion = self._diffusion(kT)
        force = self._force(cell, stress, velocities, masses, kT)
        gen = generator(rng_state)
        d_lambda = diffusion / kT * force * h_fs + np.sqrt(2.0 * diffusion * h_fs) * gen.standard_normal()
        ratio = d_lambda / np.sqrt(volume(cell))
        if not ratio > -0.5:  # the box would lose over half its volume in one step: absurd coupling
            raise InputError(f"stochastic cell rescaling: the volume would shrink by {1 - (1 + ratio) ** 2:.0%} in "
                             "one step; lengthen relaxation_fs or lower compressibility_per_bar")
        log_volume_change = 2.0 * float(np.log1p(ratio))
        return CellMove(half_factor=float(np.exp(log_volume_change / 6.0)), log_volume_change=log_volume_change,
                        d_lambda=float(d_lambda),
                        heat_eV=0.5 * d_lambda * force - 0.25 * diffusion / kT * h_fs * force * force,
                        rng_state=generator_state(gen))

    def end(self, move: CellMove, cell, stress, velocities, masses, h_fs: float, temperature_K: float) -> float:
        """Heat (eV) the completed move exchanged with the bath, from the state at the end of the step
        (before the last kick): k_B T ln(forward / backward probability) minus the entropic part of F."""
        kT = units.BOLTZMANN_EV_PER_K * temperature_K
        diffusion = self._diffusion(kT)
        force = self._force(cell, stress, velocities, masses, kT)
        return float(move.heat_eV + 0.5 * move.d_lambda * force + 0.25 * diffusion / kT * h_fs * force * force
                     - 0.5 * kT * move.log_volume_change)

    # -- reporting ----------------------------------------------------------------------------
    def thermo_values(self, state, masses) -> tuple:
        """Volume (Å^3), density (g/cm^3), pressure (bar), cell lengths (Å) and angles (degrees)."""
        p = float(np.trace(pressure_tensor(masses, state.velocities, state.stress, state.cell))) / 3.0
        return (volume(state.cell), density_g_per_cm3(masses, state.cell), p / units.BAR_EV_PER_A3,
                *cell_parameters(state.cell))

    def effective_energy(self, state, kinetic_eV: float) -> float:
        """E_kin + E_pot + P0 V + thermostat heat + barostat heat, eV: conserved by a correct integrator."""
        return (state.potential_energy + kinetic_eV + self.pressure * volume(state.cell) + state.heat_eV
                + state.barostat_heat_eV)
