"""PySCFEngine: method selection, warm start, density fitting, SCF fallbacks and their error."""

import numpy as np
import pytest
from pyscf import dft, scf

import qmml
from qmml import units

WATER = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.587], [0.0, -0.757, 0.587]])
SITES = np.array([[2.9, 0.1, -0.2], [3.4, 0.8, 0.2], [3.3, -0.7, 0.1]])
TIP3P = np.array([-0.834, 0.417, 0.417])


@pytest.mark.parametrize("method, charge, multiplicity, cls", [
    ("hf", 0, 1, scf.hf.RHF), ("hf", 1, 2, scf.uhf.UHF), ("b3lyp", 0, 1, dft.rks.RKS), ("b3lyp", 1, 2, dft.uks.UKS)])
def test_restricted_or_unrestricted_by_spin(method, charge, multiplicity, cls):
    engine = qmml.PySCFEngine(method, "sto-3g")
    mol = engine.build_molecule(["O", "H", "H"], WATER, charge, multiplicity)
    assert isinstance(engine.make_scf(mol), cls)


def test_unknown_functional_is_a_clear_error():
    with pytest.raises(qmml.InputError, match="'b3lypp' is neither 'hf' nor an exchange-correlation functional"):
        qmml.PySCFEngine("b3lypp")


def test_bad_scf_option_and_inconsistent_spin_are_clear_errors():
    with pytest.raises(qmml.InputError, match="has no option 'levelshift'"):
        qmml.PySCFEngine("hf", "sto-3g", levelshift=0.2).compute(["O", "H", "H"], WATER)
    with pytest.raises(qmml.InputError, match="charge=0, multiplicity=2"):
        qmml.PySCFEngine("hf", "sto-3g").compute(["O", "H", "H"], WATER, multiplicity=2)


def test_warm_start_from_previous_density_saves_cycles():
    engine = qmml.PySCFEngine("hf", "6-31g", conv_tol=1e-10)
    cold = engine.compute(["O", "H", "H"], WATER, site_positions=SITES, site_charges=TIP3P)
    moved = WATER + np.array([[0.0, 0.002, -0.001], [0, 0, 0], [0, 0, 0]])
    warm = engine.compute(["O", "H", "H"], moved, site_positions=SITES, site_charges=TIP3P, dm0=cold.density)
    cold_again = engine.compute(["O", "H", "H"], moved, site_positions=SITES, site_charges=TIP3P)  # no state kept
    assert warm.scf_cycles < cold.scf_cycles
    assert cold_again.scf_cycles == cold.scf_cycles
    assert warm.energy == pytest.approx(cold_again.energy, abs=1e-7)


def test_density_fitting_energy_and_forces():
    exact = qmml.PySCFEngine("hf", "6-31g").compute(["O", "H", "H"], WATER, site_positions=SITES,
                                                    site_charges=TIP3P)
    engine = qmml.PySCFEngine("hf", "6-31g", density_fit=True, conv_tol=1e-11)
    fitted = engine.compute(["O", "H", "H"], WATER, site_positions=SITES, site_charges=TIP3P)
    assert fitted.energy == pytest.approx(exact.energy, abs=1e-3)  # eV: fitting error, not a bug
    h = 1e-3
    sites = SITES.copy()
    sites[0, 0] += h
    e_plus = engine.compute(["O", "H", "H"], WATER, site_positions=sites, site_charges=TIP3P).energy
    sites[0, 0] -= 2 * h
    e_minus = engine.compute(["O", "H", "H"], WATER, site_positions=sites, site_charges=TIP3P).energy
    assert fitted.site_forces[0, 0] == pytest.approx(-(e_plus - e_minus) / (2 * h), abs=1e-4)


@pytest.mark.parametrize("cell", [None, 16.0 * np.eye(3)], ids=["open", "periodic"])
def test_no_scf_object_outlives_its_calculation(cell):
    """Nothing keeps the SCF object (its density-fitting tensors, and a periodic field over every site image)
    alive after compute returns: no reference cycle, so it is freed at once rather than whenever the cyclic
    collector runs (a 43,000-atom enzyme scan had grown by 0.25 GB a minute)."""
    import gc

    engine = qmml.PySCFEngine("hf", "sto-3g", density_fit=True)
    engine.compute(["O", "H", "H"], WATER, site_positions=SITES, site_charges=TIP3P, cell=cell)
    gc.collect()
    gc.disable()
    try:
        engine.compute(["O", "H", "H"], WATER + 0.01, site_positions=SITES, site_charges=TIP3P, cell=cell)
        alive = [o for o in gc.get_objects() if isinstance(o, scf.hf.SCF)]
    finally:
        gc.enable()
    assert alive == []


def test_scf_failure_tries_fallbacks_then_says_what_was_tried():
    engine = qmml.PySCFEngine("hf", "6-31g", max_cycle=1, conv_tol=1e-12)
    with pytest.raises(qmml.SCFConvergenceError, match="with any of: diis, damping, level shift, second order"):
        engine.compute(["O", "H", "H"], WATER, charge=0, site_positions=SITES, site_charges=TIP3P)


def test_fallback_rescues_an_scf_that_diis_cannot_finish(caplog):
    """Water cation with 4 cycles per attempt: DIIS cannot finish, the fallbacks (each starting from the
    last density) reach the same state as an unhurried SCF."""
    embedding = dict(charge=1, multiplicity=2, site_positions=SITES, site_charges=TIP3P)
    reference = qmml.PySCFEngine("hf", "sto-3g", max_cycle=300).compute(["O", "H", "H"], WATER, **embedding)
    engine = qmml.PySCFEngine("hf", "sto-3g", max_cycle=4, conv_tol=1e-10)
    result = engine.compute(["O", "H", "H"], WATER, **embedding)
    assert result.converged_with != "diis"
    assert "SCF converged only with" in caplog.text
    assert result.energy == pytest.approx(reference.energy, abs=1e-6 * units.HARTREE_EV)


WATER_DIMER = np.array([[-1.464, 0.099, 0.300], [-1.956, 0.624, -0.340], [-1.797, -0.799, 0.206],
                        [1.369, 0.146, -0.395], [1.894, 0.486, 0.335], [0.451, 0.165, -0.083]])


@pytest.mark.parametrize("max_cycle, strategy", [(100, "diis"), (6, "damping")])
def test_forces_without_the_extra_fock_build_equal_pyscfs_extra_cycle(max_cycle, strategy):
    """The engine skips PySCF's post-convergence Fock build but keeps its diagonalization: the forces are
    PySCF's ``conv_check`` forces, and the last DIIS step's orbitals alone would miss them by 1e-6-5e-5 eV/Å."""
    def forces(**options):
        engine = qmml.PySCFEngine("pbe", "631g", conv_tol=1e-10, max_cycle=max_cycle, **options)
        result = engine.compute(["O", "H", "H"] * 2, WATER_DIMER)
        assert result.converged_with == strategy
        return result.forces

    pyscf_way = forces(conv_check=True)
    np.testing.assert_allclose(forces(), pyscf_way, atol=1e-10, rtol=0)
    assert np.abs(forces(conv_check=False, callback=lambda envs: None) - pyscf_way).max() > 1e-7
