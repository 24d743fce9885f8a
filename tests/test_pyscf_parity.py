"""Parity with pyscf.qmmm on its own gradient test: QM water + three charges at RHF/6-31G."""

import numpy as np
import pytest
from pyscf import grad, gto, scf
from pyscf.qmmm import itrf

import qmml
from qmml import units

QM_XYZ = np.array([[-1.464, 0.099, 0.300], [-1.956, 0.624, -0.340], [-1.797, -0.799, 0.206]])
MM_XYZ = np.array([[1.369, 0.146, -0.395], [1.894, 0.486, 0.335], [0.451, 0.165, -0.083]])
MM_CHARGES = np.array([-1.040, 0.520, 0.520])
MM_RADII = np.array([6.3, 0.32, 0.32])


def water_and_charges():
    """The pyscf test as a qmml System: QM water, and an environment 'water' carrying the charges."""
    system = qmml.System.from_arrays(["O", "H", "H", "O", "H", "H"], np.vstack([QM_XYZ, MM_XYZ]),
                                     bonds=[(0, 1), (0, 2), (3, 4), (3, 5)], residues=[1, 1, 1, 2, 2, 2])
    return system, qmml.partition(system, [0, 1, 2], charge=0)


def pyscf_reference(radii):
    mol = gto.M(atom=[("O", QM_XYZ[0]), ("H", QM_XYZ[1]), ("H", QM_XYZ[2])], basis="631g", verbose=0)
    mf = itrf.mm_charge(scf.RHF(mol), MM_XYZ, MM_CHARGES, radii)
    energy = mf.kernel()
    g = itrf.mm_charge_grad(grad.RHF(mf), MM_XYZ, MM_CHARGES, radii)
    g_qm = g.kernel()
    g_mm = g.grad_hcore_mm(mf.make_rdm1()) + g.grad_nuc_mm()
    return energy, np.vstack([g_qm, g_mm])


@pytest.mark.parametrize("radii, published", [(None, -76.00057498193152), (MM_RADII, -76.02861628942037)],
                         ids=["point", "gaussian"])
def test_energy_and_gradients_match_pyscf_qmmm(radii, published):
    system, part = water_and_charges()
    radius_by_element = None if radii is None else {"O": 6.3, "H": 0.32}
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "631g"), qmml.FixedCharges(np.r_[0, 0, 0, MM_CHARGES]),
                           vdw=None, charge_radii_A=radius_by_element)
    result = ham.compute(system.positions)

    assert result.energy / units.HARTREE_EV == pytest.approx(published, abs=1e-8)
    reference_energy, reference_gradient = pyscf_reference(radii)
    assert result.energy / units.HARTREE_EV == pytest.approx(reference_energy, abs=1e-8)
    gradient = -result.forces / units.HARTREE_PER_BOHR_EV_PER_A
    np.testing.assert_allclose(gradient, reference_gradient, atol=1e-7, rtol=0)


def test_engine_site_potential_is_the_charge_derivative_of_the_energy():
    """phi_j = dE/dq_j (variational SCF): checked by central differences in the charges."""
    engine = qmml.PySCFEngine("hf", "631g", conv_tol=1e-11)
    base = engine.compute(["O", "H", "H"], QM_XYZ, site_positions=MM_XYZ, site_charges=MM_CHARGES)
    dq = 1e-4
    for j in range(3):
        q = MM_CHARGES.copy()
        q[j] += dq
        e_plus = engine.compute(["O", "H", "H"], QM_XYZ, site_positions=MM_XYZ, site_charges=q).energy
        q[j] -= 2 * dq
        e_minus = engine.compute(["O", "H", "H"], QM_XYZ, site_positions=MM_XYZ, site_charges=q).energy
        assert (e_plus - e_minus) / (2 * dq) == pytest.approx(base.site_potential[j], abs=1e-5)
