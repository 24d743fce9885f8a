"""Far-field embedding: distant sites act on the QM electrons through a multipole expansion.

Atomic units (Bohr, Hartree, e).  Around the expansion centre C (the mean of the QM centres) the
potential of a distant charge is expanded in s = r - C to second order,

    1/|r - R_g| ~ f(x_g) + s . grad f(x_g) + 1/2 s s : grad grad f(x_g),   x_g = C - R_g,  f = 1/|x|,

so the sites enter the one-electron operator through the overlap, dipole and quadrupole integrals,

    h_far = -(T0 S + T1_a <s_a> + 1/2 T2_ab <s_a s_b>),    T_n = sum_g q_g grad^n f(x_g),

and each site sees the electrons through their monopole, dipole and quadrupole about C.  The cost is
O(n_sites) array work plus three one-electron integrals, independent of the number of sites.  The
QM nuclei are point charges and always interact exactly with every site (`qmml.qm.embedding`).

Forces are the exact derivatives of this approximate energy: the sites through grad^3 f, the basis
function centres through <grad mu|s^n|nu> (int1e_ipovlp, int1e_irp, int1e_irrp) and the expansion
centre, which moves with the QM centres, through the C-dependence of T_n and of the moments.

Error.  For electrons inside a sphere of radius a about C, the electronic potential of the truncated
expansion differs from the exact one at distance R > a by at most N_e a^3 / (R^3 (R - a)) per unit
charge (the remainder of the multipole series of N_e electrons), so
|E_far - E_exact| <= sum_g |q_g| N_e a^3 / (R_g^3 (R_g - a))  (`error_bound`); qmml takes
a = max_A |R_A - C| + `DENSITY_MARGIN_BOHR`.  The leading neglected term, the electronic octupole,
is evaluated as well (`octupole_estimate`) and is the realistic size of the error: near-neutral
molecules cancel most of the bound.
"""

from __future__ import annotations

import numpy as np
from pyscf import gto

from .embedding import ao_to_atoms

#: Distance beyond the outermost QM centre inside which the electron density is taken to lie, Bohr.
DENSITY_MARGIN_BOHR = 4.0
#: A Gaussian site of exponent zeta acts as a point charge (to 1e-16) beyond this many 1/sqrt(zeta).
GAUSSIAN_POINT_RANGE = 6.0


def coulomb_tensors(x: np.ndarray, order: int) -> list[np.ndarray]:
    """Cartesian derivatives of f(x) = 1/|x| up to ``order`` (<= 3) for each row of x (n, 3).

    Returns [f (n,), grad f (n, 3), grad^2 f (n, 3, 3), grad^3 f (n, 3, 3, 3)][: order + 1].
    """
    r2 = np.einsum("ni,ni->n", x, x)
    inv = 1.0 / np.sqrt(r2)
    inv3 = inv / r2
    out = [inv, -x * inv3[:, None]]
    if order >= 2:
        inv5 = inv3 / r2
        eye = np.eye(3)
        out.append(3.0 * inv5[:, None, None] * x[:, :, None] * x[:, None, :] - inv3[:, None, None] * eye)
    if order >= 3:
        inv7 = inv5 / r2
        xxx = x[:, :, None, None] * x[:, None, :, None] * x[:, None, None, :]
        dx = (np.einsum("ab,nc->nabc", eye, x) + np.einsum("ac,nb->nabc", eye, x)
              + np.einsum("bc,na->nabc", eye, x))
        out.append(-15.0 * inv7[:, None, None, None] * xxx + 3.0 * inv5[:, None, None, None] * dx)
    return out[: order + 1]


def moment_integrals(mol: gto.Mole, centre: np.ndarray, deriv: bool = False) -> dict:
    """<mu|s^n|nu> (n = 0..3) about ``centre`` and, with ``deriv``, <grad mu|s^n|nu> (n = 0..2)."""
    nao = mol.nao
    with mol.with_common_orig(centre):
        ints = {0: mol.intor("int1e_ovlp"), 1: mol.intor("int1e_r"),
                2: mol.intor("int1e_rr").reshape(3, 3, nao, nao),
                3: mol.intor("int1e_rrr").reshape(3, 3, 3, nao, nao)}
        if deriv:
            # <mu| s_a d_x |nu> transposed is <d_x mu| s_a |nu>
            ints["ip0"] = mol.intor("int1e_ipovlp")
            ints["ip1"] = mol.intor("int1e_irp").reshape(3, 3, nao, nao).swapaxes(-1, -2)
            ints["ip2"] = mol.intor("int1e_irrp").reshape(3, 3, 3, nao, nao).swapaxes(-1, -2)
    return ints


def electron_moments(ints: dict, dm: np.ndarray) -> list[np.ndarray]:
    """Electron number, dipole, quadrupole and octupole moments about the centre (positive, in e Bohr^n)."""
    return [np.einsum("...ij,ij->...", ints[n], dm) for n in range(4)]


def density_radius(atom_coords: np.ndarray, centre: np.ndarray) -> float:
    """Radius a of the sphere about the centre taken to hold the QM electron density, Bohr."""
    return float(np.max(np.linalg.norm(atom_coords - centre, axis=1))) + DENSITY_MARGIN_BOHR


def local_expansion(coords: np.ndarray, charges: np.ndarray, centre: np.ndarray, order: int = 2) -> list[np.ndarray]:
    """T_n = sum_g q_g grad^n f(C - R_g) for n = 0..order."""
    tensors = coulomb_tensors(centre[None, :] - coords, order)
    return [np.tensordot(charges, t, axes=(0, 0)) for t in tensors]


def operator(ints: dict, expansion: list[np.ndarray]) -> np.ndarray:
    """h_far (nao, nao), Hartree."""
    t0, t1, t2 = expansion[:3]
    return -(t0 * ints[0] + np.einsum("a,aij->ij", t1, ints[1]) + 0.5 * np.einsum("ab,abij->ij", t2, ints[2]))


def electron_potential(coords: np.ndarray, centre: np.ndarray, moments: list[np.ndarray], deriv: bool = True):
    """Truncated potential of the electrons at each site and its gradient with respect to the site.

    Returns phi (n,), Hartree/e, and dphi/dR_g (n, 3), Hartree/(e Bohr) (None without ``deriv``).
    """
    m0, m1, m2 = moments[:3]
    tensors = coulomb_tensors(centre[None, :] - coords, 3 if deriv else 2)
    phi = -(m0 * tensors[0] + tensors[1] @ m1 + 0.5 * np.einsum("nab,ab->n", tensors[2], m2))
    if not deriv:
        return phi, None
    # d f(C - R_g)/dR_g = -grad f, so each order moves up by one with a sign change
    dphi = m0 * tensors[1] + np.einsum("nab,b->na", tensors[2], m1) + 0.5 * np.einsum("nabc,bc->na", tensors[3], m2)
    return phi, dphi


def centre_moment_gradient(expansion: list[np.ndarray], moments: list[np.ndarray]) -> np.ndarray:
    """dE/dC through the moments' dependence on the centre at fixed density (s = r - C), Hartree/Bohr."""
    t1, t2 = expansion[1], expansion[2]
    m0, m1 = moments[0], moments[1]
    return m0 * t1 + t2 @ m1


def basis_gradient(mol: gto.Mole, ints: dict, expansion: list[np.ndarray], dm: np.ndarray) -> np.ndarray:
    """tr(D dh_far/dR_A) from the moving basis functions (centre and expansion fixed), (natm, 3)."""
    t0, t1, t2 = expansion[:3]
    bra = -(t0 * ints["ip0"] + np.einsum("a,axij->xij", t1, ints["ip1"])
            + 0.5 * np.einsum("ab,abxij->xij", t2, ints["ip2"]))  # <d_x mu|h_far|nu>
    grad_ao = -2.0 * np.einsum("xij,ij->xi", bra, dm)
    return ao_to_atoms(mol, grad_ao)


def octupole_estimate(coords: np.ndarray, charges: np.ndarray, centre: np.ndarray, octupole: np.ndarray) -> float:
    """The first neglected term of the expansion, -sum_g q_g (1/6) M3 ... grad^3 f(x_g), Hartree."""
    t3 = np.tensordot(charges, coulomb_tensors(centre[None, :] - coords, 3)[3], axes=(0, 0))
    return float(-np.einsum("abc,abc->", t3, octupole) / 6.0)


def error_bound(coords: np.ndarray, charges: np.ndarray, centre: np.ndarray, radius: float, n_electrons: float) -> float:
    """Upper bound on |E_far - E_exact| for electrons inside ``radius`` of the centre, Hartree."""
    if len(charges) == 0:
        return 0.0
    r = np.linalg.norm(coords - centre, axis=1)
    return float(np.sum(np.abs(charges) * n_electrons * radius**3 / (r**3 * (r - radius))))
