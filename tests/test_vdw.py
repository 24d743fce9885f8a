"""QM-environment Lennard-Jones: forces are -dE/dR, also across a periodic boundary (minimum image)."""

import numpy as np
import pytest

import qmml
from qmml.coupling.vdw import LennardJones


def two_waters(box=None):
    xyz = np.array([[0.5, 5, 5], [1.2, 5.6, 5], [0.3, 4.3, 5.4], [8.1, 5.3, 5.1], [7.3, 5.8, 5.2],
                    [7.9, 4.4, 5.5]])
    return qmml.System.from_arrays(["O", "H", "H"] * 2, xyz, box=box, bonds=[(0, 1), (0, 2), (3, 4), (3, 5)],
                                   residues=[1, 1, 1, 2, 2, 2])


@pytest.mark.parametrize("box", [None, [10.0, 10.0, 10.0]], ids=["open", "periodic"])
def test_lennard_jones_forces_match_finite_differences(box):
    system = two_waters(box)
    lj = LennardJones(qmml.partition(system, "resid 1", charge=0))
    energy, forces = lj.compute(system.positions)
    h = 1e-5
    for atom in range(6):
        for x in range(3):
            p = system.positions.copy()
            p[atom, x] += h
            e_plus = lj.compute(p)[0]
            p[atom, x] -= 2 * h
            assert forces[atom, x] == pytest.approx(-(e_plus - lj.compute(p)[0]) / (2 * h), rel=1e-6, abs=1e-6)
    assert np.abs(forces.sum(axis=0)).max() < 1e-12


def test_minimum_image_sees_the_neighbour_across_the_boundary():
    """In a 10 Å box the second water is 2.4 Å away through the wall: repulsion; open, it is 7.6 Å away."""
    periodic = LennardJones(qmml.partition(two_waters([10.0, 10.0, 10.0]), "resid 1", charge=0))
    open_ = LennardJones(qmml.partition(two_waters(), "resid 1", charge=0))
    positions = two_waters().positions
    assert periodic.compute(positions)[0] > 0.1
    assert abs(open_.compute(positions)[0]) < 1e-2


def test_missing_parameters_are_named():
    system = qmml.System.from_arrays(["O", "H", "H", "Xe"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [4, 0, 0]],
                                     bonds=[(0, 1), (0, 2)])
    with pytest.raises(qmml.InputError, match=r"no Lennard-Jones parameters for Xe; pass vdw_parameters="):
        qmml.Hamiltonian(qmml.partition(system, [0, 1, 2], charge=0), qmml.PySCFEngine("hf", "sto-3g"),
                         qmml.FixedCharges(np.zeros(4)))
