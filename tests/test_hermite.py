"""Hermite multipoles of the QM density (`qmml.qm.hermite`): against PySCF's exact integrals."""

import numpy as np
import pytest
from pyscf import gto, scf

from qmml import units
from qmml.qm.hermite import (density_moments, derivatives_of_inverse_distance, field_derivatives, local_operator,
                              local_operator_gradient, monomials,
                              potential_of_moments)


@pytest.fixture(scope="module")
def water_dimer():
    mol = gto.M(atom="O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587; O 2.9 0 0; H 3.3 0.5 -0.6; H 3.4 -0.4 0.6",
                basis="6-31g*", verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-11
    mf.kernel()
    return mol, mf.make_rdm1()


def test_derivative_tensors_are_the_derivatives_of_one_over_r_and_harmonic():
    # T_0 = 1/r, and each T_(n + e_axis) the derivative of T_n (central differences): by induction every T_n
    x = np.array([[3.0, -2.0, 4.5], [-7.0, 1.0, 0.5]])
    order, h = 7, 1e-4
    t = derivatives_of_inverse_distance(x, order)
    powers = monomials(order)
    index = {tuple(p): i for i, p in enumerate(powers)}
    assert np.allclose(t[:, 0], 1 / np.linalg.norm(x, axis=1), rtol=1e-14)
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = h
        fd = (derivatives_of_inverse_distance(x + step, order - 1)
              - derivatives_of_inverse_distance(x - step, order - 1)) / (2 * h)
        for n, p in enumerate(monomials(order - 1)):
            q = p.copy()
            q[axis] += 1
            exact = t[:, index[tuple(q)]]
            assert abs(fd[:, n] - exact).max() < 1e-7 * max(1.0, abs(exact).max())
    # 1/r is harmonic: every trace vanishes
    for n, p in enumerate(monomials(order - 2)):
        laplacian = sum(t[:, index[tuple(p + 2 * np.eye(3, dtype=int)[axis])]] for axis in range(3))
        assert abs(laplacian).max() < 1e-12 * abs(t[:, n]).max() + 1e-15


def test_field_derivatives_sum_the_derivatives_over_the_charges():
    rng = np.random.default_rng(4)
    charges, positions = rng.normal(size=50), rng.normal(size=(50, 3)) * 3 + 20
    centres = rng.normal(size=(2, 3))
    got = field_derivatives(charges, positions, centres, 6, chunk=16)
    for c, centre in enumerate(centres):
        assert np.allclose(got[c], charges @ derivatives_of_inverse_distance(centre - positions, 6), rtol=1e-12,
                           atol=1e-16)


def test_low_moments_are_pyscfs_charge_dipole_and_traceless_quadrupole(water_dimer):
    # the moments are those of point Hermite multipoles at the product centres: the Cartesian moments up to trace
    # terms, which no potential outside the density sees; the trace term of the second moments is the same on
    # every axis (the smoothing of each Gaussian), and it is there: they are not the Cartesian ones
    mol, dm = water_dimer
    centre = np.array([[0.3, -0.2, 0.1]])
    moments, _ = density_moments(mol, dm, centre, 2)
    assert moments[0, 0] == pytest.approx(mol.nelectron, abs=1e-10)
    with mol.with_common_orig(centre[0]):
        dipole = np.einsum("xij,ji->x", mol.intor("int1e_r"), dm)
        second = np.einsum("xij,ji->x", mol.intor("int1e_rr"), dm).reshape(3, 3)
    index = {tuple(p): i for i, p in enumerate(monomials(2))}
    assert np.allclose(moments[0, [index[(1, 0, 0)], index[(0, 1, 0)], index[(0, 0, 1)]]], dipole, atol=1e-10)
    assert np.allclose(moments[0, [index[(1, 1, 0)], index[(0, 1, 1)], index[(1, 0, 1)]]],
                       [second[0, 1], second[1, 2], second[0, 2]], atol=1e-10)
    trace = second.diagonal() - moments[0, [index[(2, 0, 0)], index[(0, 2, 0)], index[(0, 0, 2)]]]
    assert np.ptp(trace) < 1e-10 and trace[0] > 1.0


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
    series, gradient = potential_of_moments(moments, centres, points, gradient=True)
    error = np.abs(series - exact).max()
    print(f"{distance_A} Å, order {order}: largest error {error:.1e} Hartree/e (reach {reach.max():.2f} Bohr)")
    assert error < tolerance
    if order == 12:  # and it is the series that converges, not the low orders alone
        low, _ = density_moments(mol, dm, centres, 4)
        assert np.abs(potential_of_moments(low, centres, points) - exact).max() > 100 * tolerance
        # its gradient at the points: moving R is moving both functions the other way, 2 <d mu|1/|r-R||nu>
        exact_gradient = 2 * np.einsum("xgij,ji->gx", mol.intor("int1e_grids_ip", grids=points), dm)
        print(f"largest gradient error {np.abs(gradient - exact_gradient).max():.1e}")
        assert np.abs(gradient - exact_gradient).max() < tolerance


def test_local_operator_of_distant_charges_is_pyscfs_and_matches_the_series_energy(water_dimer):
    mol, dm = water_dimer
    centres = mol.atom_coords()
    rng = np.random.default_rng(2)
    directions = rng.normal(size=(400, 3))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    sites = centres.mean(0) + directions * rng.uniform(8, 14, size=(400, 1)) * units.ANGSTROM_BOHR
    charges = rng.normal(size=400) * 0.5
    exact = np.einsum("g,gij->ij", charges, mol.intor("int1e_grids", grids=sites))
    # the Taylor series over diffuse products converges more slowly than the multipole series: order 16 here
    operator = local_operator(mol, field_derivatives(charges, sites, centres, 16), centres)
    print(f"largest operator error {np.abs(operator - exact).max():.1e} Hartree")
    assert np.abs(operator - exact).max() < 1e-12
    # the electrons' energy in the sites' potential two ways: D . V, and the charges in the density's potential
    moments, _ = density_moments(mol, dm, centres, 12)
    assert abs(np.sum(dm * operator) - charges @ potential_of_moments(moments, centres, sites)) < 1e-11


def test_operator_gradient_is_the_derivative_of_pyscfs_exact_operator(water_dimer):
    mol, dm = water_dimer
    rng = np.random.default_rng(5)
    directions = rng.normal(size=(300, 3))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    sites = mol.atom_coords().mean(0) + directions * rng.uniform(8, 14, size=(300, 1)) * units.ANGSTROM_BOHR
    charges = rng.normal(size=300) * 0.5
    centres = mol.atom_coords()
    grad = local_operator_gradient(mol, dm, field_derivatives(charges, sites, centres, 16), centres)

    def energy(coords):  # D . <mu|Phi|nu> with PySCF's exact integrals, D held fixed
        moved = mol.set_geom_(coords, unit="Bohr", inplace=False)
        return np.sum(dm * np.einsum("g,gij->ij", charges, moved.intor("int1e_grids", grids=sites)))

    h = 1e-4
    for atom, axis in [(0, 0), (1, 2), (4, 1)]:
        step = np.zeros_like(centres)
        step[atom, axis] = h
        fd = (energy(centres + step) - energy(centres - step)) / (2 * h)
        print(f"atom {atom} axis {axis}: series {grad[atom, axis]:.10f}, finite differences {fd:.10f}")
        assert abs(grad[atom, axis] - fd) < 1e-8
