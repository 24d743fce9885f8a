"""Per-structure committee spread and error (qmml.ml.committee_spread) on real GFN2-xTB frames."""

from pathlib import Path

import numpy as np
import pytest

from qmml import load_model
from qmml.ml import Dataset, Frame, committee_spread, evaluate, predict_frames

DATASETS = Path(__file__).resolve().parents[1] / "data" / "datasets"


@pytest.fixture(scope="module")
def water():
    model = load_model("water", device="cpu")
    frames = Dataset.load(DATASETS / "water_test.npz")
    clusters = [f for f in frames.frames if f.cell is None and len(f.elements) <= 60]
    periodic = [f for f in frames.frames if f.cell is not None]
    return model, Dataset(clusters[::12] + periodic[:2], dict(frames.metadata))


def stretched(frame: Frame, by_A: float) -> Frame:
    """The frame with the first O-H bond of every water lengthened by ``by_A`` (labels kept)."""
    x = frame.positions.copy()
    for o in np.flatnonzero(frame.elements == 8):
        h = o + 1
        bond = x[h] - x[o]
        x[h] = x[o] + bond * (1 + by_A / np.linalg.norm(bond))
    return Frame(frame.elements, x, frame.energy, frame.forces, frame.charges, frame.molecule,
                 frame.molecule_charges, frame.cell)


def test_per_frame_errors_add_up_to_evaluate(water):
    model, ds = water
    report = committee_spread(model, ds)
    metrics = evaluate(model, ds)
    n = report["n_atoms"]
    assert list(n) == [len(f.elements) for f in ds.frames]
    force_rmse = np.sqrt(np.sum(n * report["force_rmse_eV_A"] ** 2) / n.sum())
    charge_rmse = np.sqrt(np.sum(n * report["charge_rmse_e"] ** 2) / n.sum())
    assert force_rmse == pytest.approx(metrics["force_rmse_eV_A"], rel=1e-6)
    assert charge_rmse == pytest.approx(metrics["charge_rmse_e"], rel=1e-6)
    assert report["energy_error_eV_per_atom"].mean() == pytest.approx(metrics["energy_mae_eV_per_atom"], rel=1e-6)
    assert np.all(report["max_force_error_eV_A"] >= report["force_rmse_eV_A"])


def test_spread_is_the_std_of_the_members(water):
    model, ds = water
    sub = ds[[0, len(ds) - 1]]  # a cluster and a periodic box
    report = committee_spread(model, sub)
    singles = [predict_frames(model.select_members([m]), sub) for m in range(len(model.members))]
    for k, frame in enumerate(sub.frames):
        forces = np.array([s[k].forces for s in singles])
        energies = np.array([s[k].energy for s in singles])
        charges = np.array([s[k].charges for s in singles])
        sigma = forces.std(0)
        assert report["force_std_eV_A"][k] == pytest.approx(np.sqrt(np.mean(sigma**2)), rel=1e-8)
        assert report["max_force_std_eV_A"][k] == pytest.approx(np.linalg.norm(sigma, axis=1).max(), rel=1e-8)
        assert report["energy_std_eV_per_atom"][k] == pytest.approx(energies.std() / len(frame.elements), rel=1e-8)
        assert report["charge_std_e"][k] == pytest.approx(np.sqrt(np.mean(charges.std(0) ** 2)), rel=1e-8)
        assert report["force_std_eV_A"][k] > 0
    one = committee_spread(model.select_members([1]), sub)
    for key in ("energy_std_eV_per_atom", "force_std_eV_A", "max_force_std_eV_A", "charge_std_e"):
        assert np.all(one[key] == 0.0)


def test_charges_conserved_as_trained_per_molecule_and_per_structure(water):
    model, ds = water
    for f, p in zip(ds.frames, predict_frames(model, ds, uncertainty=False)):
        per_molecule = np.bincount(f.molecule, weights=p.charges)
        assert np.abs(per_molecule - f.molecule_charges).max() < 1e-10
    test = Dataset.load(DATASETS / "organic_test.npz")
    ions = [f for f in test.frames if np.isin(f.elements, (11, 17)).any()][:2]
    assert ions
    # `organic_clusters` has only GFN2-xTB's Mulliken charges; the shipped `organic` embeds with RESP-fitted ones
    for name in ("organic", "organic_clusters"):
        organic = load_model(name, device="cpu")
        assert organic.charge_groups == "structure"
        for f, p in zip(ions, predict_frames(organic, Dataset(ions), forces=False, uncertainty=False)):
            assert abs(p.charges.sum() - f.molecule_charges.sum()) < 1e-10
            if name == "organic_clusters":
                ion = np.isin(f.elements, (11, 17))
                assert np.all(np.abs(p.charges[ion]) < 0.95)  # per structure: charge moves from the ion to the water


def test_spread_grows_off_the_training_distribution(water):
    """Stretching O-H bonds by 0.3 Å (far outside 300-400 K sampling) must raise the spread of
    every frame."""
    model, ds = water
    clusters = Dataset([f for f in ds.frames if f.cell is None])
    near = committee_spread(model, clusters)
    far = committee_spread(model, Dataset([stretched(f, 0.3) for f in clusters.frames]))
    for key in ("force_std_eV_A", "energy_std_eV_per_atom", "charge_std_e"):
        assert np.all(far[key] > 2 * near[key]), key


def test_predictions_without_force_spread_are_refused(water):
    model, ds = water
    sub = ds[[0]]
    with pytest.raises(ValueError, match="uncertainty=True"):
        committee_spread(model, sub, predictions=predict_frames(model, sub, uncertainty=False))
