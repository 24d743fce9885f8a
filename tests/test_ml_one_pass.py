"""One model pass per QM/ML step: the forces with the charge response come from the autograd graph of the
charge pass, exact by finite differences and identical to a second pass; the shared neighbour module and its
Verlet skin give the pairs a fresh search gives."""

from pathlib import Path

import numpy as np
import pytest

import qmml
from qmml.environments.ml import MLEnvironment
from qmml.ml.model import EnvironmentModel
from qmml.ml.potential import MLPotential
from qmml.periodic.neighbours import VerletList, brute_force_pairs, pairs

from conftest import butanol_in_waters, finite_difference_forces, finite_strain_derivative, water_cluster

MODELS = Path(__file__).resolve().parents[1] / "data" / "models"


@pytest.fixture(scope="module")
def condensed_model():
    """Every term a model can have: Coulomb (DSF), D3 dispersion, bonded baseline, embedding-charge head."""
    model = qmml.load_model(MODELS / "organic_condensed.pt")
    assert model.coulomb_cutoff and model.dispersion and model.baseline and model.embedding_charges
    return model


@pytest.fixture
def counted_passes(monkeypatch):
    """How many times each model evaluated its networks (one call per chunk of atoms)."""
    calls = []
    real = EnvironmentModel.atomic_terms

    def counting(self, species, positions, *args, **kwargs):
        calls.append(len(species))
        return real(self, species, positions, *args, **kwargs)

    monkeypatch.setattr(EnvironmentModel, "atomic_terms", counting)
    return calls


def test_one_qm_ml_step_makes_one_model_pass(counted_passes):
    system = water_cluster(20)
    part = qmml.partition(system, [0, 1, 2], charge=0, boundary="none")
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), qmml.load_model("water"))
    ham.compute(system.positions)
    assert len(counted_passes) == 1, "additive scheme: one forward pass of the environment per step"
    counted_passes.clear()
    two_pass = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"),
                                MLEnvironment(qmml.load_model("water"), one_pass_max_atoms=0))
    two_pass.compute(system.positions)
    assert len(counted_passes) == 2, "above one_pass_max_atoms the response is a second pass"


def test_subtractive_step_makes_one_pass_of_the_whole_structure(counted_passes):
    system = butanol_in_waters(6)
    part = qmml.partition(system, "resname BUOH and name C3 C4 O1 H31 H32 H41 H42 HO1", charge=0, boundary="rcd")
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), qmml.load_model("organic"), scheme="subtractive")
    ham.compute(system.positions)
    # the whole structure once, and the QM region by itself (the part the scheme subtracts) once
    assert sorted(counted_passes) == [len(part.qm_atoms) + len(part.links), system.n_atoms]


def in_a_box(system, margin_A=3.0):
    lo, hi = system.positions.min(0) - margin_A, system.positions.max(0) + margin_A
    return qmml.System.from_arrays(system.elements, system.positions - lo, box=list(hi - lo) + [90.0, 90.0, 90.0],
                                   bonds=system.bonds, residues=system.resids, resnames=system.resnames,
                                   names=system.names, charges=system.charges)


@pytest.mark.parametrize("scheme", ["additive", "subtractive"])
@pytest.mark.parametrize("model_name", ["water", "organic_condensed"])
def test_one_pass_response_equals_second_pass_and_finite_differences(condensed_model, model_name, scheme,
                                                                     monkeypatch):
    """Forces and strain derivative of E + g.q (g fixed) from the kept graph: equal to a second model pass
    (the chunked path of `predict`) to round-off, and to central differences of energy-only evaluations, in a
    periodic box; ``organic_condensed`` has every term a model can have."""
    if model_name == "water":
        model, system = qmml.load_model("water"), in_a_box(water_cluster(20))
        qm = [0, 1, 2]
    else:
        model, system = condensed_model, in_a_box(butanol_in_waters(10))
        qm = "resname BUOH and name C3 C4 O1 H31 H32 H41 H42 HO1"
    part = qmml.partition(system, qm, charge=0, boundary="rcd")
    x, cell = system.positions, system.cell
    one, two = MLEnvironment(model), MLEnvironment(model, one_pass_max_atoms=0)
    gradient = np.random.default_rng(7).normal(0, 0.5, len(part.env_atoms))
    kept = one.evaluate(x, part, scheme, cell=cell)
    forces, strain = kept.forces(gradient), kept.strain_derivative(gradient)
    monkeypatch.setattr("qmml.ml.model.ONE_PASS_MAX_ATOMS", 0)  # predict's own second pass, not the kept graph
    again = two.evaluate(x, part, scheme, cell=cell)
    assert kept.energy == pytest.approx(again.energy, abs=1e-10)
    np.testing.assert_allclose(kept.charges, again.charges, atol=1e-12)
    np.testing.assert_allclose(forces, again.forces(gradient), atol=1e-10)
    np.testing.assert_allclose(strain, again.strain_derivative(gradient), atol=1e-9)

    def objective(xx, cc=cell):
        e = one.evaluate(xx, part, scheme, cell=cc, forces=False)
        return e.energy + float(gradient @ e.charges)

    atoms = [0, 2, int(part.env_atoms[0]), int(part.env_atoms[-1])]
    fd = finite_difference_forces(objective, x, atoms, step=1e-4)
    assert np.abs(fd - forces[atoms]).max() < 1e-4
    assert np.abs(forces[atoms]).max() > 0.1
    fd_strain = finite_strain_derivative(lambda d: objective(x @ d, cell @ d))
    assert np.abs(fd_strain - strain).max() < 1e-3  # eV, against entries of 1-10 eV


def test_evaluation_without_forces_refuses_force_calls(condensed_model):
    system = water_cluster(20)
    part = qmml.partition(system, [0, 1, 2], charge=0, boundary="none")
    evaluation = MLEnvironment(condensed_model).evaluate(system.positions, part, forces=False)
    with pytest.raises(qmml.InputError, match="forces=False"):
        evaluation.forces(np.zeros(len(part.env_atoms)))


@pytest.mark.parametrize("periodic", [False, True])
def test_verlet_list_gives_the_pairs_of_a_fresh_search_and_rebuilds_only_when_needed(periodic):
    rng = np.random.default_rng(0)
    cell = np.array([[9.0, 0.0, 0.0], [2.0, 8.5, 0.0], [-1.0, 1.5, 7.5]]) if periodic else None
    x = rng.uniform(0, 8, (150, 3))
    verlet = VerletList(skin=1.0)

    def as_set(found):
        return {(int(a), int(b), tuple(int(v) for v in s)) for a, b, s in zip(*found)}

    for step in range(30):
        assert as_set(verlet.pairs(x, 3.0, cell)) == as_set(pairs(x, 3.0, cell))
        assert as_set(verlet.pairs(x, 2.0, cell, full=False)) == as_set(pairs(x, 2.0, cell, full=False))
        x = x + rng.normal(0, 0.03, x.shape)  # ~0.05 Å per step: a rebuild every few steps, not every step
    assert 2 < verlet.builds < 30  # two cutoffs, each rebuilt a few times
    builds = verlet.builds
    verlet.pairs(x + np.array([0.0, 0.0, 0.6]) * (np.arange(len(x)) == 3)[:, None], 3.0, cell)  # > skin/2
    assert verlet.builds == builds + 1
    if periodic:
        verlet.pairs(x, 3.0, cell * 1.01)  # a new cell (NPT) always rebuilds
        assert verlet.builds == builds + 2


def test_md_with_kept_pair_lists_follows_the_same_trajectory():
    """NVE of a periodic water box with the lists kept (1 Å skin) and searched afresh every call (no skin):
    the same trajectory to the last bit (pairs come in one canonical order), with a fraction of the searches."""
    system = in_a_box(water_cluster(20), margin_A=1.0)
    runs = {}
    for skin in (1.0, 0.0):
        potential = MLPotential(qmml.load_model("water"), system, neighbour_skin_A=skin)
        sim = qmml.Simulation(potential, qmml.VelocityVerlet(0.5), temperature_K=300.0, seed=3, progress=False)
        sim.run(40)
        runs[skin] = (sim.state.positions.copy(), potential.neighbours.builds)
    np.testing.assert_array_equal(runs[1.0][0], runs[0.0][0])
    assert runs[0.0][1] >= 40 and runs[1.0][1] <= 5


def test_shared_pairs_match_brute_force_in_a_thin_triclinic_box():
    x = np.random.default_rng(2).uniform(0, 4, (20, 3))
    cell = np.array([[4.0, 0.0, 0.0], [1.5, 3.8, 0.0], [0.7, -0.9, 3.9]])  # thinner than twice the cutoff
    i, j, s = pairs(x, 4.5, cell)
    assert {(int(a), int(b), tuple(int(v) for v in t)) for a, b, t in zip(i, j, s)} == \
        brute_force_pairs(x, 4.5, cell, max_image=4)
    i, j, s = pairs(x, 4.5, cell, full=False)
    assert len(i) * 2 == len(pairs(x, 4.5, cell)[0])


def test_batched_committee_gives_each_members_own_prediction(condensed_model):
    """All members in one batched pass: each member's atomic energies and charges equal that member evaluated
    alone (a mix-up of member and channel axes would show), for a model with an embedding head."""
    import torch

    from qmml.ml.model import committee_atomic, neighbour_density

    system = butanol_in_waters(4)
    model = condensed_model
    species = model.species(system.atomic_numbers)
    i, j, s = pairs(system.positions, model.cutoff)
    x = torch.as_tensor(system.positions)
    basis, unit = model.pair_geometry(x, torch.as_tensor(i), torch.as_tensor(j), torch.zeros((len(i), 3),
                                                                                             dtype=x.dtype))
    density = neighbour_density(basis, unit, species[j], torch.as_tensor(i), len(x), len(model.elements))
    together = committee_atomic(list(model.members), density, species)
    assert together[0].shape == (len(model.members), len(x))
    for m, member in enumerate(model.members):
        alone = committee_atomic([member], density, species)
        for a, b in zip(together, alone):
            torch.testing.assert_close(a[m], b[0], rtol=0, atol=1e-12)
    assert float((together[0][0] - together[0][1]).detach().abs().max()) > 1e-4  # the members do differ
