"""Active learning, committee uncertainty, cut-outs and adversarial sampling on real water models."""

import numpy as np
import pytest
import torch

import qmml
from qmml.sampling.colvars import Distance
from qmml.ml import Dataset, TrainingOptions, load_model, train
from qmml.ml import LabellerSpec
from qmml.ml.active import ActiveLearning, Thresholds
from qmml.ml.adversarial import _committee, adversarial_attack
from qmml.ml.cutout import Cluster, cut_out
from qmml.ml.train import evaluate
from qmml.ml.uncertainty import committee_uncertainty
from qmml.units import BOHR_A, BOLTZMANN_EV_PER_K

from conftest import DATA, STRUCTURES, water_cluster

pytest.importorskip("tblite")


def _frames_of_size(dataset, n_atoms):
    return [int(i) for i, f in enumerate(dataset.frames) if f.cell is None and len(f.elements) == n_atoms]


@pytest.fixture(scope="module")
def water_train():
    return Dataset.load(DATA / "datasets" / "water_train.npz")


@pytest.fixture(scope="module")
def undertrained(water_train):
    """A committee fitted to 16 four-water clusters for 40 epochs: deliberately undertrained."""
    small = water_train[_frames_of_size(water_train, 12)[:16]]
    model = train(small, TrainingOptions(n_members=3, max_epochs=40, patience=40, progress=False, seed=1))
    return small, model.to(torch.float64)


@pytest.mark.slow
def test_active_learning_lowers_the_force_error_on_the_structures_it_visits(undertrained, water_train, tmp_path):
    small, model = undertrained
    system = water_train.frames[_frames_of_size(water_train, 24)[0]].to_system("HOH")  # 8 waters: unseen size
    potential = qmml.MLPotential(model, system)
    sim = qmml.Simulation(potential, qmml.Langevin(0.5, 300, friction_per_ps=10, seed=0), temperature_K=300,
                          reporters=[qmml.ThermoLog(tmp_path / "thermo.csv", plot=False)], progress=False)
    learner = ActiveLearning(sim, LabellerSpec("xtb"), small, tmp_path / "al", thresholds=Thresholds(force_eV_A=0.3),
                             check_every=10, batch_size=4, max_rounds=3,
                             training=TrainingOptions(max_epochs=30, patience=10, progress=False))
    visited = []
    for _ in range(7):
        learner.run(20)
        visited.append(sim.state.positions.copy())
    assert sim.state.step == 140  # the run continued through every retraining
    assert len(learner.rounds) == 3 and len(learner.model.members) == 3
    assert learner.model is potential.model and learner.model is not model

    # force error of the start and the final model on the visited structures, against GFN2-xTB itself
    reference = LabellerSpec("xtb")
    whole = [Cluster(system.atomic_numbers, x, system.molecule_index, np.zeros(8), np.arange(24), np.arange(24))
             for x in visited]
    labelled = Dataset([c.to_frame(reference(c)) for c in whole])
    before = evaluate(model, labelled)["force_rmse_eV_A"]
    after = evaluate(learner.model, labelled)["force_rmse_eV_A"]
    spreads = [c["max_force_std_eV_A"] for c in learner.checks]
    print(f"force RMSE on the {len(visited)} visited structures: {before:.3f} -> {after:.3f} eV/Å; largest force "
          f"spread {np.mean(spreads[:3]):.2f} -> {np.mean(spreads[-3:]):.2f} eV/Å; rounds {learner.rounds}")
    assert before > 0.2, "the starting model is not undertrained: the test would prove nothing"
    assert after < 0.6 * before, (before, after)

    assert np.mean(spreads[-3:]) < 0.7 * np.mean(spreads[:3])
    # every round kept its data and model; the thermo log went on across the run() calls
    round_3 = Dataset.load(tmp_path / "al" / "dataset_round03.npz")
    assert len(round_3) == len(small) + 12
    assert len(load_model(tmp_path / "al" / "model_round03.pt").members) == 3
    rows = np.loadtxt(tmp_path / "thermo.csv", delimiter=",", skiprows=1)
    assert list(rows[:, 0]) == list(range(141))
    with pytest.raises(qmml.InputError, match="not empty"):
        ActiveLearning(sim, LabellerSpec("xtb"), small, tmp_path / "al")


def test_embedding_energy_spread_is_that_of_the_members_charges_in_the_qm_potential():
    """sigma(sum_j phi_j q~_j) over the committee, with phi from the QM region: checked member by member."""
    system = water_cluster(6)
    model = load_model("water")
    part = qmml.partition(system, [0, 1, 2], charge=0)
    hamiltonian = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), model)
    x = system.positions
    result = hamiltonian.compute(x)
    u = committee_uncertainty(hamiltonian, x, result)
    env = part.env_atoms
    embedding, charges = [], []
    for m in range(3):
        one = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), model.select_members([m]))
        q = one.environment.evaluate(x, part).charges
        charges.append(q)
        embedding.append(float(np.dot(result.site_potential, part.boundary.site_charges(q))))
    assert u.embedding_std == pytest.approx(np.std(embedding), rel=1e-6, abs=1e-9)
    assert u.embedding_std > 1e-4
    assert np.allclose(u.charge_std[env], np.std(charges, axis=0), atol=1e-9)
    assert np.all(u.charge_std[part.qm_atoms] == 0) and np.all(u.force_std[part.qm_atoms] == 0)
    assert set(u.model_atoms) == set(env)
    wrapped = qmml.with_isotopes(qmml.Restrained(hamiltonian, [qmml.HarmonicRestraint(
        Distance(0, 3), 3.0, 1.0)]), {1: "D"})  # wrappers change nothing here
    assert committee_uncertainty(wrapped, x, result).embedding_std == pytest.approx(u.embedding_std, rel=1e-12)
    with pytest.raises(qmml.InputError, match="committee"):
        committee_uncertainty(qmml.MLPotential(model.select_members([0]), system), x)


def test_cut_out_keeps_molecules_whole_across_the_periodic_boundary(water_train):
    frame = next(f for f in water_train.frames if f.cell is not None)
    system = frame.to_system("HOH")
    cell = np.asarray(frame.cell)
    x = system.positions
    frac = x @ np.linalg.inv(cell)
    centre = int(np.argmax(np.abs(frac - 0.5).max(1)))  # the atom nearest a face of the box
    cluster = cut_out(system, x, [centre], radius_A=3.5)
    # all atoms within 3.5 Å (minimum image) are in, and whole molecules with them
    d = x - x[centre]
    d = (d @ np.linalg.inv(cell) - np.round(d @ np.linalg.inv(cell))) @ cell
    near = np.flatnonzero(np.linalg.norm(d, axis=1) < 3.5)
    molecules = np.unique(system.molecule_index[near])
    assert set(cluster.source) == set(np.flatnonzero(np.isin(system.molecule_index, molecules)))
    assert cluster.n_caps == 0 and cluster.charge == 0
    for m in range(cluster.molecule.max() + 1):
        atoms = cluster.positions[cluster.molecule == m]
        assert len(atoms) == 3 and np.linalg.norm(atoms[1:] - atoms[0], axis=1).max() < 1.2  # unwrapped water
    assert np.linalg.norm(cluster.positions[cluster.source == centre] - x[centre]) < 1e-12


def test_cut_out_caps_a_large_molecule_with_hydrogens_along_the_cut_bonds():
    system = qmml.load_system(STRUCTURES / "peptide_water.psf", STRUCTURES / "peptide_water.pdb")
    og = int(system.select("resname SER and name OG")[0])
    cluster = cut_out(system, system.positions, [og], radius_A=3.0, max_whole_molecule=20)
    assert cluster.n_caps > 0
    from pyscf.data import radii

    z = system.atomic_numbers
    kept = set(cluster.source[cluster.source >= 0])
    for k in np.flatnonzero(cluster.source < 0):
        cap = cluster.positions[k]
        parents = [a for a in kept if np.linalg.norm(system.positions[a] - cap) < 1.3]
        assert len(parents) == 1
        parent = parents[0]
        outer = [b for a, b in np.vstack([system.bonds, system.bonds[:, ::-1]]) if a == parent and b not in kept]
        along = [np.dot(cap - system.positions[parent], system.positions[b] - system.positions[parent])
                 / (np.linalg.norm(cap - system.positions[parent]) * np.linalg.norm(system.positions[b] - system.positions[parent]))
                 for b in outer]
        assert max(along) == pytest.approx(1.0, abs=1e-9)  # on the cut bond
        expected = (radii.COVALENT[z[parent]] + radii.COVALENT[1]) * BOHR_A
        assert np.linalg.norm(cap - system.positions[parent]) == pytest.approx(expected)
    waters = system.residue_index  # every water in the cluster is whole
    for w in np.unique(waters[list(kept)]):
        if system.resnames[system.residue_index == w][0] in ("TIP3", "WAT", "HOH"):
            assert np.isin(np.flatnonzero(waters == w), list(kept)).all()
    assert cluster.charge == round(cluster.charge)


def test_adversarial_displacements_raise_the_spread_at_a_thermal_energy_cost(water_train):
    """Schwalbe-Koda et al. (2021): more committee disagreement than a random displacement of the same
    size, at a fraction of its energy, and further from the start at higher temperature."""
    model = load_model("water")
    frame = water_train.frames[_frames_of_size(water_train, 12)[20]]
    system = frame.to_system("HOH")
    start = qmml.optimize(qmml.MLPotential(model, system), frame.positions, fmax=0.01, max_steps=300,
                          progress=False).positions
    results = {}
    for temperature in (300.0, 1000.0):
        results[temperature] = adversarial_attack(model, frame.elements, start, molecule=frame.molecule,
                                                  molecule_charges=frame.molecule_charges, temperature_K=temperature,
                                                  steps=100, step_size_A=0.02, seed=0)
    hot = results[1000.0]
    kT = BOLTZMANN_EV_PER_K * 1000.0
    assert hot.force_std_eV_A > 2.0 * hot.force_std_start_eV_A
    assert 0 < hot.energy_change_eV < 2 * kT
    random = np.random.default_rng(0).standard_normal(start.shape)
    random *= hot.displacement_rms_A / np.sqrt(np.mean(np.sum(random**2, 1)))
    e0 = _committee(model, frame, torch.as_tensor(start).requires_grad_(True))[0].item()
    e_random, var_random = (v.item() for v in _committee(model, frame,
                                                         torch.as_tensor(start + random).requires_grad_(True)))
    assert e_random - e0 > 5 * hot.energy_change_eV
    objective_random = np.log(var_random) - (e_random - e0) / kT
    assert hot.history["objective"].max() > objective_random + 2
    assert hot.displacement_rms_A > results[300.0].displacement_rms_A
    assert hot.force_std_eV_A > results[300.0].force_std_eV_A
    assert hot.cluster.positions.shape == start.shape


def test_retraining_starts_from_the_current_weights_and_leaves_them_unchanged(undertrained, water_train):
    small, model = undertrained
    more = small + water_train[_frames_of_size(water_train, 24)[:8]]
    before = [p.detach().clone() for p in model.parameters()]
    warm_opts = TrainingOptions(max_epochs=1, progress=False)
    cold_opts = TrainingOptions(n_members=3, max_epochs=1, progress=False)
    train(more, warm_opts, initial=model)
    train(more, cold_opts)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    warm = [row["validation_loss"] for row in warm_opts.history]
    cold = [row["validation_loss"] for row in cold_opts.history]
    assert len(warm) == 3 and max(warm) < 0.3 * min(cold), (warm, cold)


def test_active_learning_in_a_qmml_run_labels_the_environment_around_the_qm_region(undertrained, tmp_path):
    """An embedding-energy flag cuts out the ML waters around the QM water (never the QM atoms), and the
    retrained model drives the Hamiltonian from the same state on."""
    small, model = undertrained
    system = water_cluster(6)
    part = qmml.partition(system, [0, 1, 2], charge=0)
    hamiltonian = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), model)
    sim = qmml.Simulation(hamiltonian, qmml.Langevin(0.5, 300, seed=0), temperature_K=300, progress=False)
    learner = ActiveLearning(sim, LabellerSpec("xtb"), small, tmp_path / "al", check_every=5, batch_size=2, max_rounds=1,
                             thresholds=Thresholds(force_eV_A=100.0, charge_e=100.0, embedding_eV=1e-6),
                             training=TrainingOptions(max_epochs=3, progress=False))
    learner.run(10)
    assert len(learner.rounds) == 1 and learner.rounds[0]["step"] == 10
    # the state after retraining carries the new model's forces (to the SCF convergence), not the old one's
    x = sim.state.positions
    assert np.abs(sim.state.forces - hamiltonian.compute(x).forces).max() < 5e-4
    old = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), model).compute(x).forces
    assert np.abs(sim.state.forces - old).max() > 0.01
    learner.run(5)
    assert sim.state.step == 15 and len(learner.rounds) == 1
    assert hamiltonian.environment.model is learner.model is not model
    new = Dataset.load(tmp_path / "al" / "dataset_round01.npz")[len(small):]
    assert len(new) == 2
    for frame in new.frames:  # whole ML waters only: the QM water is not the model's to learn
        assert len(frame.elements) % 3 == 0 and len(frame.elements) <= 3 * 5
        assert np.bincount(frame.elements)[1] == 2 * np.bincount(frame.elements)[8]
    log = np.genfromtxt(tmp_path / "al" / "uncertainty.csv", delimiter=",", names=True)
    assert np.all(log["embedding_std_eV"] > 1e-6) and list(log["step"]) == [5, 10, 15]


# -- a retrained model put into a running simulation: the state must be that of the new model ------------------
def _periodic_water():
    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    return frame.to_system("WAT")


def _swapped(sim, tmp_path):
    """Install a different committee (two of the three members) through ActiveLearning, as a retraining does."""
    learner = ActiveLearning(sim, LabellerSpec("xtb"), Dataset(), tmp_path / "al")
    new = learner.model.select_members([1, 2])
    learner.install(new)
    assert learner.model is new
    return new


def test_a_model_swap_under_npt_gives_the_state_a_fresh_evaluation_in_the_current_box(tmp_path):
    system = _periodic_water()
    potential = qmml.MLPotential(load_model("water"), system)
    barostat = qmml.md.StochasticCellRescaling(1.0, 4.5e-5, 200.0)
    sim = qmml.Simulation(potential, qmml.Langevin(0.5, 300.0, seed=3, barostat=barostat), temperature_K=300.0,
                          seed=3, progress=False)
    sim.run(6)
    assert not np.allclose(sim.state.cell, system.cell)  # the box has moved away from the system's
    _swapped(sim, tmp_path)
    fresh = potential.compute(sim.state.positions, cell=sim.state.cell)
    np.testing.assert_allclose(sim.state.forces, fresh.forces, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sim.state.stress, fresh.stress, rtol=0, atol=1e-12)
    assert sim.state.potential_energy == pytest.approx(fresh.energy, abs=1e-10)
    np.testing.assert_allclose(sim.state.result.charges, fresh.charges, rtol=0, atol=1e-12)
    sim.run(2)  # and the run goes on from there


def test_a_model_swap_under_pimd_recomputes_every_bead(tmp_path):
    system = _periodic_water()
    potential = qmml.MLPotential(load_model("water"), system)
    integrator = qmml.PathIntegralLangevin(0.5, 300.0, 4, seed=2)
    sim = qmml.Simulation(potential, integrator, temperature_K=300.0, seed=2, progress=False)
    sim.run(4)
    _swapped(sim, tmp_path)
    beads = sim.state.extra["bead_positions"]
    fresh = [potential.compute(x) for x in beads]
    np.testing.assert_allclose(sim.state.extra["bead_forces"], np.stack([r.forces for r in fresh]), rtol=0, atol=1e-10)
    np.testing.assert_allclose(sim.state.forces, np.mean([r.forces for r in fresh], axis=0), rtol=0, atol=1e-10)
    assert sim.state.potential_energy == pytest.approx(np.mean([r.energy for r in fresh]), abs=1e-10)
    sim.run(2)


def test_a_killed_active_learning_run_resumes_with_its_rounds_queue_and_model(undertrained, water_train, tmp_path):
    small, model = undertrained
    system = water_train.frames[_frames_of_size(water_train, 12)[20]].to_system("HOH")

    def simulation(checkpoint_exists):
        potential = qmml.MLPotential(model, system)  # every process starts from the original model
        integrator = qmml.Langevin(0.5, 300, friction_per_ps=10, seed=0)
        if checkpoint_exists:
            return qmml.Simulation.restart(tmp_path / "checkpoint.npz", potential, integrator, progress=False)
        return qmml.Simulation(potential, integrator, temperature_K=300, checkpoint=tmp_path / "checkpoint.npz",
                               checkpoint_every=1000, progress=False)

    options = dict(thresholds=Thresholds(force_eV_A=1e-4, charge_e=1e-4), check_every=5, batch_size=2,
                   training=TrainingOptions(max_epochs=2, patience=2, progress=False))
    first = ActiveLearning(simulation(False), LabellerSpec("xtb"), small, tmp_path / "al", **options)
    first.run(15)  # checks at 5, 10 (round 1 labels both) and 15 (queued, not yet labelled)
    assert len(first.rounds) == 1 and [s for s, _ in first.queue] == [15]
    del first  # the process dies here: only the files remain

    second = ActiveLearning.resume(simulation(True), LabellerSpec("xtb"), tmp_path / "al", **options)
    assert second.simulation.state.step == 15
    assert len(second.rounds) == 1 and [s for s, _ in second.queue] == [15]
    saved = load_model(tmp_path / "al" / "model_round01.pt")
    for key, value in saved.state_dict().items():
        assert torch.equal(value.to(second.model.state_dict()[key].dtype), second.model.state_dict()[key]), key
    assert len(second.dataset) == len(small) + 2
    second.run(5)  # the check at step 20 fills the batch: round 2 continues the numbering
    assert len(second.rounds) == 2
    assert len(Dataset.load(tmp_path / "al" / "dataset_round02.npz")) == len(small) + 4
    with pytest.raises(qmml.InputError, match="ActiveLearning.resume"):
        ActiveLearning(second.simulation, LabellerSpec("xtb"), small, tmp_path / "al")
