"""Mechanical properties from the stress and energy of any periodic qmml potential.

`elastic_constants`: the 6x6 Voigt matrix C_ij = d sigma_i / d epsilon_j by central finite strains of the
stress (`PotentialResult.stress`, exact for every qmml potential), with the ions relaxed in each strained cell
when asked.  The bulk modulus by three routes: from the elastic constants (`bulk_modulus_from_elastic`, the
Voigt average), from a third-order Birch-Murnaghan fit of E(V) (`equation_of_state`), and from the volume
fluctuations of a constant-pressure run (`bulk_modulus_from_volume_fluctuations`).

Voigt order xx, yy, zz, yz, xz, xy; shear strains are engineering strains (gamma_yz = 2 epsilon_yz), so C44 is
d sigma_yz / d gamma_yz.  Stress with ASE's sign, (1/V) dE/d(strain), positive under tension.  Units: Å, eV,
GPa, K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import InputError
from ..potential import PotentialWrapper, check_result

#: The (row, column) of each Voigt component.
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


@dataclass(frozen=True, eq=False)
class ElasticConstants:
    """Outcome of `elastic_constants`.

    Attributes
    ----------
    matrix_GPa : ndarray (6, 6)
        C_ij in Voigt order, GPa (symmetrized; ``asymmetry_GPa`` is what was removed).
    asymmetry_GPa : float
        Largest abs(C_ij - C_ji) / 2 before symmetrizing, GPa: a measure of the finite-difference and relaxation error.
    stress_GPa : ndarray (3, 3)
        Stress of the unstrained structure, GPa.  The constants are those of a stress-free reference only if it
        is small against them.
    strain : float
        The finite strain used (each component +- strain).
    relaxed_ions : bool
    """

    matrix_GPa: np.ndarray
    asymmetry_GPa: float
    stress_GPa: np.ndarray
    strain: float
    relaxed_ions: bool

    @property
    def bulk_modulus_GPa(self) -> float:
        """Voigt average of the bulk modulus, GPa."""
        return bulk_modulus_from_elastic(self.matrix_GPa)

    @property
    def shear_modulus_GPa(self) -> float:
        """Voigt average of the shear modulus, GPa."""
        c = self.matrix_GPa
        return float((np.trace(c[:3, :3]) - (c[0, 1] + c[0, 2] + c[1, 2]) + 3 * np.trace(c[3:, 3:])) / 15)


@dataclass(frozen=True, eq=False)
class EquationOfState:
    """Outcome of `equation_of_state`: a third-order Birch-Murnaghan fit of E(V).

    Attributes
    ----------
    volumes_A3, energies_eV : ndarray (n,)
        The points fitted, Å^3 and eV.
    volume_A3, energy_eV : float
        Equilibrium volume and energy of the fit.
    bulk_modulus_GPa : float
        B0 = V d^2E/dV^2 at the equilibrium volume, GPa.
    bulk_modulus_derivative : float
        B0' = dB/dP there (dimensionless).
    rms_residual_eV : float
    """

    volumes_A3: np.ndarray
    energies_eV: np.ndarray
    volume_A3: float
    energy_eV: float
    bulk_modulus_GPa: float
    bulk_modulus_derivative: float
    rms_residual_eV: float


class _InCell(PotentialWrapper):
    """``potential`` in one fixed cell, whatever cell the caller passes (ionic relaxation of a strained box)."""

    def __init__(self, potential, cell):
        super().__init__(potential)
        self.cell = cell

    def compute(self, positions, *, forces: bool = True, cell=None):
        return self.potential.compute(positions, forces=forces, cell=self.cell)


def _periodic_start(potential, system, positions, cell):
    system = potential.system if system is None else system
    cell = getattr(system, "cell", None) if cell is None else np.asarray(cell, dtype=np.float64)
    if cell is None:
        raise InputError(f"{getattr(system, 'source', 'the system')} has no periodic box: elastic constants and the "
                         "equation of state need one; build the system with box=[a, b, c, alpha, beta, gamma] (Å, °)")
    x = np.array(system.positions if positions is None else positions, dtype=np.float64)
    if x.shape != (system.n_atoms, 3):
        raise InputError(f"positions must have shape ({system.n_atoms}, 3), got {x.shape}")
    return x, np.array(cell, dtype=np.float64)


def _relaxed(potential, positions, cell, relax_ions: bool, fmax: float):
    if not relax_ions:
        return positions
    from ..optimization import optimize

    return optimize(_InCell(potential, cell), positions, fmax=fmax, progress=False).positions


def deformed(positions, cell, strain_matrix):
    """Positions and cell (rows, Å) under the homogeneous deformation F = 1 + strain_matrix (3, 3)."""
    f = np.eye(3) + np.asarray(strain_matrix, dtype=np.float64)
    return np.asarray(positions) @ f.T, np.asarray(cell) @ f.T


def _stress(potential, positions, cell):
    result = check_result(potential, potential.compute(positions, cell=cell))
    if result.stress is None:
        raise InputError(f"{potential!r} gives no stress in this box: elastic constants need a potential with stress "
                         "(MLPotential, a periodic Hamiltonian, or compute(...) returning stress=)")
    return np.asarray(result.stress, dtype=np.float64)


def elastic_constants(potential, system=None, *, strain: float = 0.005, relax_ions: bool = True,
                      fmax: float = 1e-3, positions=None, cell=None) -> ElasticConstants:
    """Elastic constants by central finite strains of the stress.

    Parameters
    ----------
    potential : qmml.Potential
        Any periodic potential with stress.
    system : qmml.System, optional
        Structure and box (default the potential's).  Use a relaxed, stress-free structure: the constants are
        the derivatives of the stress about it.
    strain : float
        Each of the six strain components is set to +strain and -strain (engineering strain for shears);
        0.001-0.01.  Smaller strains suffer from the relaxation's noise, larger from anharmonicity.
    relax_ions : bool
        Relax the positions in every strained cell (`qmml.optimize`, to ``fmax``): the relaxed-ion constants.
        False gives the clamped-ion ones.
    fmax : float
        Force convergence of the relaxations, eV/Å.
    positions, cell : array_like, optional
        Override the system's positions (Å) and cell (3x3 rows, Å).

    Returns
    -------
    ElasticConstants
    """
    if not 0 < strain <= 0.05:
        raise InputError(f"strain={strain} must be positive and at most 0.05 (a fraction; 0.005 is typical)")
    x0, cell0 = _periodic_start(potential, system, positions, cell)
    columns = []
    for j, (a, b) in enumerate(VOIGT):
        sides = []
        for sign in (1.0, -1.0):
            e = np.zeros((3, 3))
            e[a, b] += sign * strain / (1 if a == b else 2)
            e[b, a] = e[a, b]
            x, c = deformed(x0, cell0, e)
            s = _stress(potential, _relaxed(potential, x, c, relax_ions, fmax), c)
            sides.append(np.array([s[p, q] for p, q in VOIGT]))
        columns.append((sides[0] - sides[1]) / (2 * strain))
    raw = np.array(columns).T * units.EV_PER_A3_GPA
    return ElasticConstants(matrix_GPa=0.5 * (raw + raw.T), asymmetry_GPa=float(np.abs(raw - raw.T).max() / 2),
                            stress_GPa=_stress(potential, x0, cell0) * units.EV_PER_A3_GPA, strain=float(strain),
                            relaxed_ions=bool(relax_ions))


def bulk_modulus_from_elastic(matrix_GPa) -> float:
    """Voigt average of the bulk modulus from the elastic constants.

    Parameters
    ----------
    matrix_GPa : array_like (6, 6)
        Elastic constants in Voigt order, GPa.

    Returns
    -------
    float
        (C11 + C22 + C33 + 2 (C12 + C13 + C23)) / 9, GPa.
    """
    c = np.asarray(matrix_GPa, dtype=np.float64)
    if c.shape != (6, 6):
        raise InputError(f"elastic constants must be a 6x6 Voigt matrix, got shape {c.shape}")
    return float((np.trace(c[:3, :3]) + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9)


def equation_of_state(potential, system=None, *, volume_range: float = 0.04, points: int = 7,
                      relax_ions: bool = True, fmax: float = 1e-3, positions=None, cell=None) -> EquationOfState:
    """Bulk modulus from E(V): a third-order Birch-Murnaghan fit over isotropically scaled cells.

    The cell is scaled over V0 (1 +- ``volume_range``) at ``points`` volumes, the ions relaxed in each if asked,
    and the Birch-Murnaghan form fitted (a cubic in V^(-2/3), so the fit is linear least squares).

    Parameters
    ----------
    potential : qmml.Potential
        Any periodic potential.
    system : qmml.System, optional
        Structure and box (default the potential's), ideally relaxed.
    volume_range : float
        Fractional half-width of the volumes sampled (at most 0.2).
    points : int
        Number of volumes (5 or more).
    relax_ions : bool
        Relax the positions at every volume (`qmml.optimize`, to ``fmax``).
    fmax : float
        Force convergence of the relaxations, eV/Å.
    positions, cell : array_like, optional
        Override the system's positions (Å) and cell (3x3 rows, Å).

    Returns
    -------
    EquationOfState
    """
    if not 0 < volume_range <= 0.2 or int(points) < 5:
        raise InputError(f"volume_range={volume_range} must be in (0, 0.2] and points={points} at least 5")
    x0, cell0 = _periodic_start(potential, system, positions, cell)
    volumes, energies = [], []
    for scale in np.linspace(1 - volume_range, 1 + volume_range, int(points)):
        x, c = deformed(x0, cell0, (scale ** (1 / 3) - 1) * np.eye(3))
        x = _relaxed(potential, x, c, relax_ions, fmax)
        energies.append(float(check_result(potential, potential.compute(x, forces=False, cell=c)).energy))
        volumes.append(abs(float(np.linalg.det(c))))
    return birch_murnaghan_fit(volumes, energies)


def birch_murnaghan_fit(volumes_A3, energies_eV) -> EquationOfState:
    """The third-order Birch-Murnaghan fit of E(V) points: E = a + b x + c x^2 + d x^3 with x = V^(-2/3).

    Parameters
    ----------
    volumes_A3 : array_like (n,)
        Volumes, Å^3 (5 or more, around the minimum).
    energies_eV : array_like (n,)
        Energies, eV.

    Returns
    -------
    EquationOfState
        V0 (Å^3), E0 (eV), B0 (GPa), B0' and the fit's rms residual (eV).
    """
    v, e = np.asarray(volumes_A3, dtype=np.float64), np.asarray(energies_eV, dtype=np.float64)
    if v.shape != e.shape or len(v) < 5:
        raise InputError(f"birch_murnaghan_fit needs matching volumes and energies, 5 or more; got {v.shape} "
                         f"and {e.shape}")
    x = v ** (-2 / 3)
    poly = np.polynomial.Polynomial.fit(x, e, 3).convert()
    d1, d2, d3 = poly.deriv(1), poly.deriv(2), poly.deriv(3)
    roots = [r.real for r in d1.roots() if abs(r.imag) < 1e-12 and x.min() <= r.real <= x.max() and d2(r.real) > 0]
    if not roots:
        raise InputError("E(V) has no minimum inside the volumes sampled: start from a relaxed structure or widen "
                         "volume_range")
    x0 = roots[0]
    v0 = x0 ** -1.5
    # chain rule through x(V): x' = -2/3 V^-5/3, x'' = 10/9 V^-8/3, x''' = -80/27 V^-11/3
    xp, xpp, xppp = -2 / 3 * v0 ** (-5 / 3), 10 / 9 * v0 ** (-8 / 3), -80 / 27 * v0 ** (-11 / 3)
    e1, e2 = d1(x0), d2(x0)
    second = e2 * xp ** 2 + e1 * xpp
    third = d3(x0) * xp ** 3 + 3 * e2 * xp * xpp + e1 * xppp
    bulk = v0 * second
    return EquationOfState(volumes_A3=v, energies_eV=e, volume_A3=float(v0), energy_eV=float(poly(x0)),
                           bulk_modulus_GPa=float(bulk * units.EV_PER_A3_GPA),
                           bulk_modulus_derivative=float(-(second + v0 * third) / second),
                           rms_residual_eV=float(np.sqrt(np.mean((poly(x) - e) ** 2))))


def bulk_modulus_from_volume_fluctuations(volumes_A3, temperature_K: float, blocks: int = 5):
    """Isothermal bulk modulus from the volumes of a constant-pressure run: K = k_B T <V> / <(V - <V>)^2>.

    Parameters
    ----------
    volumes_A3 : array_like (n,)
        Volume at each sample of an equilibrated NPT run (e.g. the ``volume_A3`` column of the thermo log), Å^3.
    temperature_K : float
    blocks : int
        The error is the standard error of K over this many consecutive blocks.

    Returns
    -------
    bulk_modulus_GPa, error_GPa : float
    """
    v = np.asarray(volumes_A3, dtype=np.float64)
    if v.ndim != 1 or len(v) < 10 * blocks or not np.all(np.isfinite(v)) or v.min() <= 0:
        raise InputError(f"volumes_A3 must be {10 * blocks} or more positive finite volumes (Å^3), one per sample; "
                         f"got {v.shape}")
    if not temperature_K > 0:
        raise InputError(f"temperature_K={temperature_K} must be positive (K)")
    kt = units.BOLTZMANN_EV_PER_K * temperature_K

    def modulus(sample):
        return kt * sample.mean() / sample.var() * units.EV_PER_A3_GPA

    per_block = [modulus(b) for b in np.array_split(v, blocks)]
    return float(modulus(v)), float(np.std(per_block, ddof=1) / np.sqrt(blocks))
