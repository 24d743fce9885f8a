"""Exact embedding integrals: blocking and the integral cache change the cost, never the numbers.

The reference is pyscf.qmmm itself (mm_charge + grad_hcore_mm + grad_nuc_mm) on a QM water in 300
point charges.
"""

import numpy as np
import pytest
from pyscf import gto, scf
from pyscf.qmmm import itrf

from conftest import charges_around
import qmml
from qmml import units
from qmml.qm import embedding

QM_XYZ = np.array([[0.0, 0.0, 0.0], [0.76, 0.58, 0.0], [-0.76, 0.58, 0.0]])


def sites():
    return charges_around(300, 2.5, 12.0, seed=3)


@pytest.fixture(scope="module")
def pyscf_reference():
    xyz, q = sites()
    mol = gto.M(atom=[("O", QM_XYZ[0]), ("H", QM_XYZ[1]), ("H", QM_XYZ[2])], basis="6-31g*", verbose=0)
    mf = itrf.mm_charge(scf.RHF(mol), xyz, q)
    mf.conv_tol = 1e-11
    energy = mf.kernel()
    g = mf.nuc_grad_method()
    g_qm = g.kernel()
    g_sites = g.grad_hcore_mm(mf.make_rdm1()) + g.grad_nuc_mm()
    return energy, g_qm, g_sites


@pytest.mark.parametrize("block_bytes, cache_bytes", [(embedding.BLOCK_BYTES, embedding.CACHE_BYTES),
                                                     (4 * 8 * 19**2 * 7, 0), (4 * 8 * 19**2 * 7, 8 * 19 * 20 * 30)],
                         ids=["one block", "7-site blocks, no cache", "7-site blocks, part cached"])
def test_blocked_and_cached_integrals_match_pyscf_qmmm(monkeypatch, pyscf_reference, block_bytes, cache_bytes):
    monkeypatch.setattr(embedding, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(embedding, "CACHE_BYTES", cache_bytes)
    xyz, q = sites()
    engine = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-11, guess="default")
    result = engine.compute(["O", "H", "H"], QM_XYZ, site_positions=xyz, site_charges=q)
    energy, g_qm, g_sites = pyscf_reference
    assert result.energy / units.HARTREE_EV == pytest.approx(energy, abs=1e-9)
    to_gradient = -1.0 / units.HARTREE_PER_BOHR_EV_PER_A
    np.testing.assert_allclose(result.forces * to_gradient, g_qm, atol=1e-7, rtol=0)
    np.testing.assert_allclose(result.site_forces * to_gradient, g_sites, atol=1e-7, rtol=0)
