"""Training on real GFN2-xTB frames: the loss falls, files are written, nothing is overwritten."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qmml.cli import main
from qmml.errors import InputError
from qmml.ml import Dataset, TrainingOptions, evaluate, load_model, read_header, train

DATASETS = Path(__file__).resolve().parents[1] / "data" / "datasets"


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    frames = Dataset.load(DATASETS / "water_test.npz")
    small = [f for f in frames.frames if len(f.elements) <= 60]
    root = tmp_path_factory.mktemp("sets")
    train_set = Dataset(small[:60:2], dict(frames.metadata))
    test_set = Dataset(small[61:90:3], dict(frames.metadata))
    return train_set.save(root / "train.npz"), test_set.save(root / "test.npz")


def test_training_reduces_errors_below_a_per_element_baseline(small_sets):
    train_path, test_path = small_sets
    train_set, test_set = Dataset.load(train_path), Dataset.load(test_path)
    opts = TrainingOptions(cutoff=4.0, n_radial=8, n_channels=6, hidden=(24,), max_epochs=25, batch_size=6,
                           progress=False, seed=1, learning_rate=5e-3)
    model = train(train_set, opts)
    metrics = evaluate(model, test_set)
    # baseline: zero forces and the mean charge of each element
    f_ref = np.concatenate([f.forces for f in test_set.frames])
    baseline_force = np.abs(f_ref).mean()
    assert metrics["force_mae_eV_A"] < 0.6 * baseline_force
    losses = [h["validation_loss"] for h in opts.history]
    assert min(losses) < 0.5 * losses[0]


def test_train_command_writes_model_header_history_and_plot(small_sets, tmp_path):
    train_path, test_path = small_sets
    config = {"train": str(train_path), "test": str(test_path), "output": "m.pt",
              "model": {"cutoff": 4.0, "n_radial": 6, "n_channels": 4, "hidden": [8], "n_members": 2},
              "training": {"max_epochs": 2, "batch_size": 8}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    for name in ("m.pt", "m.json", "m_history.csv", "m_learning_curve.png"):
        assert (tmp_path / name).stat().st_size > 0
    header = read_header(tmp_path / "m.pt")
    assert header["training_set_sha256"] == Dataset.load(train_path).hash()
    assert header["metrics"]["test"]["frames"] == len(Dataset.load(test_path))
    assert len(load_model(tmp_path / "m.pt").members) == 2
    torch.load(tmp_path / "m.pt", weights_only=True)
    before = (tmp_path / "m.pt").read_bytes()
    assert main(["train", str(path)]) == 2  # refuses to overwrite
    assert (tmp_path / "m.pt").read_bytes() == before


def test_train_command_names_bad_key_and_missing_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"train": "nowhere.npz", "output": "m.pt", "model": {"cutof": 4}}))
    assert main(["train", str(path)]) == 2
    assert "model.cutof" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"train": "nowhere.npz", "output": "m.pt"}))
    assert main(["train", str(path)]) == 2
    assert "key 'train'" in capsys.readouterr().err


def _periodic_frames():
    """The shipped test set's periodic 16-water frame and a sheared copy of it, with stress labels."""
    from qmml.ml import Frame

    frame = next(f for f in Dataset.load(DATASETS / "water_test.npz") if f.cell is not None)
    shear = np.array([[1.0, 0.0, 0.0], [0.15, 0.97, 0.0], [-0.1, 0.08, 1.04]])
    frames = []
    for k, d in enumerate((np.eye(3), shear)):
        stress = np.full((3, 3), 1e-3 * (k + 1))
        frames.append(Frame(frame.elements, frame.positions @ d, frame.energy, frame.forces, frame.charges,
                            frame.molecule, frame.molecule_charges, frame.cell @ d, stress))
    return frames


def test_training_virial_is_the_strain_derivative_of_the_batch_energy():
    """The virial in the loss (from the force backward pass, pair shifts included) against finite strain of
    each frame, for a model with the damped Coulomb term, in a batch that also holds an open cluster."""
    from conftest import finite_strain_derivative
    from qmml.ml import EnvironmentModel, Frame
    from qmml.ml.train import _Batch, _member_forward

    torch.manual_seed(3)
    model = EnvironmentModel([1, 8], cutoff=4.0, n_radial=6, n_channels=4, hidden=(12,), coulomb_cutoff=6.0).double()
    for p in model.parameters():  # an untrained model, but with charges of water-like size
        p.data += 0.05 * torch.randn_like(p)
    periodic = _periodic_frames()
    cluster = next(f for f in Dataset.load(DATASETS / "water_test.npz") if f.cell is None)
    frames = [periodic[0], cluster, periodic[1]]
    batch = _Batch(model, frames, torch.float64)
    energy, forces, q, virial = _member_forward(model, 0, batch, create_graph=False, virial=True)
    for k in (0, 2):
        f = frames[k]

        def strained_energy(d, f=f, k=k):
            moved = Frame(f.elements, f.positions @ d, 0.0, f.forces, f.charges, f.molecule, f.molecule_charges,
                          f.cell @ d)
            b = _Batch(model, [frames[j] if j != k else moved for j in range(3)], torch.float64)
            return float(_member_forward(model, 0, b, create_graph=False)[0][k].detach())

        expected = finite_strain_derivative(strained_energy, step=1e-5)
        assert np.abs(virial[k].detach().numpy() - expected).max() < 1e-6 * max(1.0, np.abs(expected).max())
    # the virial belongs to the frame: the cluster (open boundaries) still has sum_i F_i (x) x_i
    assert np.allclose(virial[1].detach().numpy(), -(forces[batch.frame == 1].T @ batch.positions[batch.frame == 1]).detach().numpy(), atol=1e-9)


def test_stress_labels_survive_a_save_and_load_and_enter_the_loss(tmp_path):
    frames = _periodic_frames()
    cluster = next(f for f in Dataset.load(DATASETS / "water_test.npz") if f.cell is None)
    data = Dataset(frames + [cluster], {"reference": "test"})
    loaded = Dataset.load(data.save(tmp_path / "s.npz"))
    assert loaded.has_stress and loaded.frames[2].stress is None
    assert np.allclose(loaded.frames[1].stress, frames[1].stress)
    assert Dataset([cluster]).hash() == Dataset.load(Dataset([cluster]).save(tmp_path / "c.npz")).hash()
    opts = TrainingOptions(cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), max_epochs=2, batch_size=3,
                           progress=False)
    model = train(loaded, opts, validation_set=loaded)
    metrics = evaluate(model, loaded)
    assert metrics["stress_frames"] == 2 and np.isfinite(metrics["pressure_mae_kbar"])
    assert "validation_virial_rmse_eV_per_atom" in opts.history[-1]


def test_train_command_reads_chunk_patterns_and_continues_a_model(small_sets, tmp_path):
    train_path, test_path = small_sets
    config = {"train": str(train_path.parent / "tr*.npz"), "output": "tuned.pt", "initial": "water",
              "model": {"cutoff": 3.0, "n_members": 1}, "training": {"max_epochs": 1, "batch_size": 8}}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    tuned = load_model(tmp_path / "tuned.pt")
    assert tuned.cutoff == 5.0 and len(tuned.members) == 3  # the initial model's architecture, not the section's
    config["train"], config["output"] = str(tmp_path / "nothing_*.npz"), "other.pt"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 2 and not (tmp_path / "other.pt").exists()


def test_training_targets_are_the_labels_minus_the_dispersion_term(tmp_path):
    """With a dispersion term the networks are fitted to label - term (energy, forces, virial), so that the
    model (networks + term) reproduces the labels; `train` fits the term's coefficients on the frames."""
    from qmml.ml import D3Dispersion, EnvironmentModel
    from qmml.ml.train import _Batch

    frames = _periodic_frames()
    term = D3Dispersion.fitted([(frames[0].elements, frames[0].positions)])
    model = EnvironmentModel([1, 8], cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), dispersion=term).double()
    batch = _Batch(model, frames, torch.float64)
    for k, f in enumerate(frames):
        e, forces, w = term.compute(f.elements, f.positions, f.cell)
        assert float(batch.energy[k]) == pytest.approx(f.energy - e, abs=1e-9)
        assert np.allclose(batch.forces[k * 48:(k + 1) * 48].numpy(), f.forces - forces, atol=1e-9)
        assert np.allclose(batch.virial[k].numpy(), f.stress * abs(np.linalg.det(f.cell)) - w, atol=1e-9)
    opts = TrainingOptions(cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), max_epochs=1, batch_size=2,
                           progress=False, dispersion={"cutoff_A": 9.0})
    trained = train(Dataset(frames), opts, validation_set=Dataset(frames))
    assert trained.dispersion.elements == [1, 8] and trained.dispersion.cutoff_A == 9.0
    with pytest.raises(InputError, match="unknown dispersion parameters"):
        train(Dataset(frames), TrainingOptions(max_epochs=1, progress=False, dispersion={"cut": 9.0}),
              validation_set=Dataset(frames))


def test_embedding_head_learns_esp_charges_apart_from_the_latent_charges(tmp_path):
    """A second charge head trained on ESP-like targets (here 1.45 x the GFN2 Mulliken charges, the ratio of
    HF/6-31G* RESP to GFN2 for water) on the frames that carry them; the first head keeps learning the labels'
    own charges, frames without ESP charges only train the first.  Datasets keep the partial ESP labels."""
    from dataclasses import replace

    frames = [f for f in Dataset.load(DATASETS / "water_test.npz") if f.cell is None and len(f.elements) <= 36][:16]
    with_esp = [replace(f, esp_charges=1.45 * f.charges) for f in frames[::2]]
    data = Dataset(with_esp + frames[1::2], {"reference": "GFN2-xTB", "esp_reference": "1.45 x Mulliken"})
    path = data.save(tmp_path / "esp.npz")
    back = Dataset.load(path)
    assert back.has_esp_charges and back.metadata["esp_reference"] == "1.45 x Mulliken"
    assert [f.esp_charges is not None for f in back] == [True] * 8 + [False] * 8
    assert np.abs(back.frames[0].esp_charges - with_esp[0].esp_charges).max() < 1e-6
    with pytest.raises(InputError, match="esp_charges"):
        Dataset().append(replace(frames[0], esp_charges=np.full(len(frames[0].elements), np.nan)))

    initial = load_model("water").select_members([0])
    before = evaluate(initial.with_embedding_head(), back)
    opts = TrainingOptions(max_epochs=25, batch_size=4, learning_rate=2e-3, progress=False, embedding_charges=True,
                           patience=25)
    model = train(back, opts, validation_set=back, initial=initial)
    after = evaluate(model, back)
    assert before["esp_charge_mae_e"] > 0.15 and after["esp_charge_mae_e"] < 0.5 * before["esp_charge_mae_e"]
    assert after["charge_mae_e"] < 0.02  # the latent head still follows the labels' charges
    z, x = back.frames[0].elements, back.frames[0].positions
    p = model.predict(z, x, groups=back.frames[0].molecule)
    assert np.abs(p.charges - 1.45 * back.frames[0].charges).mean() < 0.5 * before["esp_charge_mae_e"]
    assert not initial.embedding_charges  # the initial model is left as it was
    from qmml.ml import save_model

    loaded = load_model(save_model(model, tmp_path / "esp.pt", reference="test"), device="cpu")
    assert loaded.embedding_charges
    assert np.abs(loaded.predict(z, x, groups=back.frames[0].molecule).charges - p.charges).max() < 1e-5


def test_fine_tuning_on_a_new_teacher_refits_the_per_element_energies():
    """A new level of theory shifts each element's energy by a constant (here +1000 eV per O, -7.5 eV per H on
    top of GFN2-xTB): continuing a model on such labels refits its per-element energies first, so that an
    (almost) frozen network already has the error it had on the old labels.  Without the refit the energy
    error is the shift itself; the refit is automatic when the labels' reference differs from the model's."""
    from dataclasses import replace

    frames = [f for f in Dataset.load(DATASETS / "water_test.npz") if f.cell is None and len(f.elements) <= 36][:12]
    old = Dataset(frames, {"reference": "GFN2-xTB (tblite 0.8), Mulliken charges"})
    shifted = Dataset([replace(f, energy=f.energy + 1000.0 * np.sum(f.elements == 8) - 7.5 * np.sum(f.elements == 1))
                       for f in frames], {"reference": "a new teacher"})
    initial = load_model("water").select_members([0])
    assert initial.header["reference"] == old.metadata["reference"]
    before = evaluate(initial, old)["energy_mae_eV_per_atom"]
    frozen = dict(max_epochs=1, batch_size=4, learning_rate=1e-12, progress=False, dtype="float64")
    tuned = train(shifted, TrainingOptions(**frozen), validation_set=shifted, initial=initial)
    after = evaluate(tuned, shifted)["energy_mae_eV_per_atom"]
    assert after < before + 2e-4  # the least-squares shift can only lower the error of the old offsets
    kept = train(shifted, TrainingOptions(**frozen, refit_energy_offsets=False), validation_set=shifted,
                 initial=initial)
    assert evaluate(kept, shifted)["energy_mae_eV_per_atom"] > 100
    same = train(old, TrainingOptions(**frozen), validation_set=old, initial=initial)  # same teacher: no refit
    assert torch.allclose(same.members[0].atomic_energy, initial.members[0].atomic_energy, rtol=0, atol=1e-9)


def test_continuing_with_other_dispersion_parameters_replaces_the_term():
    """Fine-tuning on labels whose dispersion has other damping (GFN2-xTB's D4 parameters to revPBE-D3(BJ))
    refits the term with the new parameters; the same parameters keep the initial model's term."""
    frames = _periodic_frames()
    initial = load_model("water_condensed").select_members([0])
    old = initial.dispersion
    revpbe = {"s8": 2.355, "a1": 0.5238, "a2": 3.5016}
    opts = dict(max_epochs=1, batch_size=2, progress=False, learning_rate=1e-9)
    tuned = train(Dataset(frames), TrainingOptions(**opts, dispersion=revpbe), validation_set=Dataset(frames),
                  initial=initial)
    assert (tuned.dispersion.s8, tuned.dispersion.a1, tuned.dispersion.a2) == (2.355, 0.5238, 3.5016)
    assert initial.dispersion is old and old.a2 == 5.0
    z, x, cell = frames[0].elements, frames[0].positions, frames[0].cell
    assert tuned.dispersion.energy(z, x, cell) != pytest.approx(old.energy(z, x, cell), rel=1e-3)
    kept = train(Dataset(frames), TrainingOptions(**opts, dispersion={"a2": 5.0}), validation_set=Dataset(frames),
                 initial=initial)
    assert kept.dispersion.to_dict() == old.to_dict()


def test_continuing_with_a_changed_baseline_keeps_its_other_fields():
    """A `model.baseline` that changes one field of the initial model's baseline (ion walls from covalent radii
    added to a trained model) replaces the term with the initial's fields plus the change."""
    frames = _periodic_frames()
    initial = load_model(DATASETS.parent / "models" / "organic_condensed_al3.pt").select_members([0])
    opts = dict(max_epochs=1, batch_size=2, progress=False, learning_rate=1e-9)
    tuned = train(Dataset(frames), TrainingOptions(**opts, baseline={"wall_radius_factor": 0.8}),
                  validation_set=Dataset(frames), initial=initial)
    assert tuned.baseline.wall_radius_factor == 0.8 and initial.baseline.wall_radius_factor == 0.0
    changed = {k: v for k, v in tuned.baseline.to_dict().items() if initial.baseline.to_dict()[k] != v}
    assert changed == {"wall_radius_factor": 0.8}
