"""Total forces from Hamiltonian.compute equal -dE/dR by central differences (step 1e-3 Å)."""

import numpy as np
import pytest

import qmml
from conftest import central_difference_forces

# QM = the hydroxyl end of 1-butanol: C4, O1 and their hydrogens; the C3-C4 bond is cut
# (Q1 = C4 = atom 3, M1 = C3 = atom 2, M2 = C2 + H31 + H32 = atoms 1, 10, 11).
QM_HYDROXYL_END = "name C4 O1 H41 H42 HO1"


@pytest.mark.parametrize("boundary", ["z1", "rcd"])
def test_forces_match_finite_differences_with_cut_bond(butanol, boundary):
    part = qmml.partition(butanol, QM_HYDROXYL_END, charge=0, boundary=boundary)
    assert [(lk.q1, lk.m1) for lk in part.links] == [(3, 2)]
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11), qmml.FixedCharges())
    positions = butanol.positions.copy()
    result = ham.compute(positions)
    numeric = central_difference_forces(ham, positions)
    np.testing.assert_allclose(result.forces, numeric, atol=1e-4, rtol=0)
    assert np.abs(result.forces.sum(axis=0)).max() < 1e-6
    # the link atom is not an atom of the result, but its force reached Q1 and M1
    assert result.forces.shape == (butanol.n_atoms, 3)


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["rc", "shift", "z3"])
def test_other_schemes_with_gaussian_charges(butanol, boundary):
    part = qmml.partition(butanol, QM_HYDROXYL_END, charge=0, boundary=boundary)
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11), qmml.FixedCharges(),
                           charge_radii_A={"C": 0.5, "H": 0.3, "O": 0.5})
    positions = butanol.positions.copy()
    atoms = [1, 2, 3, 10]  # M2, M1, Q1, M2(H): every atom whose site moves with the boundary scheme
    numeric = central_difference_forces(ham, positions, atoms=atoms)
    np.testing.assert_allclose(ham.compute(positions).forces[atoms], numeric[atoms], atol=1e-4, rtol=0)


def test_open_shell_dft_forces():
    """UKS doublet (water cation) in point charges: forces include the DFT grid response."""
    system = qmml.System.from_arrays(
        ["O", "H", "H", "O", "H", "H"],
        [[0.0, 0.0, 0.0], [0.0, 0.76, 0.59], [0.0, -0.76, 0.59], [2.9, 0.1, -0.2], [3.4, 0.8, 0.2], [3.3, -0.7, 0.1]],
        bonds=[(0, 1), (0, 2), (3, 4), (3, 5)], residues=[1, 1, 1, 2, 2, 2])
    part = qmml.partition(system, "resid 1", charge=1, multiplicity=2)
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("pbe", "sto-3g", conv_tol=1e-11, grids_level=2),
                           qmml.FixedCharges([0, 0, 0, -0.834, 0.417, 0.417]))
    atoms = [1, 3]  # a QM hydrogen and an environment oxygen
    numeric = central_difference_forces(ham, system.positions.copy(), atoms=atoms)
    np.testing.assert_allclose(ham.compute(system.positions).forces[atoms], numeric[atoms], atol=1e-4, rtol=0)


def test_constant_potential_shift_changes_no_force_when_charge_is_conserved(butanol):
    """Boundary maps conserve charge, so a constant added to phi leaves dE/dq . dq/dR unchanged: the
    charge gradient C^T (phi + c) differs from C^T phi by c in every component (columns sum to one)."""
    part = qmml.partition(butanol, QM_HYDROXYL_END, charge=0, boundary="rcd")
    phi = np.random.default_rng(0).normal(size=part.boundary.n_sites)
    shift = part.boundary.env_charge_gradient(phi + 3.0) - part.boundary.env_charge_gradient(phi)
    np.testing.assert_allclose(shift, 3.0, atol=1e-12)


@pytest.mark.parametrize("boundary", ["z1", "rcd"])
def test_forces_on_boundary_atoms_and_solvent_charges(boundary):
    """Butanol's hydroxyl end in 59 TIP3P waters: Q1, M1, M2, the nearest and the farthest water atom."""
    from conftest import STRUCTURES

    system = qmml.load_system(STRUCTURES / "butanol_water.psf", STRUCTURES / "butanol_water.pdb")
    part = qmml.partition(system, "resname BUOH and " + QM_HYDROXYL_END, charge=0, boundary=boundary)
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11), qmml.FixedCharges())
    positions = system.positions.copy()
    water = np.flatnonzero(system.resnames == "TIP3")
    distance = np.linalg.norm(positions[water] - positions[4], axis=1)
    atoms = [3, 2, 1, int(water[np.argmin(distance)]), int(water[np.argmax(distance)])]
    result = ham.compute(positions)
    numeric = central_difference_forces(ham, positions, atoms=atoms)
    np.testing.assert_allclose(result.forces[atoms], numeric[atoms], atol=1e-4, rtol=0)
    assert np.abs(result.forces.sum(axis=0)).max() < 1e-6


def test_energy_invariant_and_forces_covariant_under_rigid_motion(butanol):
    """Rotate and translate everything: same energy, forces rotate with the system."""
    part = qmml.partition(butanol, QM_HYDROXYL_END, charge=0, boundary="rcd")
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11), qmml.FixedCharges(),
                           charge_radii_A={"C": 0.5, "H": 0.3, "O": 0.5})
    reference = ham.compute(butanol.positions)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    rotation = rotation @ np.array([[1, 0, 0], [0, np.cos(1.1), -np.sin(1.1)], [0, np.sin(1.1), np.cos(1.1)]])
    moved = butanol.positions @ rotation.T + np.array([3.0, -7.5, 12.25])
    result = ham.compute(moved)
    assert result.energy == pytest.approx(reference.energy, abs=1e-6)
    np.testing.assert_allclose(result.forces, reference.forces @ rotation.T, atol=1e-5)
