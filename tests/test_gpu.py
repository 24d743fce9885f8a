"""The GPU path (gpu4pyscf) gives the CPU results: skipped where there is no GPU or no gpu4pyscf."""

import numpy as np
import pytest
from conftest import charges_around

import qmml
from qmml.qm.gpu import gpu_available

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CUDA and gpu4pyscf")

WATER = (["O", "H", "H"], np.array([[0.0, 0.0, 0.0], [0.76, 0.58, 0.0], [-0.76, 0.58, 0.0]]))


def sites(n=400):
    return charges_around(n, 2.5, 20.0, seed=5)


@pytest.mark.parametrize("method", ["hf", "b3lyp"])
@pytest.mark.parametrize("radii", [None, 0.8], ids=["point", "gaussian"])
@pytest.mark.parametrize("far_field_A", [None, 12.0], ids=["exact", "far field"])
def test_gpu_matches_cpu(method, radii, far_field_A):
    xyz, q = sites()
    kwargs = dict(site_positions=xyz, site_charges=q, site_radii_A=radii, probe_positions=xyz[:5] + 0.3)
    results = [qmml.PySCFEngine(method, "6-31g*", conv_tol=1e-11, device=device, far_field_A=far_field_A)
               .compute(*WATER, **kwargs) for device in ("cpu", "gpu")]
    cpu, gpu = results
    assert gpu.energy == pytest.approx(cpu.energy, abs=1e-7)  # eV
    np.testing.assert_allclose(gpu.forces, cpu.forces, atol=2e-5)  # eV/Å (1e-6 Eh/Bohr is 5e-5)
    np.testing.assert_allclose(gpu.site_forces, cpu.site_forces, atol=2e-5)
    np.testing.assert_allclose(gpu.site_potential, cpu.site_potential, atol=1e-6)
    np.testing.assert_allclose(gpu.probe_potential, cpu.probe_potential, atol=1e-6)


def test_gpu_engine_runs_md_steps_with_the_extrapolated_guess():
    xyz, q = sites(50)
    engine = qmml.PySCFEngine("hf", "6-31g*", device="gpu")
    elements, positions = WATER
    cycles = [engine.compute(elements, positions + 0.002 * k, site_positions=xyz, site_charges=q).scf_cycles
              for k in range(4)]
    assert cycles[-1] < cycles[0]
