"""The bonded baseline (Morse X-H bonds within molecules, contact walls between them): exact forces and
strain derivative where every part of it acts, the physics it is there for (a proton that leaves its
molecule pays its bond energy), the environment model and training with the term, model files."""

import json

import numpy as np
import pytest
import torch

from qmml.errors import InputError
from qmml.ml import BondBaseline, Dataset, EnvironmentModel, ModelFileError, TrainingOptions, load_model, \
    save_model, train
from qmml.ml.baseline import GFN2_XH_MORSE
from conftest import DATA, finite_difference_forces, finite_strain_derivative

SHEAR = np.array([[1.0, 0.0, 0.0], [0.1, 1.0, 0.0], [-0.05, 0.08, 1.0]])


def _nearest_other(x, cell, a, molecule):
    """Index and minimum-image vector of the nearest O of another molecule to atom a."""
    from qmml.periodic.cell import minimum_image

    d = minimum_image(x - x[a], cell)
    r = np.linalg.norm(d, axis=1)
    r[molecule == molecule[a]] = np.inf
    r[np.arange(len(x)) % 3 != 0] = np.inf  # O atoms only (O, H, H per water)
    b = int(np.argmin(r))
    return b, d[b]


@pytest.fixture(scope="module")
def box():
    """16 GFN2-xTB-sampled waters in a sheared (triclinic) cell; one O-H stretched 45 % toward the nearest
    O of another water, and one H pushed to 1.0 Å of an H of another water, so that the Morse bond, its
    switch-free region and both walls act."""
    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    z, x, cell = np.asarray(frame.elements), np.asarray(frame.positions) @ SHEAR.T, np.asarray(frame.cell) @ SHEAR.T
    molecule = np.asarray(frame.molecule)
    assert np.array_equal(z[::3], np.full(len(z) // 3, 8))
    x = x.copy()
    b, d = _nearest_other(x, cell, 0, molecule)  # O of molecule 0, the neighbour's O
    x[1] = x[0] + 0.55 * d  # H of molecule 0 well on its way to the other O
    x[4] = x[b] + np.array([0.3, -0.5, 0.45])  # an H of molecule 1 close to the neighbour's O and to H(1)
    return z, x, cell, molecule, np.asarray(frame.positions) @ SHEAR.T


def fd_forces(energy, x, atoms):
    return finite_difference_forces(energy, x, atoms, step=1e-5)


def test_forces_and_strain_derivative_are_exact(box):
    z, x, cell, molecule, _ = box
    term = BondBaseline(wall_h_A=1.5, wall_heavy_A=2.8, wall_hh_intra_A=1.7)  # walls that act in this frame
    e, f, w = term.compute(z, x, cell, molecule)
    no_intra = BondBaseline(wall_h_A=1.5, wall_heavy_A=2.8, wall_hh_intra_A=0.0).energy(z, x, cell, molecule)
    bonds_only = BondBaseline(wall_h_A=0.0, wall_heavy_A=0.0, wall_hh_intra_A=0.0).energy(z, x, cell, molecule)
    assert e > no_intra + 1e-3 and no_intra > bonds_only + 1e-3 > 1e-3  # every part acts
    atoms = sorted({0, 1, 2, 3, 4, 5, int(np.argmax(np.abs(f).sum(1)))})
    for c in (cell, None):
        e, f, w = term.compute(z, x, c, molecule)
        assert np.abs(fd_forces(lambda xx: term.energy(z, xx, c, molecule), x, atoms) - f[atoms]).max() < 1e-6
    e, f, w = term.compute(z, x, cell, molecule)
    fd = finite_strain_derivative(lambda d: term.energy(z, x @ d, cell @ d, molecule))
    assert np.abs(fd - w).max() < 1e-6
    assert np.abs(f.sum(0)).max() < 1e-10  # no net force: pair terms only


def test_a_proton_that_leaves_its_molecule_pays_its_bond_energy(box):
    """Energy along the path of H(1) from its own O to the other molecule's O: zero at the bond length,
    rising monotonically to the O-H bond energy of the fit; the other molecule's O does not bind it."""
    z, _, cell, molecule, x = box
    term = BondBaseline(wall_h_A=0.0, wall_heavy_A=0.0, wall_hh_intra_A=0.0)  # the bonds alone
    b, d = _nearest_other(x, cell, 0, molecule)
    unit = d / np.linalg.norm(d)
    r0 = dict((row[0], row[3]) for row in GFN2_XH_MORSE)[8]
    path = []
    for r in np.linspace(r0, np.linalg.norm(d) - 1.0, 12):
        y = x.copy()
        y[1] = x[0] + r * unit
        path.append(term.energy(z, y, cell, molecule))
    path = np.array(path) - path[0]
    assert np.all(np.diff(path) > 0)
    # the Morse curve of O-H at the end of the path, not a bond to the nearer O of the other molecule
    depth, a = dict((row[0], row[1:3]) for row in GFN2_XH_MORSE)[8]
    r_end = np.linalg.norm(d) - 1.0
    assert path[-1] == pytest.approx(depth * (1 - np.exp(-a * (r_end - r0))) ** 2, rel=1e-6)
    # without molecule indices, the H simply belongs to the nearer O: the term then allows the transfer
    y = x.copy()
    y[1] = x[b] - r0 * unit
    assert abs(term.energy(z, y, cell) - term.energy(z, x, cell)) < 0.2
    assert term.energy(z, y, cell, molecule) - term.energy(z, x, cell, molecule) > 0.5 * depth


def test_model_adds_the_term_and_files_keep_it(box, tmp_path):
    z, x, cell, molecule, _ = box
    torch.manual_seed(2)
    term = BondBaseline(wall_h_A=1.5)
    model = EnvironmentModel([1, 8], cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), n_members=2,
                             baseline=term.to_dict()).double()
    bare = EnvironmentModel([1, 8], cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), n_members=2).double()
    bare.load_state_dict(model.state_dict())
    p = model.predict(z, x, cell=cell, groups=molecule)
    p0 = bare.predict(z, x, cell=cell, groups=molecule)
    e, f, w = term.compute(z, x, cell, molecule)
    assert p.energy == pytest.approx(p0.energy + e, abs=1e-10) and p.energy_std == pytest.approx(p0.energy_std)
    assert np.allclose(p.forces, p0.forces + f, atol=1e-10)
    assert np.allclose(p.strain_derivative, p0.strain_derivative + w, atol=1e-10)
    # molecules= overrides groups (the organic model conserves charge per structure, one group)
    q = model.predict(z, x, cell=cell, groups=np.zeros(len(z), int), molecules=molecule, forces=False)
    assert q.energy - bare.predict(z, x, cell=cell, groups=np.zeros(len(z), int), forces=False).energy == \
        pytest.approx(e, abs=1e-10)
    path = save_model(model, tmp_path / "b.pt", reference="test")
    loaded = load_model(path, device="cpu")
    assert loaded.baseline == term and loaded.config() == model.config()
    assert loaded.predict(z, x, cell=cell, groups=molecule).energy == p.energy
    blob = torch.load(path, weights_only=True)
    head = json.loads(blob["header"])
    del head["architecture"]["baseline"]  # files written before the option
    torch.save(dict(blob, header=json.dumps(head)), tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt", device="cpu").baseline is None
    # a file of the first form (no H-H wall within molecules) loads without that wall: its own energy
    head["architecture"]["baseline"] = {**term.to_dict(), "form": "morse-xh-contact-walls"}
    del head["architecture"]["baseline"]["wall_hh_intra_A"]
    torch.save(dict(blob, header=json.dumps(head)), tmp_path / "first.pt")
    assert load_model(tmp_path / "first.pt", device="cpu").baseline == BondBaseline(wall_h_A=1.5, wall_hh_intra_A=0.0)
    head["architecture"]["baseline"] = {"form": "morse-xh-contact-walls", "morse": [[8, -1.0, 2.0, 0.96]]}
    torch.save(dict(blob, header=json.dumps(head)), tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="baseline"):
        load_model(tmp_path / "bad.pt")


def test_training_targets_are_the_labels_minus_the_term():
    from qmml.ml.train import _Batch

    frames = [f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None][:2]
    model = EnvironmentModel([1, 8], cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), baseline={}).double()
    batch = _Batch(model, frames, torch.float64)
    n = len(frames[0].elements)
    for k, f in enumerate(frames):
        e, forces, _ = BondBaseline().compute(f.elements, f.positions, f.cell, f.molecule)
        assert e > 0
        assert float(batch.energy[k]) == pytest.approx(f.energy - e, abs=1e-9)
        assert np.allclose(batch.forces[k * n:(k + 1) * n].numpy(), f.forces - forces, atol=1e-9)
    opts = TrainingOptions(cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), max_epochs=1, batch_size=2,
                           progress=False, baseline={"wall_k": 10.0})
    trained = train(Dataset(frames), opts, validation_set=Dataset(frames))
    assert trained.baseline == BondBaseline(wall_k=10.0)


@pytest.mark.parametrize("bad, match", [
    ({"morse": [[8, 5.0, 2.0, 0.96], [8, 4.0, 2.0, 0.96]]}, "twice"),
    ({"morse": [[1, 5.0, 2.0, 0.96]]}, "Z > 1"),
    ({"switch_on_A": 4.0, "cutoff_A": 3.0}, "switch_on_A < cutoff_A"),
    ({"wall_k": float("nan")}, "wall_k"),
    ({"depth": 1.0}, "unknown baseline parameters"),
])
def test_clear_errors(bad, match):
    with pytest.raises(InputError, match=match):
        BondBaseline.from_dict(bad)


def test_ion_walls_from_covalent_radii_are_exact_and_off_by_default():
    """With ``wall_radius_factor`` = 0.75 a Na+ and a Cl- (different molecules) at 1.6 Å meet a wall at
    0.75 x (1.66 + 1.02) Å = 2.01 Å, energy k (2.01 - 1.6)^3, with forces and strain derivative equal to
    finite differences; the default (0, and model files written before the option) leaves only the 1.6 Å heavy
    wall, which this pair does not reach, and a pair at 2.5 Å feels neither."""
    z = np.array([11, 17, 8, 1, 1])
    x = np.array([[0.0, 0.0, 0.0], [1.6, 0.1, -0.05], [0.2, 2.6, 0.1], [0.9, 3.1, 0.2], [-0.6, 3.2, 0.0]])
    cell = np.eye(3) * 9.0 @ SHEAR.T
    molecule = np.array([0, 1, 2, 2, 2])
    ions = BondBaseline(wall_radius_factor=0.75)
    r = np.linalg.norm(x[1] - x[0])
    limit = 0.75 * (1.66 + 1.02)
    e, f, w = ions.compute(z, x, cell, molecule)
    plain = BondBaseline().energy(z, x, cell, molecule)
    assert e - plain == pytest.approx(ions.wall_k * (limit - r) ** 3, rel=2e-3)
    np.testing.assert_allclose(f, fd_forces(lambda y: ions.energy(z, y, cell, molecule), x, list(range(5))),
                               atol=1e-6)
    np.testing.assert_allclose(w, finite_strain_derivative(lambda d: ions.energy(z, x @ d, cell @ d, molecule)),
                               atol=1e-6)
    far = x.copy()
    far[1] = [2.5, 0.1, -0.05]
    assert ions.energy(z, far, cell, molecule) == pytest.approx(BondBaseline().energy(z, far, cell, molecule))
    old = {k: v for k, v in BondBaseline().to_dict().items() if k != "wall_radius_factor"}
    assert BondBaseline.from_dict(old).wall_radius_factor == 0.0
