"""Small real systems shared by the tests (no mocks of PySCF or torch)."""

from pathlib import Path

import numpy as np
import pytest

import qmml

DATA = Path(__file__).resolve().parents[1] / "data"
STRUCTURES = DATA / "structures"


@pytest.fixture
def butanol() -> qmml.System:
    """1-butanol with bonds and topology charges (C1..C4 = atoms 0..3, O = 4, HO = 14)."""
    return qmml.load_system(STRUCTURES / "butanol.psf", STRUCTURES / "butanol.pdb")


def central_difference_forces(hamiltonian, positions, atoms=None, step_A=1e-3):
    """-dE/dR by central differences of energy-only evaluations for the given atoms (all by default), eV/Å."""
    atoms = range(len(positions)) if atoms is None else atoms
    out = np.zeros((len(positions), 3))
    for a in atoms:
        for x in range(3):
            p = positions.copy()
            p[a, x] += step_A
            e_plus = hamiltonian.compute(p, forces=False).energy
            p[a, x] -= 2 * step_A
            e_minus = hamiltonian.compute(p, forces=False).energy
            out[a, x] = -(e_plus - e_minus) / (2 * step_A)
    return out
