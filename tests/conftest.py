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


def finite_strain_derivative(energy, step=1e-5):
    """dE/d(strain) (3, 3) by central differences: ``energy(deformation)`` is the energy with positions and
    cell mapped by R -> R D (D = (I + strain)^T, so callers write ``x @ D, cell @ D``)."""
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = step
            out[a, b] = (energy((np.eye(3) + eps).T) - energy((np.eye(3) - eps).T)) / (2 * step)
    return out


def finite_difference_forces(energy, x, atoms, step=1e-4):
    """-dE/dR (len(atoms), 3) of ``energy(positions)`` by central differences at the rows ``atoms`` of x."""
    out = np.zeros((len(atoms), 3))
    for n, a in enumerate(atoms):
        for k in range(3):
            d = np.zeros_like(x)
            d[a, k] = step
            out[n, k] = -(energy(x + d) - energy(x - d)) / (2 * step)
    return out


def charges_around(n: int, r_min_A: float, r_max_A: float, seed: int):
    """n point charges (uniform in +-0.8 e, net zero) at random directions r_min..r_max Å from the origin."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n, 3))
    xyz = direction / np.linalg.norm(direction, axis=1)[:, None] * rng.uniform(r_min_A, r_max_A, (n, 1))
    charges = rng.uniform(-0.8, 0.8, n)
    return xyz, charges - charges.mean()


def water_cluster(n_molecules: int = 20) -> qmml.System:
    """A GFN2-xTB-sampled water cluster from the shipped test set, one residue per molecule."""
    from qmml.ml import Dataset

    dataset = Dataset.load(DATA / "datasets" / "water_test.npz")
    return next(f for f in dataset if f.cell is None and len(f.elements) == 3 * n_molecules).to_system("WAT")


def butanol_in_waters(n_waters: int) -> qmml.System:
    """1-butanol with its ``n_waters`` nearest TIP3P waters from the shipped droplet (topology charges kept)."""
    full = qmml.load_system(STRUCTURES / "butanol_water.psf", STRUCTURES / "butanol_water.pdb")
    oxygens = np.where((full.elements == "O") & (np.arange(full.n_atoms) >= 15))[0]
    nearest = oxygens[np.argsort(np.linalg.norm(full.positions[oxygens] - full.positions[4], axis=1))[:n_waters]]
    keep = np.concatenate([np.arange(15)] + [[o, o + 1, o + 2] for o in nearest])
    index = {int(a): k for k, a in enumerate(keep)}
    bonds = [(index[a], index[b]) for a, b in full.bonds if a in index and b in index]
    return qmml.System.from_arrays(full.elements[keep], full.positions[keep], bonds=bonds,
                                   residues=full.resids[keep], resnames=full.resnames[keep],
                                   names=full.names[keep], charges=full.charges[keep])
