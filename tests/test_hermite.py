"""Hermite multipoles of the QM density (`qmml.qm.hermite`): against PySCF's exact integrals."""

import numpy as np
import pytest
from pyscf import gto, scf

from qmml import units
from qmml.qm.hermite import density_moments, derivative_tensors, multipole_potential


@pytest.fixture(scope="module")
def water_dimer():
    mol = gto.M(atom="O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587; O 2.9 0 0; H 3.3 0.5 -0.6; H 3.4 -0.4 0.6",
                basis="6-31g*", verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-11
    mf.kernel()
    return mol, mf.make_rdm1()


def test_derivative_tensors_are_the_derivatives_of_one_over_r_and_harmonic():
    x = np.array([[3.0, -2.0, 4.5], [-7.0, 1.0, 0.5]])
    order, h = 6, 1e-4
    t = derivative_tensors(x, order)
    assert np.allclose(t[:, 0, 0, 0], 1 / np.linalg.norm(x, axis=1), rtol=1e-14)
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = h
        fd = (derivative_tensors(x + step, order - 1) - derivative_tensors(x - step, order - 1)) / (2 * h)
        for k in range(order):
            for l in range(order - k):
                for m in range(order - k - l):
                    n = [k, l, m]
                    n[axis] += 1
                    exact = t[:, n[0], n[1], n[2]]
                    assert abs(fd[:, k, l, m] - exact).max() < 1e-7 * max(1.0, abs(exact).max())
    # 1/r is harmonic: every trace vanishes
    for k in range(order - 1):
        for l in range(order - 1 - k):
            for m in range(order - 1 - k - l):
                laplacian = t[:, k + 2, l, m] + t[:, k, l + 2, m] + t[:, k, l, m + 2]
                assert abs(laplacian).max() < 1e-12 * abs(t[:, k, l, m]).max() + 1e-15


def test_low_moments_are_pyscfs_charge_and_dipole(water_dimer):
    mol, dm = water_dimer
    centre = np.array([[0.3, -0.2, 0.1]])
    moments, _ = density_moments(mol, dm, centre, 2)
    assert moments[0, 0, 0, 0] == pytest.approx(mol.nelectron, abs=1e-10)
    with mol.with_common_orig(centre[0]):
        dipole = np.einsum("xij,ji->x", mol.intor("int1e_r"), dm)
        second = np.einsum("xij,ji->x", mol.intor("int1e_rr"), dm).reshape(3, 3)
    assert np.allclose([moments[0, 1, 0, 0], moments[0, 0, 1, 0], moments[0, 0, 0, 1]], dipole, atol=1e-10)
    assert np.allclose([moments[0, 2, 0, 0], moments[0, 1, 1, 0], moments[0, 0, 1, 1]],
                       [second[0, 0], second[0, 1], second[1, 2]], atol=1e-10)


@pytest.mark.parametrize("distance_A, order, tolerance", [(6.0, 12, 1e-11), (10.0, 12, 1e-13), (6.0, 4, 1e-5)])
def test_atom_centred_series_gives_the_exact_potential_beyond_the_density(water_dimer, distance_A, order, tolerance):
    mol, dm = water_dimer
    centres = mol.atom_coords()
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(300, 3))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    bohr = distance_A * units.ANGSTROM_BOHR
    points = centres.mean(0) + directions * (bohr + np.linalg.norm(centres - centres.mean(0), axis=1).max())
    exact = np.einsum("gij,ji->g", mol.intor("int1e_grids", grids=points), dm)
    moments, reach = density_moments(mol, dm, centres, order)
    error = np.abs(multipole_potential(moments, centres, points) - exact).max()
    print(f"{distance_A} Å, order {order}: largest error {error:.1e} Hartree/e (reach {reach.max():.2f} Bohr)")
    assert error < tolerance
    if order == 12:  # and it is the series that converges, not the low orders alone
        low, _ = density_moments(mol, dm, centres, 4)
        assert np.abs(multipole_potential(low, centres, points) - exact).max() > 100 * tolerance
