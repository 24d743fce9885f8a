"""The shipped environment models meet their accuracy targets on held-out test sets.

Test sets are separate GFN2-xTB trajectories (other cluster sizes or other seeds) and held-out chunks of
the condensed-phase campaigns, never used in training or validation; see docs/ml_environment.md.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from qmml import load_model
from qmml.ml import Dataset, evaluate, read_header
from qmml.ml.io import SHIPPED_MODELS

DATASETS = Path(__file__).resolve().parents[1] / "data" / "datasets"
#: on the cluster test sets (issue 17: water 0.05 eV/Å, organic 0.10 eV/Å, charges 0.01 e)
TARGETS = {"water": {"force_mae_eV_A": 0.05, "charge_mae_e": 0.01},
           "organic": {"force_mae_eV_A": 0.10, "charge_mae_e": 0.01}}


def assert_forces_match_finite_differences(model, z, x, phi, components, h=1e-4, **kw):
    """Forces (with the charge response to the fixed potential phi) vs central differences of
    E + phi . q, to 1e-4 eV/Å; returns the prediction."""
    pred = model.predict(z, x, potential=phi, **kw)
    for k, d in components:
        xp, xm = x.copy(), x.copy()
        xp[k, d] += h
        xm[k, d] -= h
        ep, em = model.predict(z, xp, forces=False, **kw), model.predict(z, xm, forces=False, **kw)
        fd = -((ep.energy + phi @ ep.charges) - (em.energy + phi @ em.charges)) / (2 * h)
        assert abs(fd - pred.forces[k, d]) < 1e-4
    return pred


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_model_accuracy_on_held_out_test_set(name):
    model = load_model(name, device="cpu")
    test = Dataset.load(DATASETS / f"{name}_test.npz")
    header = read_header(SHIPPED_MODELS / f"{name}.pt")
    assert header["reference"] == test.metadata["reference"]
    assert header["training_set_sha256"] != Dataset.load(DATASETS / f"{name}_test.npz").hash()
    metrics = evaluate(model, test)
    print(name, json.dumps(metrics))
    for key, limit in TARGETS[name].items():
        assert metrics[key] <= limit, f"{name}: {key} = {metrics[key]:.4f} > {limit}"
    # the recorded numbers are the ones a user gets, on the sets the header names
    recorded = header["metrics"]["test"]
    on_header_sets = evaluate(model, Dataset.load_many(recorded["sets"], SHIPPED_MODELS))  # relative to data/models/
    assert on_header_sets["frames"] == recorded["frames"]
    assert abs(recorded["force_mae_eV_A"] - on_header_sets["force_mae_eV_A"]) < 1e-3


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_model_files_are_small_and_documented(name):
    path = SHIPPED_MODELS / f"{name}.pt"
    assert path.stat().st_size < 5 * 1024**2
    header = json.loads(path.with_suffix(".json").read_text())
    assert "GFN2-xTB" in header["reference"] and header["units"]["forces"] == "eV/Angstrom"


def test_shipped_water_model_forces_by_finite_differences_float64():
    model = load_model("water", device="cpu")
    frame = next(f for f in Dataset.load(DATASETS / "water_test.npz").frames if f.cell is not None)
    z, x, cell = frame.elements, frame.positions, frame.cell
    groups = frame.molecule
    phi = np.random.default_rng(0).normal(0, 1.0, len(z))
    assert_forces_match_finite_differences(model, z, x, phi, ((0, 0), (4, 2), (20, 1)), cell=cell, groups=groups)


def test_shipped_water_model_conserves_energy_in_nve():
    """0.2 ps velocity Verlet (0.5 fs) of the periodic 16-molecule box: smooth cutoff, consistent forces."""
    from qmml import units
    from qmml.elements import MASSES_AMU

    model = load_model("water", device="cpu")
    frame = [f for f in Dataset.load(DATASETS / "water_test.npz").frames if f.cell is not None][-1]
    z, x, cell, groups = frame.elements, frame.positions.copy(), frame.cell, frame.molecule
    mass = np.where(z == 1, MASSES_AMU["H"], MASSES_AMU["O"])[:, None] * units.AMU_A2_PER_FS2_EV
    rng = np.random.default_rng(0)
    v = rng.normal(size=x.shape) * np.sqrt(units.BOLTZMANN_EV_PER_K * 300 / mass)
    v -= v.mean(0)
    dt, steps = 0.5, 400
    forces = model.predict(z, x, cell=cell, groups=groups).forces
    total = []
    for _ in range(steps):
        v += 0.5 * dt * forces / mass
        x += dt * v
        p = model.predict(z, x, cell=cell, groups=groups)
        forces = p.forces
        v += 0.5 * dt * forces / mass
        total.append(p.energy + 0.5 * (mass * v * v).sum())
    time_ps = np.arange(steps) * dt / 1000
    drift = np.polyfit(time_ps, total, 1)[0] / len(z) / units.HARTREE_EV  # Eh/ps per atom
    print(f"NVE drift {drift:.2e} Eh/ps per atom, fluctuation {np.std(total):.2e} eV")
    assert abs(drift) < 2e-6
    assert np.std(total) < 0.01


def test_shipped_organic_model_forces_with_coulomb_and_ions():
    """The organic model's Coulomb term and structure-wide charge conservation, by finite differences."""
    from qmml.errors import InputError

    model = load_model("organic", device="cpu")
    test = Dataset.load(DATASETS / "organic_test.npz")
    frame = next(f for f in test.frames if 11 in f.elements)  # Na+ in water
    z, x, mol = frame.elements, frame.positions, frame.molecule
    total = [frame.molecule_charges.sum()]
    phi = np.random.default_rng(1).normal(0, 1.0, len(z))
    pred = assert_forces_match_finite_differences(model, z, x, phi, ((0, 1), (7, 0)), group_charges=total,
                                                  molecules=mol)
    assert abs(pred.charges.sum() - 1.0) < 1e-10
    with pytest.raises(InputError, match="pass molecules="):
        model.predict(z, x, group_charges=total)
