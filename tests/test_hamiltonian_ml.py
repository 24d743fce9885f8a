"""The QM/ML Hamiltonian with ML charges: exact forces in both schemes, switching, invariances, errors."""

import numpy as np
import pytest

import qmml
from qmml.environments.ml import MLEnvironment
from qmml.errors import InputError
from qmml.coupling.switching import switch

from conftest import butanol_in_waters, central_difference_forces, water_cluster

FD_STEP_A = 2e-4  # central differences: truncation error ~h^2, SCF noise ~1e-11 Eh / h


@pytest.fixture(scope="module")
def water_model():
    return qmml.load_model("water")


@pytest.fixture(scope="module")
def organic_model():
    return qmml.load_model("organic")


def additive_hamiltonian(model, **options):
    system = water_cluster(20)
    part = qmml.partition(system, np.where(system.resids == 1)[0], charge=0, boundary="none")
    engine = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11)
    return qmml.Hamiltonian(part, engine, model, **options), system


def test_additive_forces_match_finite_differences_with_ml_charges_and_switching(water_model):
    ham, system = additive_hamiltonian(water_model, embedding_cutoff_A=6.0, switch_width_A=2.0)
    scale = ham.switching.factors(system.positions)[0]
    assert np.any((scale > 0.01) & (scale < 0.99)), "some waters must sit inside the switching region"
    assert np.any(scale == 0), "some waters must be switched off"
    result = ham.compute(system.positions)
    fd = central_difference_forces(ham, system.positions, step_A=FD_STEP_A)
    assert np.abs(fd - result.forces).max() < 1e-4
    # the charge-response term is part of what was checked: it is not negligible here
    part = ham.partition
    env = ham.environment.evaluate(system.positions, part, "additive")
    gradient = part.boundary.env_charge_gradient(result.site_potential * scale)
    response = env.forces(gradient) - env.forces(np.zeros_like(gradient))
    assert np.abs(response).max() > 1e-2


def test_subtractive_forces_match_finite_differences_with_link_atom(organic_model):
    system = butanol_in_waters(6)
    part = qmml.partition(system, "resname BUOH and name C3 C4 O1 H31 H32 H41 H42 HO1", charge=0, boundary="rcd")
    assert len(part.links) == 1
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11), organic_model,
                           scheme="subtractive", embedding_cutoff_A=5.0, switch_width_A=1.5)
    assert ham.vdw is None  # the model supplies QM-environment repulsion in this scheme
    result = ham.compute(system.positions)
    assert abs(result.env_charges.sum()) < 1e-10  # conserved: neutral system, neutral QM region
    fd = central_difference_forces(ham, system.positions, step_A=FD_STEP_A)
    assert np.abs(fd - result.forces).max() < 1e-4
    assert np.abs(result.forces).max() > 0.1


def test_energy_is_invariant_under_rotation_and_translation(water_model):
    ham, system = additive_hamiltonian(water_model, embedding_cutoff_A=6.0, switch_width_A=2.0)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = system.positions @ rotation.T + np.array([3.0, -1.0, 2.0])
    a, b = ham.compute(system.positions), ham.compute(moved)
    assert abs(a.energy - b.energy) < 1e-6
    assert np.abs(a.forces @ rotation.T - b.forces).max() < 1e-5


def test_switching_function_is_smooth_and_bounded():
    r = np.linspace(3.0, 7.0, 4001)
    s, ds = switch(r, 4.0, 6.0)
    assert s[0] == 1 and s[-1] == 0 and np.all(np.diff(s) <= 0)
    numeric = np.gradient(s, r)
    assert np.abs(numeric - ds).max() < 1e-4


def test_without_switching_every_charge_is_seen_and_total_environment_charge_is_kept(water_model):
    ham, system = additive_hamiltonian(water_model)
    result = ham.compute(system.positions, forces=False)
    assert len(result.site_charges) == len(ham.partition.env_atoms)
    assert abs(result.site_charges.sum()) < 1e-10
    assert result.vdw_energy != 0  # additive scheme: Lennard-Jones on by default


def test_subtractive_scheme_needs_a_model_that_knows_the_qm_elements(water_model):
    system = butanol_in_waters(2)
    part = qmml.partition(system, "resname BUOH and name C3 C4 O1 H31 H32 H41 H42 HO1", charge=0)
    with pytest.raises(InputError, match="knows elements"):  # at construction (Environment.check), before any SCF
        qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), water_model, scheme="subtractive")
    with pytest.raises(InputError, match="subtractive"):
        qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), qmml.FixedCharges(), scheme="subtractive")


def test_ml_environment_rejects_an_inconsistent_total_charge(water_model):
    system = water_cluster(6)
    part = qmml.partition(system, np.where(system.resids == 1)[0], charge=0, boundary="none")
    env = MLEnvironment(water_model, total_charge=1)
    with pytest.raises(InputError, match="total_charge"):
        env.evaluate(system.positions, part)


@pytest.mark.parametrize("scheme", ["additive", "subtractive"])
def test_ml_reference_forces_match_finite_differences(organic_model, water_model, scheme):
    # the cheap force of multiple time steps must be the exact gradient of its energy too
    system = butanol_in_waters(4)
    # additive: the water model covers the environment, so the QM region is the whole butanol;
    # subtractive: a cut C-C bond with a link atom, the organic model on everything
    qm = "resname BUOH" if scheme == "additive" else "resname BUOH and name C3 C4 O1 H31 H32 H41 H42 HO1"
    part = qmml.partition(system, qm, charge=0)
    env_model = water_model if scheme == "additive" else organic_model
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), env_model, scheme=scheme)
    reference = qmml.MLReference(ham, organic_model)
    result = reference.compute(system.positions)
    fd = central_difference_forces(reference, system.positions, step_A=FD_STEP_A)
    assert np.abs(fd - result.forces).max() < 1e-4
    assert np.abs(result.forces).max() > 0.1


def test_the_timing_split_of_a_call_accounts_for_its_wall_time(water_model):
    import time

    ham, system = additive_hamiltonian(water_model)
    x = system.positions
    ham.compute(x)  # warm-up
    start = time.perf_counter()
    result = ham.compute(x)
    wall = time.perf_counter() - start
    timings = result.details["timings_s"]
    assert set(timings) == {"environment", "qm_embedding_operator", "qm_scf", "qm_gradient", "qm_embedding_response",
                            "environment_response", "vdw"}
    assert all(t >= 0 for t in timings.values())
    assert 0.5 * wall < sum(timings.values()) <= wall  # the parts cover most of the call and never exceed it
