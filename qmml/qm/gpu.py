"""GPU path: gpu4pyscf runs the SCF, the gradient and the embedding integrals on a CUDA device.

Opt-in with ``PySCFEngine(..., device="gpu")``, or ``device="auto"`` to use a GPU when CUDA and
gpu4pyscf are importable (https://github.com/pyscf/gpu4pyscf; ``pip install gpu4pyscf-cuda12x`` or
``-cuda13x`` to match the CUDA driver).  The CPU stays the default; nothing else in qmml needs a GPU.

On the GPU the embedding integrals are never stored: gpu4pyscf contracts them with the charges
(the one-electron operator, the QM-centre force) or with the density (the site potential and site
forces) as it computes them, so memory stays O(nao^2 + n_sites).  Arrays cross to the host only at
the boundary of `qmml.qm.engine` (operator, density, gradients), so everything above it is unchanged.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .embedding import ao_to_atoms

DEVICES = ("cpu", "gpu", "auto")


def gpu_available() -> bool:
    """True when gpu4pyscf imports and CUDA sees at least one device."""
    try:
        import cupy
        import gpu4pyscf  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDA errors when no driver is present
        return False


def resolve_device(device: str) -> str:
    """"cpu" or "gpu" for a requested ``device`` ("cpu", "gpu" or "auto")."""
    if device not in DEVICES:
        raise InputError(f"device={device!r} is not one of {DEVICES}")
    if device == "cpu":
        return "cpu"
    if gpu_available():
        return "gpu"
    if device == "auto":
        return "cpu"
    raise InputError("device='gpu' needs CUDA and gpu4pyscf: install gpu4pyscf-cuda12x (or -cuda13x, matching "
                     "`nvidia-smi`'s CUDA version) or use device='cpu' / 'auto'")


def to_host(array) -> np.ndarray:
    """A NumPy copy of a CuPy or NumPy array."""
    get = getattr(array, "get", None)
    return np.asarray(get() if callable(get) else array)


def to_device(array):
    import cupy

    return cupy.asarray(array)


class GPUSiteIntegrals:
    """`qmml.qm.embedding.SiteIntegrals` on the GPU (same methods, host arrays in and out)."""

    def __init__(self, mol, coords, zetas=None, cache_bytes=None):
        import cupy

        self.mol = mol
        self.coords = np.asarray(coords, dtype=float).reshape(-1, 3)
        self._grids = cupy.asarray(self.coords)
        self._zetas = None if zetas is None else cupy.asarray(np.broadcast_to(zetas, len(self.coords)))

    def __len__(self) -> int:
        return len(self.coords)

    def operator(self, charges: np.ndarray) -> np.ndarray:
        from gpu4pyscf.gto.int3c1e import int1e_grids

        if len(self) == 0:
            return np.zeros((self.mol.nao, self.mol.nao))
        return -to_host(int1e_grids(self.mol, self._grids, charge_exponents=self._zetas, charges=to_device(charges)))

    def potential(self, dm: np.ndarray) -> np.ndarray:
        from gpu4pyscf.gto.int3c1e import int1e_grids

        if len(self) == 0:
            return np.zeros(0)
        return -to_host(int1e_grids(self.mol, self._grids, charge_exponents=self._zetas, dm=to_device(dm)))

    def response(self, dm: np.ndarray, charges: np.ndarray, deriv: bool = True):
        from gpu4pyscf.gto.int3c1e_ip import int1e_grids_ip1, int1e_grids_ip2

        phi = self.potential(dm)
        if not deriv:
            return None, None, phi
        if len(self) == 0:
            return np.zeros((self.mol.natm, 3)), np.zeros((0, 3)), phi
        dm_d, q_d = to_device(dm), to_device(charges)
        # sum_nu D_mu,nu sum_g q_g <d mu|v_g|nu> (3, nao), and dE/dR_g (3, n_sites): gpu4pyscf's ip2 contraction
        # already carries the sign of the electrons (checked against the CPU path on an H100)
        ao = to_host(int1e_grids_ip1(self.mol, self._grids, charge_exponents=self._zetas, dm=dm_d, charges=q_d))
        sites = to_host(int1e_grids_ip2(self.mol, self._grids, charge_exponents=self._zetas, dm=dm_d, charges=q_d))
        return ao_to_atoms(self.mol, 2.0 * ao), sites.T.copy(), phi
