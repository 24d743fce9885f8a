"""Model files, datasets, labelling and training: real files, real PySCF, real training."""

import json

import numpy as np
import pytest
import torch

from qmml.cli import main
from qmml.errors import InputError
from qmml.ml import (Dataset, EnvironmentModel, Frame, ModelFileError, PySCFLabeller, esp_grid, load_model,
                     resp_charges, save_model)
from qmml.units import COULOMB_EV_A, DEBYE_E_A
from conftest import DATA

WATER_Z = np.array([8, 1, 1])
WATER_X = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    m = EnvironmentModel([1, 8], cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,)).double()
    return m, save_model(m, tmp_path / "m.pt", reference="test reference", training_set_hash="abc")


def test_model_file_round_trip_and_header(saved):
    m, path = saved
    loaded = load_model(path)
    p1 = m.predict(np.tile(WATER_Z, 2), np.concatenate([WATER_X, WATER_X + 3.0]))
    p2 = loaded.predict(np.tile(WATER_Z, 2), np.concatenate([WATER_X, WATER_X + 3.0]))
    assert p1.energy == p2.energy and np.array_equal(p1.forces, p2.forces)
    header = json.loads(path.with_suffix(".json").read_text())
    assert header["elements"] == ["H", "O"] and header["cutoff_A"] == 4.0
    assert header["reference"] == "test reference" and header["units"]["energy"] == "eV"
    torch.load(path, weights_only=True)  # loadable without arbitrary code execution
    with pytest.raises(InputError, match="exists"):
        save_model(m, path, reference="x")


def test_corrupted_model_file_gives_one_clear_error(saved, tmp_path):
    _, path = saved
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelFileError, match="truncated.pt is not a readable qmml model file"):
        load_model(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match="not a qmml environment model"):
        load_model(other)


def test_mismatched_model_file_gives_one_clear_error(saved, tmp_path):
    _, path = saved
    blob = torch.load(path, weights_only=True)
    old = dict(blob, format_version=0)
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ModelFileError, match="format version 0"):
        load_model(tmp_path / "old.pt")
    header = json.loads(blob["header"])
    header["elements"] = ["H", "C"]
    torch.save(dict(blob, header=json.dumps(header)), tmp_path / "elements.pt")
    with pytest.raises(ModelFileError, match="header elements"):
        load_model(tmp_path / "elements.pt")
    header = json.loads(blob["header"])
    header["architecture"]["n_channels"] = 5
    torch.save(dict(blob, header=json.dumps(header)), tmp_path / "shape.pt")
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(tmp_path / "shape.pt")
    with pytest.raises(ModelFileError, match="not \\['Cl'\\]"):
        load_model(path, elements=["O", "H", "Cl"])
    assert main(["model-info", str(tmp_path / "old.pt")]) == 2


def test_dataset_round_trip_split_and_no_overwrite(tmp_path):
    rng = np.random.default_rng(0)
    ds = Dataset(metadata={"reference": "r"})
    for k in range(5):
        n = 3 * (k + 1)
        ds.append(Frame(np.tile(WATER_Z, k + 1), rng.normal(size=(n, 3)), float(k), rng.normal(size=(n, 3)),
                        rng.normal(size=n), np.repeat(np.arange(k + 1), 3), np.zeros(k + 1),
                        np.eye(3) * 9 if k % 2 else None))
    path = ds.save(tmp_path / "d.npz")
    back = Dataset.load(path)
    assert back.hash() == ds.hash() and back.metadata["reference"] == "r"
    assert back[3].cell is not None and back[2].cell is None
    assert np.allclose(back[4].positions, ds[4].positions, atol=1e-6)
    a, b = ds.split((0.6, 0.4))
    assert len(a) + len(b) == 5 and not {id(f) for f in a.frames} & {id(f) for f in b.frames}
    with pytest.raises(InputError, match="never overwrites"):
        ds.save(path)
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(InputError, match="not a qmml dataset"):
        Dataset.load(tmp_path / "junk.npz")


def test_datasets_of_paths_and_chunk_patterns_load_as_one_in_order(tmp_path):
    rng = np.random.default_rng(1)
    chunks = tmp_path / "campaign" / "labels"
    chunks.mkdir(parents=True)
    for k in (2, 0, 1):  # written out of order: the pattern reads them sorted
        Dataset([Frame(WATER_Z, rng.normal(size=(3, 3)), float(k), rng.normal(size=(3, 3)), rng.normal(size=3),
                       np.zeros(3, int), np.zeros(1))], {"reference": f"chunk {k}"}).save(chunks / f"chunk_{k:03d}.npz")
    Dataset([Frame(WATER_Z, WATER_X, 9.0, np.zeros((3, 3)), np.zeros(3), np.zeros(3, int), np.zeros(1))],
            {"reference": "single"}).save(tmp_path / "single.npz")
    both = Dataset.load_many(["single.npz", "campaign/labels/chunk_*.npz"], tmp_path)
    assert [f.energy for f in both.frames] == [9.0, 0.0, 1.0, 2.0]
    assert both.metadata["reference"] == "single"  # the first file's metadata wins, as with +
    assert Dataset.load_many([chunks / "chunk_001.npz"]).frames[0].energy == 1.0
    with pytest.raises(InputError, match="no file matches 'campaign/labels/chunk_9\\*.npz'"):
        Dataset.load_many(["single.npz", "campaign/labels/chunk_9*.npz"], tmp_path)
    with pytest.raises(InputError, match="not found"):
        Dataset.load_many(["missing.npz"], tmp_path)


def test_esp_fit_recovers_point_charges():
    z = np.array([8, 1, 1, 7, 1, 1, 1])
    x = np.concatenate([WATER_X, np.array([[3.0, 0, 0], [3.4, 0.9, 0], [3.4, -0.5, 0.8], [3.4, -0.5, -0.8]])])
    q_true = np.array([-0.9, 0.45, 0.45, -0.3, 0.5, 0.4, 0.4])
    grid = esp_grid(z, x)
    v = COULOMB_EV_A * (q_true / np.linalg.norm(grid[:, None] - x[None], axis=-1)).sum(1)
    q = resp_charges(z, x, grid, v, molecule=[0, 0, 0, 1, 1, 1, 1], molecule_charges=[0, 1], restraint=0.0)
    assert np.abs(q - q_true).max() < 1e-6
    restrained = resp_charges(z, x, grid, v, molecule=[0, 0, 0, 1, 1, 1, 1], molecule_charges=[0, 1])
    assert abs(restrained[:3].sum()) < 1e-12 and abs(restrained[3:].sum() - 1) < 1e-12
    assert abs(restrained[3]) < abs(q_true[3])  # the restraint pulls heavy-atom charges toward zero


def test_pyscf_resp_labels_of_water():
    label = PySCFLabeller("hf", "6-31g*")(WATER_Z, WATER_X)
    # HF/6-31G* ESP charges of water are about -0.8 on O (the basis of TIP3P-like models)
    assert -0.9 < label.charges[0] < -0.7
    assert abs(label.charges.sum()) < 1e-12
    dipole = np.linalg.norm(label.charges @ WATER_X) / DEBYE_E_A
    assert 2.0 < dipole < 2.6  # HF/6-31G* water dipole is 2.2-2.3 D
    assert np.abs(label.forces.sum(0)).max() < 1e-6


def test_molecular_guess_converges_a_water_cluster_in_fewer_cycles_to_the_same_labels():
    """The labeller starts a cluster of molecules from the sum of each molecule's own density: fewer SCF cycles,
    the same energy and forces (to the SCF's tolerance) as from superposed atoms; an open-shell molecule (here OH)
    gets no such guess."""
    shifts = np.array([[0.0, 0.0, 0.0], [2.9, 0.0, 0.0], [0.0, 2.9, 0.3], [2.9, 2.9, -0.2]])
    z = np.tile(WATER_Z, 4)
    x = np.concatenate([WATER_X + d for d in shifts])
    molecule = np.repeat(np.arange(4), 3)
    labeller = PySCFLabeller("revpbe", "def2-svp", density_fit=True)
    symbols = ["O", "H", "H"] * 4
    guess = labeller.molecular_guess(symbols, x, molecule, [0, 0, 0, 0])
    from_molecules = labeller.engine.compute(symbols, x, dm0=guess)
    from_atoms = labeller.engine.compute(symbols, x)
    assert from_molecules.scf_cycles < from_atoms.scf_cycles
    assert from_molecules.energy == pytest.approx(from_atoms.energy, abs=1e-6)  # eV; conv_tol 1e-9 Eh
    assert np.abs(from_molecules.forces - from_atoms.forces).max() < 1e-4
    label = labeller(z, x, molecule=molecule, molecule_charges=[0, 0, 0, 0])
    assert label.energy == pytest.approx(from_atoms.energy, abs=1e-6)
    assert labeller.molecular_guess(["O", "H"], WATER_X[:2], [0, 0], [0]) is None


def test_xtb_labels_are_consistent():
    pytest.importorskip("tblite")
    from qmml.ml import XTBLabeller

    labeller = XTBLabeller(WATER_Z)
    label = labeller(WATER_X)
    h = 1e-4
    xp, xm = WATER_X.copy(), WATER_X.copy()
    xp[1, 1] += h
    xm[1, 1] -= h
    fd = -(labeller(xp).energy - labeller(xm).energy) / (2 * h)
    assert abs(fd - label.forces[1, 1]) < 1e-3
    assert abs(label.charges.sum()) < 1e-8 and label.charges[0] < -0.4


def test_xtb_stress_of_a_periodic_box_is_its_strain_derivative():
    pytest.importorskip("tblite")
    from qmml.ml import XTBLabeller

    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    keep = np.repeat(frame.positions[frame.elements == 8][:, 2] < 4.0, 3)  # a slab of the waters: cheaper
    z, x, cell = frame.elements[keep], frame.positions[keep], frame.cell
    label = XTBLabeller(z, cell=cell)(x)
    volume = abs(np.linalg.det(cell))
    h = 1e-4
    for a, b in ((0, 0), (1, 2)):  # a diagonal and a shear component
        energies = []
        for sign in (1, -1):
            d = np.eye(3)
            d[b, a] += sign * h  # positions and cell map as R -> R (I + strain)^T
            energies.append(XTBLabeller(z, cell=cell @ d)(x @ d).energy)
        assert abs((energies[0] - energies[1]) / (2 * h) / volume - label.stress[a, b]) < 1e-6
    assert np.allclose(label.stress, label.stress.T, atol=1e-8)


def test_dft_labels_with_d3_dispersion_are_consistent():
    """revPBE-D3(BJ) labels: the dispersion added is simple-dftd3's for revPBE, and the forces are the gradient
    of the labelled energy (SCF plus D3)."""
    from dftd3.interface import DispersionModel, RationalDampingParam

    from qmml import units

    z = np.array([8, 1, 1, 8, 1, 1])
    x = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0],
                  [2.9, 0.1, 0.2], [3.3, 0.9, 0.1], [3.2, -0.7, 0.4]])
    with_d3 = PySCFLabeller("revpbe", "sto-3g", dispersion="d3bj", conv_tol=1e-11)
    plain = PySCFLabeller("revpbe", "sto-3g", conv_tol=1e-11)
    a, b = with_d3(z, x), plain(z, x)
    e_d3 = DispersionModel(z, x * units.ANGSTROM_BOHR).get_dispersion(RationalDampingParam(method="revpbe"),
                                                                       grad=False)["energy"] * units.HARTREE_EV
    assert e_d3 < -1e-3 and a.energy - b.energy == pytest.approx(e_d3, abs=1e-8)
    assert np.abs(a.forces - b.forces).max() > 1e-4 and "D3(BJ)" in with_d3.reference
    h = 1e-4
    for atom, k in ((0, 0), (4, 1)):
        d = np.zeros_like(x)
        d[atom, k] = h
        fd = -(with_d3(z, x + d).energy - with_d3(z, x - d).energy) / (2 * h)
        assert fd == pytest.approx(a.forces[atom, k], abs=2e-4)
    with pytest.raises(InputError, match="no d3bj parameters"):
        PySCFLabeller("notafunctional", "sto-3g", dispersion="d3bj")
