"""Training on real GFN2-xTB frames: the loss falls, files are written, nothing is overwritten."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qmml.cli import main
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
