"""Electrostatic embedding integrals: QM electrons and nuclei in the field of environment charges.

Pure functions in atomic units (Bohr, Hartree, e): the only place besides `qmml.qm.engine` that
sees them.  A site j carries charge q_j, either a point or a normalized Gaussian
rho_j(r) = q_j (zeta_j / pi)^(3/2) exp(-zeta_j |r - R_j|^2) with zeta_j = 1 / radius_j^2, whose
potential is q_j erf(sqrt(zeta_j) r) / r (the convention of pyscf.qmmm).

Sign conventions: v_j(r) is the potential of a unit charge at site j; the electrons (charge -1)
feel the one-electron operator h_ext = -sum_j q_j v_j.  PySCF's "ip" integrals differentiate the
bra with respect to the electron coordinate, <grad mu| v |nu> = -d mu/dR_A.
"""

from __future__ import annotations

import numpy as np
from pyscf import df, gto
from scipy.special import erf

#: Memory for one block of three-index integrals, in bytes.
BLOCK_BYTES = 256 * 1024**2


def _blocks(n_sites: int, nao: int, ncomp: int):
    step = max(1, int(BLOCK_BYTES // (8 * ncomp * nao * nao)))
    for i0 in range(0, n_sites, step):
        yield i0, min(n_sites, i0 + step)


def _site_potential_integrals(mol: gto.Mole, coords: np.ndarray, zetas: np.ndarray | None, deriv: bool):
    """<mu|v_g|nu> with layout (g, mu, nu); with ``deriv`` also <grad mu|v_g|nu> as (3, g, mu, nu)."""
    if zetas is None:
        v = mol.intor("int1e_grids", grids=coords)
        ip = mol.intor("int1e_grids_ip", grids=coords) if deriv else None
        return v, ip
    fakemol = gto.fakemol_for_charges(coords, zetas)
    v = df.incore.aux_e2(mol, fakemol, intor="int3c2e", aosym="s1").transpose(2, 0, 1)
    ip = None
    if deriv:
        ip = df.incore.aux_e2(mol, fakemol, intor="int3c2e_ip1", aosym="s1", comp=3).transpose(0, 3, 1, 2)
    return v, ip


def embedding_operator(mol: gto.Mole, coords: np.ndarray, charges: np.ndarray,
                       zetas: np.ndarray | None = None) -> np.ndarray:
    """One-electron operator h_ext (nao, nao) of the site charges, in Hartree."""
    nao = mol.nao
    h = np.zeros((nao, nao))
    for i0, i1 in _blocks(len(charges), nao, 1):
        v, _ = _site_potential_integrals(mol, coords[i0:i1], None if zetas is None else zetas[i0:i1], False)
        h -= np.einsum("gij,g->ij", v, charges[i0:i1])
    return h


def _kernel(r: np.ndarray, zetas: np.ndarray | None):
    """Coulomb kernel f(r) and f'(r)/r between a point and a site (point or Gaussian)."""
    if zetas is None:
        f = 1.0 / r
        return f, -f / (r * r)
    a = np.sqrt(zetas)
    f = erf(a * r) / r
    dfdr = (2.0 / np.sqrt(np.pi)) * a * np.exp(-(a * r) ** 2) / r - f / r
    return f, dfdr / r


def nuclear_terms(nuc_coords: np.ndarray, nuc_charges: np.ndarray, coords: np.ndarray, charges: np.ndarray,
                  zetas: np.ndarray | None = None):
    """Nuclei-site electrostatics.

    Returns
    -------
    energy : float
        sum_A sum_j Z_A q_j f(r_Aj), Hartree.
    grad_nuclei : ndarray (n_nuc, 3)
        dE/dR_A, Hartree/Bohr.
    grad_sites : ndarray (n_sites, 3)
        dE/dR_j, Hartree/Bohr.
    phi : ndarray (n_sites,)
        Potential of the nuclei at each site (averaged over the site's Gaussian), Hartree/e.
    """
    d = coords[None, :, :] - nuc_coords[:, None, :]  # (A, j, 3): R_j - R_A
    r = np.linalg.norm(d, axis=2)
    f, dfdr_over_r = _kernel(r, None if zetas is None else zetas[None, :])
    phi = nuc_charges @ f
    pair = nuc_charges[:, None] * charges[None, :] * dfdr_over_r
    grad_sites = np.einsum("aj,ajx->jx", pair, d)
    grad_nuclei = -np.einsum("aj,ajx->ax", pair, d)
    return float(phi @ charges), grad_nuclei, grad_sites, phi


def electronic_terms(mol: gto.Mole, dm: np.ndarray, coords: np.ndarray, charges: np.ndarray,
                     zetas: np.ndarray | None = None, deriv: bool = True):
    """Response of the electronic embedding energy E = tr(D h_ext) at a fixed density.

    With ``deriv=False`` only ``phi`` is computed (the gradients are returned as None).

    Returns
    -------
    grad_qm : ndarray (natm, 3)
        Basis-function-centre derivative of E (the part a standard SCF gradient lacks), Hartree/Bohr.
    grad_sites : ndarray (n_sites, 3)
        dE/dR_j, Hartree/Bohr.
    phi : ndarray (n_sites,)
        Potential of the electrons at each site, Hartree/e.
    """
    nao = mol.nao
    n = len(charges)
    phi = np.empty(n)
    grad_sites = np.empty((n, 3))
    grad_ao = np.zeros((3, nao))
    for i0, i1 in _blocks(n, nao, 4 if deriv else 1):
        v, ip = _site_potential_integrals(mol, coords[i0:i1], None if zetas is None else zetas[i0:i1], deriv)
        phi[i0:i1] = -np.einsum("gij,ij->g", v, dm)
        if not deriv:
            continue
        t = np.einsum("xgij,ij->xgi", ip, dm)  # (3, g, mu): sum_nu D <grad mu|v_g|nu>
        q = charges[i0:i1]
        grad_ao += 2.0 * np.einsum("xgi,g->xi", t, q)
        grad_sites[i0:i1] = -2.0 * (t.sum(axis=2) * q[None, :]).T
    if not deriv:
        return None, None, phi
    grad_qm = np.zeros((mol.natm, 3))
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        grad_qm[atom] = grad_ao[:, p0:p1].sum(axis=1)
    return grad_qm, grad_sites, phi
