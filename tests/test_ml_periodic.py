"""Ewald sums and strain derivatives of the environment model: Madelung constants, independence of the
splitting, exact forces and stress, and the periodic invariances."""

import math

import numpy as np
import pytest
import torch

import qmml
from qmml import units
from qmml.ml import Dataset
from qmml.periodic.ewald import coulomb_open, ewald_coulomb
from conftest import DATA


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def madelung(charges, positions, cell, nearest):
    energy = ewald_coulomb(t(charges), t(positions), cell, real_cutoff=3.0, accuracy=1e-10) / units.COULOMB_EV_A
    return -float(energy) * nearest / (len(charges) / 2)


def test_madelung_constants_in_conventional_and_primitive_cells():
    rock_salt = [[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    signs = [(-1) ** sum(p) for p in rock_salt]
    assert madelung(signs, rock_salt, np.eye(3) * 2.0, 1.0) == pytest.approx(1.747565, abs=1e-6)
    fcc = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)  # the primitive (triclinic) cell, a = 2
    assert madelung([1, -1], [[0, 0, 0], [1, 0, 0]], fcc, 1.0) == pytest.approx(1.747565, abs=1e-6)
    cscl = madelung([1, -1], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3), math.sqrt(3) / 2)
    assert cscl == pytest.approx(1.762675, abs=1e-6)


def test_ewald_energy_is_independent_of_the_split_and_periodic():
    rng = np.random.default_rng(1)
    cell = np.array([[6.0, 0, 0], [1.2, 5.5, 0], [-0.7, 0.9, 6.3]])
    x = rng.uniform(0, 1, (12, 3)) @ cell
    for q in (rng.normal(size=12) - 0.0, rng.normal(size=12) + 0.2):  # neutral or not: the background term
        q = q - q.mean() if q.mean() < 0.1 else q
        energies = [float(ewald_coulomb(t(q), t(x), cell, real_cutoff=rc, accuracy=1e-12)) for rc in (4.0, 7.0, 11.0)]
        assert np.ptp(energies) < 1e-8 * max(1.0, abs(energies[0]))
        moved = x.copy()
        moved[3] += cell[2] - cell[0]
        assert float(ewald_coulomb(t(q), t(moved), cell, real_cutoff=5.0, accuracy=1e-12)) == pytest.approx(energies[0], abs=1e-8)
        skewed = cell.copy()
        skewed[2] += cell[0]  # the same lattice
        assert float(ewald_coulomb(t(q), t(x), skewed, real_cutoff=5.0, accuracy=1e-12)) == pytest.approx(energies[0], abs=1e-8)


@pytest.fixture(scope="module")
def water_box():
    """A GFN2-xTB water box from the shipped test set (16 waters, 7.82 Å), sheared into a triclinic cell."""
    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    shear = np.array([[1.0, 0.0, 0.0], [0.1, 1.0, 0.0], [-0.05, 0.08, 1.0]])
    return np.asarray(frame.elements), np.asarray(frame.positions) @ shear.T, np.asarray(frame.cell) @ shear.T


def strain_and_forces_check(model, z, x, cell, potential, **kw):
    """Largest errors of the strain derivative (GPa) and of the forces (eV/Å) against central differences
    of energy + potential . charges."""
    p = model.predict(z, x, cell=cell, potential=potential, **kw)

    def objective(xx, cc):
        q = model.predict(z, xx, cell=cc, forces=False, **kw)
        return q.energy + float(potential @ q.charges)

    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = 1e-5
            up, down = (np.eye(3) + eps).T, (np.eye(3) - eps).T
            fd[a, b] = (objective(x @ up, cell @ up) - objective(x @ down, cell @ down)) / 2e-5
    stress_error = np.abs(fd - p.strain_derivative).max() / abs(np.linalg.det(cell)) * units.EV_PER_A3_GPA
    force_error = 0.0
    for atom in (0, 4):
        for k in range(3):
            step = np.zeros_like(x)
            step[atom, k] = 1e-5
            f = -(objective(x + step, cell) - objective(x - step, cell)) / 2e-5
            force_error = max(force_error, abs(f - p.forces[atom, k]))
    return stress_error, force_error


def test_water_model_strain_derivative_with_charge_response(water_box):
    z, x, cell = water_box
    n = len(z) // 3
    potential = np.random.default_rng(0).normal(0, 0.5, len(z))  # V: the charge response is part of it
    stress_error, force_error = strain_and_forces_check(
        qmml.load_model("water").double(), z, x, cell, potential, groups=np.repeat(np.arange(n), 3),
        group_charges=np.zeros(n))
    assert stress_error < 1e-5 and force_error < 1e-6


@pytest.mark.parametrize("form", ["dsf", "ewald"])
def test_ion_model_strain_derivative_and_forces_for_both_coulomb_forms(water_box, form):
    """Na+ and Cl- replacing two waters of the box, with the organic model's Coulomb term."""
    z, x, cell = water_box
    keep = np.arange(6, len(z))
    zz = np.concatenate([[11, 17], z[keep]])
    xx = np.concatenate([x[[0, 3]], x[keep]])
    molecules = np.concatenate([[0, 1], 2 + np.repeat(np.arange(len(keep) // 3), 3)])
    model = qmml.load_model("organic").double().with_coulomb(form)
    potential = np.random.default_rng(1).normal(0, 0.5, len(zz))
    stress_error, force_error = strain_and_forces_check(model, zz, xx, cell, potential, groups=np.zeros(len(zz), int),
                                                        group_charges=[0.0], molecules=molecules)
    assert stress_error < 1e-5 and force_error < 1e-6
    moved = xx.copy()
    moved[1] += cell[1]  # the chloride by a lattice vector
    kw = dict(cell=cell, groups=np.zeros(len(zz), int), group_charges=[0.0], molecules=molecules, forces=False)
    assert model.predict(zz, moved, **kw).energy == pytest.approx(model.predict(zz, xx, **kw).energy, abs=1e-8)


def test_ewald_form_without_a_box_is_the_bare_coulomb_sum_between_molecules():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 8, (9, 3))
    q = rng.normal(size=9)
    molecules = np.repeat(np.arange(3), 3)
    expected = sum(q[a] * q[b] / np.linalg.norm(x[a] - x[b]) for a in range(9) for b in range(a + 1, 9)
                   if molecules[a] != molecules[b]) * units.COULOMB_EV_A
    assert float(coulomb_open(t(q), t(x), exclude=torch.tensor(molecules))) == pytest.approx(expected, rel=1e-12)
    # and a large box approaches it (the periodic images and the background fade as 1/L)
    big = float(ewald_coulomb(t(q - q.mean()), t(x), np.eye(3) * 400.0, real_cutoff=15.0,
                              exclude=torch.tensor(molecules)))
    bare = float(coulomb_open(t(q - q.mean()), t(x), exclude=torch.tensor(molecules)))
    assert big == pytest.approx(bare, abs=2e-3)


def test_subtractive_environment_strain_derivative(water_box):
    """MLEnvironment in the subtractive scheme: E_ML(all) - E_ML(QM region, open boundaries) plus the charge
    response, differentiated with respect to strain."""
    from MDAnalysis.lib.mdamath import triclinic_box

    z, x, sheared = water_box
    symbols = np.where(z == 8, "O", "H")
    n = len(z) // 3
    box = triclinic_box(*sheared)
    cell = qmml.System.from_arrays(symbols, x, box=box).cell  # MDAnalysis's orientation of the same cell
    x = x @ np.linalg.inv(sheared) @ cell
    system = qmml.System.from_arrays(symbols, x, box=box, residues=np.repeat(np.arange(n), 3) + 1,
                                     bonds=[(3 * i, 3 * i + b) for i in range(n) for b in (1, 2)])
    part = qmml.partition(system, [0, 1, 2], charge=0)
    from qmml.environments.ml import MLEnvironment

    env = MLEnvironment(qmml.load_model("water").double())
    gradient = np.random.default_rng(3).normal(0, 0.5, len(part.env_atoms))
    evaluation = env.evaluate(x, part, "subtractive", cell=cell)
    analytic = evaluation.strain_derivative(gradient)

    def objective(xx, cc):
        e = env.evaluate(xx, part, "subtractive", cell=cc)
        return e.energy + float(gradient @ e.charges)

    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = 1e-5
            up, down = (np.eye(3) + eps).T, (np.eye(3) - eps).T
            fd[a, b] = (objective(x @ up, cell @ up) - objective(x @ down, cell @ down)) / 2e-5
    assert np.abs(fd - analytic).max() / abs(np.linalg.det(cell)) * units.EV_PER_A3_GPA < 1e-5
