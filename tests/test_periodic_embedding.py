"""Periodic (Ewald) embedding of the QM region: parity with pyscf.qmmm.pbc, exact derivatives
(forces, site potentials, strain), and the invariances of a periodic energy."""

import numpy as np
import pytest

import qmml
from conftest import finite_strain_derivative
from qmml import units

WATER = np.array([[0.0, 0.0, 0.1174], [-0.757, 0.0, -0.4696], [0.757, 0.0, -0.4696]])  # Å


def test_matches_pyscf_qmmm_pbc_on_its_own_test_system():
    """pyscf/qmmm/pbc/test: water (PBE0/3-21G, density fitting) with Gaussian charges -5/+5 (radii 0.8 and
    1.2 Å) at (1, 2, -1) and (3, 4, 5) Å in a 15 Å cubic box, exact inside 6 Å: E = -76.00178807 Eh,
    checked there to 1e-7 Eh (and the gradients to 1e-6 Eh/Bohr)."""
    from pyscf import gto
    from pyscf.dft import rks
    from pyscf.qmmm.pbc import itrf

    sites, charges, radii = np.array([[1.0, 2.0, -1.0], [3.0, 4.0, 5.0]]), np.array([-5.0, 5.0]), np.array([0.8, 1.2])
    engine = qmml.PySCFEngine("pbe0", "3-21g", density_fit="cc-pvdz-jkfit", near_field_A=6.0, near_field_width_A=0.0,
                              grid_response=False)
    ours = engine.compute(["O", "H", "H"], WATER, site_positions=sites, site_charges=charges, site_radii_A=radii,
                          cell=np.eye(3) * 15.0)
    energy = ours.energy / units.HARTREE_EV
    assert abs(energy - -76.00178807) < 1e-7

    mol = gto.M(atom=[("O", WATER[0]), ("H", WATER[1]), ("H", WATER[2])], basis="3-21g", verbose=0)
    mf = itrf.add_mm_charges(rks.RKS(mol, xc="PBE0").density_fit(auxbasis="cc-pvdz-jkfit"), sites, np.eye(3) * 15.0,
                             charges, radii, rcut_ewald=8, rcut_hcore=6)
    reference = mf.kernel()
    grad = mf.nuc_grad_method()
    grad.auxbasis_response = True
    g_qm = grad.kernel()
    g_mm = grad.grad_nuc_mm() + grad.grad_hcore_mm(mf.make_rdm1()) + grad.de_ewald_mm
    print(f"qmml {energy:.10f} Eh, pyscf.qmmm.pbc {reference:.10f} Eh, published -76.00178807 Eh")
    assert abs(energy - reference) < 1e-9
    to_au = 1.0 / units.HARTREE_PER_BOHR_EV_PER_A
    np.testing.assert_allclose(-ours.forces * to_au, g_qm, atol=1e-7)
    np.testing.assert_allclose(-ours.site_forces * to_au, g_mm, atol=1e-7)


@pytest.fixture(scope="module")
def periodic_case():
    """Water (HF/STO-3G) among 20 Gaussian charges (net -0.3 e: a charged box) in a triclinic box."""
    rng = np.random.default_rng(3)
    cell = np.array([[11.0, 0.0, 0.0], [1.5, 10.5, 0.0], [-1.0, 2.0, 10.8]])
    water = WATER + 0.3
    sites = rng.uniform(0, 1, (60, 3)) @ cell
    d = (sites - water.mean(0)) @ np.linalg.inv(cell)
    sites -= np.round(d) @ cell
    sites = sites[np.linalg.norm(sites - water.mean(0), axis=1) > 2.5][:20]
    charges = rng.uniform(-0.8, 0.8, len(sites))
    charges += -0.3 / len(sites) - charges.mean()
    engine = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-12, near_field_A=6.0, near_field_width_A=1.5)

    def run(x=water, s=sites, c=cell, q=charges, forces=True, eng=engine):
        return eng.compute(["O", "H", "H"], x, site_positions=s, site_charges=q, site_radii_A=0.6, cell=c,
                           forces=forces)

    return run, water, sites, cell, charges


def test_forces_site_potentials_and_strain_derivative_are_exact(periodic_case):
    run, water, sites, cell, charges = periodic_case
    result = run()
    h = 1e-3

    def energy(**kw):
        return run(forces=False, **kw).energy

    fd = np.zeros((3, 3))
    for a in range(3):
        for k in range(3):
            step = np.zeros((3, 3))
            step[a, k] = h
            fd[a, k] = -(energy(x=water + step) - energy(x=water - step)) / (2 * h)
    assert np.abs(fd - result.forces).max() < 1e-4  # eV/Å
    # sites in the blend shell, exact inside, and far (multipole only)
    distance = np.linalg.norm(sites - water.mean(0), axis=1)
    chosen = [int(np.argmin(np.abs(distance - 5.2))), int(np.argmin(distance)), int(np.argmax(distance))]
    assert distance[chosen[0]] > 6.0 - 1.5 and distance[chosen[0]] < 6.0 and distance[chosen[2]] > 6.0
    for j in chosen:
        for k in range(3):
            step = np.zeros_like(sites)
            step[j, k] = h
            f = -(energy(s=sites + step) - energy(s=sites - step)) / (2 * h)
            assert abs(f - result.site_forces[j, k]) < 1e-6
        dq = np.zeros_like(charges)
        dq[j] = 1e-4
        assert abs((energy(q=charges + dq) - energy(q=charges - dq)) / 2e-4 - result.site_potential[j]) < 1e-6
    strain = finite_strain_derivative(lambda d: energy(x=water @ d, s=sites @ d, c=cell @ d), step=1e-4)
    error_gpa = np.abs(strain - result.strain_derivative).max() / abs(np.linalg.det(cell)) * units.EV_PER_A3_GPA
    print(f"strain derivative error {error_gpa:.1e} GPa, force error {np.abs(fd - result.forces).max():.1e} eV/Å")
    assert error_gpa < 1e-5


def test_energy_is_periodic_and_independent_of_the_ewald_split(periodic_case):
    run, water, sites, cell, charges = periodic_case
    e0 = run(forces=False).energy
    moved = sites.copy()
    moved[[2, 7]] += cell[1] - cell[2]
    assert abs(run(s=moved, forces=False).energy - e0) < 1e-9  # a site by a lattice vector
    assert abs(run(x=water + cell[0] + cell[2], forces=False).energy - e0) < 1e-9  # another image of the QM region
    assert abs(run(x=water + 0.37, s=sites + 0.37, forces=False).energy - e0) < 1e-9
    finer = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-12, near_field_A=6.0, near_field_width_A=1.5,
                             ewald_accuracy=1e-14)
    assert abs(run(eng=finer, forces=False).energy - e0) < 1e-7  # the box is charged: the background term counts


def test_a_box_too_small_for_the_qm_region_is_refused():
    engine = qmml.PySCFEngine("hf", "sto-3g", near_field_A=6.0, near_field_width_A=0.5)
    with pytest.raises(qmml.InputError, match="too small for the QM region"):
        engine.compute(["O", "H", "H"], WATER, site_positions=[[3.0, 0, 0]], site_charges=[0.0], cell=np.eye(3) * 7.0)
    with pytest.raises(qmml.InputError, match="raise near_field_A"):
        qmml.PySCFEngine("hf", "sto-3g", near_field_A=4.0, near_field_width_A=0.0).compute(
            ["O", "H", "H"], WATER, site_positions=[[3.0, 0, 0]], site_charges=[0.0], cell=np.eye(3) * 15.0)


def test_qm_ml_hamiltonian_in_a_periodic_box_has_exact_forces_and_stress():
    """HF/STO-3G water in 127 ML waters (the shipped test set's 16-water box, doubled along each axis,
    15.6 Å): forces and stress of the whole Hamiltonian (Ewald embedding, ML charge response, LJ)
    against finite differences; the energy is the same for another image of the QM water, another image
    of an environment water, and a skewed cell of the same lattice."""
    from qmml.ml import Dataset
    from conftest import DATA

    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    cell = np.asarray(frame.cell)
    images = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)]) @ cell
    x = np.concatenate([np.asarray(frame.positions) + s for s in images])
    n = len(x) // 3
    box = 2 * cell
    system = qmml.System.from_arrays(np.tile(["O", "H", "H"], n), x, box=np.diag(box),
                                     residues=np.repeat(np.arange(n), 3) + 1,
                                     bonds=[(3 * i, 3 * i + b) for i in range(n) for b in (1, 2)])
    part = qmml.partition(system, [0, 1, 2], charge=0)
    engine = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11, near_field_A=6.0, near_field_width_A=1.0)
    ham = qmml.Hamiltonian(part, engine, qmml.load_model("water").double())
    result = ham.compute(x)

    def energy(p, c=None):
        return ham.compute(p, forces=False, cell=c).energy

    h = 5e-4
    oxygens = np.linalg.norm(x[0::3] - x[0], axis=1)
    atoms = [0, 1, 3 * int(np.argsort(oxygens)[3]), 3 * int(np.argmax(oxygens)) + 1]  # QM, near and far waters
    error = 0.0
    for a in atoms:
        for k in range(3):
            step = np.zeros_like(x)
            step[a, k] = h
            error = max(error, abs(-(energy(x + step) - energy(x - step)) / (2 * h) - result.forces[a, k]))
    strain = np.zeros((3, 3))
    for a in range(3):
        for b in range(a, 3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = 1e-4 if a == b else 0.5e-4
            up, down = (np.eye(3) + eps).T, (np.eye(3) - eps).T
            strain[a, b] = strain[b, a] = (energy(x @ up, box @ up) - energy(x @ down, box @ down)) / 2e-4
    stress_error = np.abs(strain / abs(np.linalg.det(box)) - result.stress).max() * units.EV_PER_A3_GPA
    print(f"QM/ML periodic: force error {error:.1e} eV/Å, stress error {stress_error:.1e} GPa, "
          f"pressure {-np.trace(result.stress) / 3 * units.EV_PER_A3_GPA:.2f} GPa (potential part)")
    assert error < 1e-4
    assert stress_error < 1e-3
    e0 = result.energy
    assert abs(energy(np.concatenate([x[:3] + box[1], x[3:]])) - e0) < 1e-6
    moved = x.copy()
    moved[30:33] += box[0] - box[2]
    assert abs(energy(moved) - e0) < 1e-6
    skewed = box.copy()
    skewed[2] += box[0]
    assert abs(energy(x, skewed) - e0) < 1e-4  # float-level differences of the ML neighbour sums (3e-6 eV)
