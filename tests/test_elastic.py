"""Mechanical properties (`qmml.analysis.elastic`): elastic constants and the bulk modulus of Lennard-Jones fcc
argon at 0 K against the analytic lattice sums (Born's formula for pair potentials)."""

import numpy as np
import pytest

import qmml
from qmml import units
from qmml.analysis import (birch_murnaghan_fit, bulk_modulus_from_elastic, bulk_modulus_from_volume_fluctuations,
                           elastic_constants, equation_of_state)
from qmml.errors import InputError

EPSILON_EV = 119.8 * units.BOLTZMANN_EV_PER_K
SIGMA_A = 3.405
CUTOFF_SIGMA = 2.8  # between the 6th (2.45 d) and 7th (2.65 d) fcc shells at the zero-stress spacing d
FCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


class LennardJones(qmml.Potential):
    """Plain Lennard-Jones argon, minimum image, truncated at ``CUTOFF_SIGMA`` (no shift: no pair crosses it
    under the small strains here), with the virial stress (1/V) sum_pairs g (x) d."""

    def __init__(self, system):
        self.system = system
        self.i, self.j = np.triu_indices(system.n_atoms, 1)

    def compute(self, positions, *, forces=True, cell=None):
        cell = self.system.cell if cell is None else np.asarray(cell, dtype=float)
        cutoff = CUTOFF_SIGMA * SIGMA_A
        assert 2 * cutoff < (1 / np.linalg.norm(np.linalg.inv(cell), axis=0)).min()
        frac = np.asarray(positions) @ np.linalg.inv(cell)
        df = frac[self.j] - frac[self.i]
        d = (df - np.round(df)) @ cell
        r2 = np.einsum("ij,ij->i", d, d)
        near = r2 < cutoff ** 2
        d, r2, i, j = d[near], r2[near], self.i[near], self.j[near]
        x6 = (SIGMA_A ** 2 / r2) ** 3
        g = (4 * EPSILON_EV * (6 * x6 - 12 * x6 * x6) / r2)[:, None] * d  # dU/dd
        n = len(positions)
        f = np.zeros((n, 3))
        np.add.at(f, i, g)
        np.add.at(f, j, -g)
        stress = d.T @ g / abs(np.linalg.det(cell))
        return qmml.PotentialResult(energy=float(np.sum(4 * EPSILON_EV * (x6 * x6 - x6))), forces=f, stress=stress)


def neighbour_vectors():
    """Lattice vectors of an fcc atom's neighbours in units of the cubic lattice constant, up to the cutoff."""
    grid = np.array(np.meshgrid(*[np.arange(-4, 5)] * 3, indexing="ij")).reshape(3, -1).T
    points = (grid[:, None, :] + FCC_BASIS[None]).reshape(-1, 3)
    return points[np.linalg.norm(points, axis=1) > 0]


def analytic_constants():
    """Zero-stress lattice constant (Å) and C11, C12, C44 (GPa) of the truncated LJ crystal from lattice sums:
    a0 = sigma (2 S12 / S6)^(1/6), C_abcd = 1/(2 Omega) sum_j (phi'' - phi'/r) r_a r_b r_c r_d / r^2."""
    s = neighbour_vectors()
    # the shells inside the cutoff at a0 (fixed point: a0 depends on which shells, which depend on a0)
    a = 1.55 * SIGMA_A
    for _ in range(5):
        inside = s[np.linalg.norm(s, axis=1) * a < CUTOFF_SIGMA * SIGMA_A]
        sn = np.linalg.norm(inside, axis=1)
        a = SIGMA_A * (2 * np.sum(sn ** -12.0) / np.sum(sn ** -6.0)) ** (1 / 6)
    r_vec = inside * a
    r = np.linalg.norm(r_vec, axis=1)
    x6 = (SIGMA_A / r) ** 6
    d1 = 4 * EPSILON_EV * (-12 * x6 * x6 + 6 * x6) / r
    d2 = 4 * EPSILON_EV * (156 * x6 * x6 - 42 * x6) / r ** 2
    omega = a ** 3 / 4
    w = (d2 - d1 / r) / r ** 2 / (2 * omega)

    def c(p, q, u, v):
        return float(np.sum(w * r_vec[:, p] * r_vec[:, q] * r_vec[:, u] * r_vec[:, v])) * units.EV_PER_A3_GPA

    return a, c(0, 0, 0, 0), c(0, 0, 1, 1), c(1, 2, 1, 2)


def fcc_argon(a, n_cells=4):
    grid = np.array(np.meshgrid(*[np.arange(n_cells)] * 3, indexing="ij")).reshape(3, -1).T
    positions = (grid[:, None, :] + FCC_BASIS[None]).reshape(-1, 3) * a
    side = a * n_cells
    return qmml.System.from_arrays(["Ar"] * len(positions), positions, box=[side, side, side, 90, 90, 90])


@pytest.fixture(scope="module")
def argon():
    a0, c11, c12, c44 = analytic_constants()
    system = fcc_argon(a0)
    return LennardJones(system), system, (c11, c12, c44)


@pytest.mark.parametrize("relax_ions", [False, True])
def test_elastic_constants_of_lennard_jones_argon_are_the_lattice_sums(argon, relax_ions):
    potential, system, (c11, c12, c44) = argon
    result = elastic_constants(potential, system, strain=0.002, relax_ions=relax_ions)
    c = result.matrix_GPa
    print(f"C11 {c[0, 0]:.3f} / {c11:.3f}, C12 {c[0, 1]:.3f} / {c12:.3f}, C44 {c[3, 3]:.3f} / {c44:.3f} GPa; "
          f"stress {np.abs(result.stress_GPa).max():.1e} GPa")
    assert np.abs(result.stress_GPa).max() < 1e-6  # the reference is the zero-stress lattice
    for got, exact in ((c[0, 0], c11), (c[1, 1], c11), (c[2, 2], c11), (c[0, 1], c12), (c[1, 2], c12),
                       (c[3, 3], c44), (c[4, 4], c44), (c[5, 5], c44)):
        assert got == pytest.approx(exact, rel=0.01)
    # cubic symmetry: no coupling of normal and shear strains
    assert np.abs(c[:3, 3:]).max() < 1e-3 * c11 and np.abs(c[3:, 3:] - np.diag(np.diag(c[3:, 3:]))).max() < 1e-3 * c11
    assert result.bulk_modulus_GPa == pytest.approx((c11 + 2 * c12) / 3, rel=0.01)
    assert c12 == pytest.approx(c44, rel=1e-9)  # Cauchy's relation of central forces, a check of the sums


def test_bulk_modulus_from_the_equation_of_state_is_the_lattice_sum(argon):
    potential, system, (c11, c12, _) = argon
    eos = equation_of_state(potential, system, volume_range=0.02, points=7, relax_ions=False)
    print(f"B0 {eos.bulk_modulus_GPa:.3f} GPa (lattice sums {(c11 + 2 * c12) / 3:.3f}), B0' "
          f"{eos.bulk_modulus_derivative:.2f}, V0 {eos.volume_A3:.2f} / {system.cell.diagonal().prod():.2f} Å^3")
    assert eos.bulk_modulus_GPa == pytest.approx((c11 + 2 * c12) / 3, rel=0.01)
    assert eos.volume_A3 == pytest.approx(np.prod(system.cell.diagonal()), rel=1e-4)
    assert 6 < eos.bulk_modulus_derivative < 12  # Lennard-Jones solids: about 9


def test_birch_murnaghan_fit_recovers_its_own_parameters():
    v0, e0, b0, bp = 40.0, -2.0, 0.6, 4.5  # Å^3, eV, eV/Å^3
    v = np.linspace(36, 44, 9)
    eta = (v0 / v) ** (2 / 3)
    e = e0 + 9 * v0 * b0 / 16 * ((eta - 1) ** 3 * bp + (eta - 1) ** 2 * (6 - 4 * eta))
    fit = birch_murnaghan_fit(v, e)
    assert fit.volume_A3 == pytest.approx(v0, rel=1e-10) and fit.energy_eV == pytest.approx(e0, rel=1e-10)
    assert fit.bulk_modulus_GPa == pytest.approx(b0 * units.EV_PER_A3_GPA, rel=1e-9)
    assert fit.bulk_modulus_derivative == pytest.approx(bp, rel=1e-9)


def test_volume_fluctuations_give_the_bulk_modulus_of_a_gaussian_ensemble():
    # at constant pressure p(V) ~ exp(-K (V - V0)^2 / (2 kT V0)): a Gaussian of variance kT V0 / K
    kt = units.BOLTZMANN_EV_PER_K * 300.0
    v0, k = 1000.0, 2.0 / units.EV_PER_A3_GPA
    volumes = np.random.default_rng(3).normal(v0, np.sqrt(kt * v0 / k), 40000)
    modulus, error = bulk_modulus_from_volume_fluctuations(volumes, 300.0)
    assert modulus == pytest.approx(2.0, abs=4 * error) and error < 0.05


def test_mechanical_properties_reject_bad_input(argon):
    potential, system, (c11, c12, c44) = argon
    with pytest.raises(InputError, match="strain"):
        elastic_constants(potential, system, strain=-0.01)
    open_box = qmml.System.from_arrays(["Ar", "Ar"], [[0, 0, 0], [3.8, 0, 0]])
    with pytest.raises(InputError, match="no periodic box"):
        elastic_constants(LennardJones(open_box), open_box)
    with pytest.raises(InputError, match="matching volumes"):
        birch_murnaghan_fit([1, 2, 3, 4, 5], [1, 2, 3])
    with pytest.raises(InputError, match="6x6"):
        bulk_modulus_from_elastic(np.eye(3))
    with pytest.raises(InputError, match="positive"):
        bulk_modulus_from_volume_fluctuations(np.full(100, 10.0), -1.0)
