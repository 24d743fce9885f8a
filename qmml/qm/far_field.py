"""Far-field embedding: distant sites act on the QM electrons through atom-centred multipole expansions.

Atomic units (Bohr, Hartree, e).  The electron density is split into atomic shares,

    rho_A(r) = sum_{mu on A} sum_nu D_mu,nu mu(r) nu(r),        sum_A rho_A = rho,

and the potential of a distant charge is expanded about each atom A to second order in s = r - R_A,

    1/|r - R_g| ~ f(x) + s . grad f(x) + 1/2 s s : grad grad f(x),    x = R_A - R_g,  f = 1/|x|.

Each share is compact about its atom (products with neighbours reach half a bond out), so the
truncation error is far smaller than that of one expansion about the molecule's centre.  The sites
enter the one-electron operator through overlap, dipole and quadrupole integrals about each atom,

    H_mu,nu = -sum_n (1/n!) T_A,n . <mu|s^n|nu>   (mu on A),    h_far = (H + H^T) / 2,
    T_A,n = sum_g q_g grad^n f(R_A - R_g),

and each site sees every share through its monopole, dipole and quadrupole M_A,n.  The cost is
O(n_atoms n_sites) array work plus one-electron integrals per atom, independent of the QM density's
size.  The QM nuclei are point charges and always interact exactly with every site
(`qmml.qm.embedding`).

Forces are the exact derivatives of this approximate energy: the sites through grad^3 f; each atom
through its T_A,n (the expansion point moves with it); and the basis functions through
<mu|s^n|grad nu> (int1e_ipovlp, int1e_irp, int1e_irrp: moving atom A carries mu and the origin,
which by translation invariance is minus the motion of nu's atom).

Error.  With Q_A = sum_{mu on A, nu} |D_mu,nu| >= integral |rho_A| and a_A the radius about R_A that
holds rho_A (taken as the distance to the farthest QM centre plus `DENSITY_MARGIN_BOHR`), the
remainder of each share's multipole series bounds the error,

    |E_far - E_exact| <= sum_g |q_g| sum_A Q_A a_A^3 / (R_gA^3 (R_gA - a_A))        (`error_bound`).

The bound ignores cancellation (between shares and between the charges of a neutral molecule) and is
therefore loose; the leading neglected term, the atomic octupoles (`octupole_estimate`), is the
realistic size of the error.
"""

from __future__ import annotations

import numpy as np
from pyscf import gto

#: Distance beyond the farthest QM centre inside which an atom's density share is taken to lie, Bohr.
DENSITY_MARGIN_BOHR = 4.0
#: A Gaussian site of exponent zeta acts as a point charge (to 1e-16) beyond this many 1/sqrt(zeta).
GAUSSIAN_POINT_RANGE = 6.0


def atom_integrals(mol: gto.Mole) -> list[dict]:
    """Per atom A, the rows mu on A of <mu|s^n|nu> for n = 0..2 (s = r - R_A): what the operator needs."""
    nao = mol.nao
    out = []
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        with mol.with_common_orig(mol.atom_coord(atom)):
            out.append({0: mol.intor("int1e_ovlp")[p0:p1], 1: mol.intor("int1e_r")[:, p0:p1],
                        2: mol.intor("int1e_rr").reshape(3, 3, nao, nao)[:, :, p0:p1], "rows": (p0, p1)})
    return out


def add_response_integrals(mol: gto.Mole, ints: list[dict], deriv: bool) -> list[dict]:
    """Add to `atom_integrals` what the response needs: <mu|s^3|nu> (the octupole estimate) and, with
    ``deriv``, <mu|s^n|grad nu> for n = 0..2 as arrays (..., 3, n_mu, nao)."""
    nao = mol.nao
    for atom, a in enumerate(ints):
        p0, p1 = a["rows"]
        with mol.with_common_orig(mol.atom_coord(atom)):
            a[3] = mol.intor("int1e_rrr").reshape(3, 3, 3, nao, nao)[:, :, :, p0:p1]
            if deriv:
                a["d0"] = -mol.intor("int1e_ipovlp")[:, p0:p1]  # <mu|d_x nu> = -<d_x mu|nu>
                a["d1"] = mol.intor("int1e_irp").reshape(3, 3, nao, nao)[:, :, p0:p1]
                a["d2"] = mol.intor("int1e_irrp").reshape(3, 3, 3, nao, nao)[:, :, :, p0:p1]
    return ints


def atom_moments(ints: list[dict], dm: np.ndarray) -> list[np.ndarray]:
    """Monopole, dipole, quadrupole and octupole of each atom's electron share (positive, e Bohr^n):
    arrays (natm,), (natm, 3), (natm, 3, 3), (natm, 3, 3, 3)."""
    moments = [[], [], [], []]
    for a in ints:
        d = dm[a["rows"][0]:a["rows"][1]]
        for n in range(4):
            moments[n].append(np.einsum("...ij,ij->...", a[n], d))
    return [np.array(m) for m in moments]


def _inverse_powers(x: np.ndarray):
    r2 = np.einsum("ni,ni->n", x, x)
    inv = 1.0 / np.sqrt(r2)
    inv3 = inv / r2
    inv5 = inv3 / r2
    return inv, inv3, inv5, inv5 / r2


def local_expansions(coords: np.ndarray, charges: np.ndarray, centres: np.ndarray) -> list[np.ndarray]:
    """T_A,n = sum_g q_g grad^n f(R_A - R_g) for n = 0..3, f = 1/|x|: arrays (natm,), (natm, 3), ...

    Uses grad f = -x/r^3, grad^2 f = 3 x x / r^5 - I / r^3 and
    grad^3 f = -15 x x x / r^7 + 3 (I x + x I + ...) / r^5, contracted over the sites with BLAS.
    """
    eye = np.eye(3)
    out = [[], [], [], []]
    for centre in centres:
        x = centre[None, :] - coords
        inv, inv3, inv5, inv7 = _inverse_powers(x)
        xx = (x[:, :, None] * x[:, None, :]).reshape(-1, 9)
        s3, s5 = charges @ inv3, (charges * inv5) @ x
        out[0].append(charges @ inv)
        out[1].append(-((charges * inv3) @ x))
        out[2].append(3.0 * ((charges * inv5) @ xx).reshape(3, 3) - s3 * eye)
        t3 = -15.0 * (((charges * inv7)[:, None] * x).T @ xx).reshape(3, 3, 3)
        t3 += 3.0 * (np.einsum("ab,c->abc", eye, s5) + np.einsum("ac,b->abc", eye, s5) + np.einsum("bc,a->abc", eye, s5))
        out[3].append(t3)
    return [np.array(t) for t in out]


def operator(ints: list[dict], expansion: list[np.ndarray], nao: int) -> np.ndarray:
    """h_far (nao, nao), Hartree."""
    h = np.zeros((nao, nao))
    for atom, a in enumerate(ints):
        t0, t1, t2 = expansion[0][atom], expansion[1][atom], expansion[2][atom]
        p0, p1 = a["rows"]
        h[p0:p1] -= t0 * a[0] + np.einsum("a,aij->ij", t1, a[1]) + 0.5 * np.einsum("ab,abij->ij", t2, a[2])
    return 0.5 * (h + h.T)


def electron_potential(coords: np.ndarray, centres: np.ndarray, moments: list[np.ndarray], deriv: bool = True):
    """Truncated potential of the electrons at each site and its gradient with respect to the site.

    Returns phi (n,), Hartree/e, and dphi/dR_g (n, 3), Hartree/(e Bohr) (None without ``deriv``).
    The moment contractions of grad^n f are written out, so no (n, 3, 3, 3) array is formed.
    """
    phi = np.zeros(len(coords))
    dphi = np.zeros((len(coords), 3)) if deriv else None
    for atom, centre in enumerate(centres):
        m0, m1, m2 = moments[0][atom], moments[1][atom], moments[2][atom]
        x = centre[None, :] - coords
        inv, inv3, inv5, inv7 = _inverse_powers(x)
        x_m1 = x @ m1
        m2_x = x @ m2
        x_m2_x = np.einsum("na,na->n", m2_x, x)
        trace = np.trace(m2)
        # M0 f + M1 . grad f + 1/2 M2 : grad^2 f
        phi -= m0 * inv - x_m1 * inv3 + 0.5 * (3.0 * x_m2_x * inv5 - trace * inv3)
        if deriv:
            # d f(R_A - R_g)/dR_g = -grad f: M0 grad f + grad^2 f . M1 + 1/2 grad^3 f : M2
            dphi += (-m0 * inv3)[:, None] * x
            dphi += 3.0 * (x_m1 * inv5)[:, None] * x - inv3[:, None] * m1
            dphi += 0.5 * ((-15.0 * x_m2_x * inv7 + 3.0 * trace * inv5)[:, None] * x + 6.0 * inv5[:, None] * m2_x)
    return phi, dphi


def atom_gradient(mol: gto.Mole, ints: list[dict], expansion: list[np.ndarray], moments: list[np.ndarray],
                  dm: np.ndarray) -> np.ndarray:
    """dE_far/dR of the QM atoms at fixed density and sites (natm, 3), Hartree/Bohr: each expansion point
    moving with its atom, and the basis functions moving with theirs."""
    grad = basis_gradient(mol, ints, expansion, dm)
    for atom in range(mol.natm):
        t = [expansion[n][atom] for n in range(4)]
        m0, m1, m2 = moments[0][atom], moments[1][atom], moments[2][atom]
        grad[atom] -= m0 * t[1] + t[2] @ m1 + 0.5 * np.einsum("xbc,bc->x", t[3], m2)
    return grad


def basis_gradient(mol: gto.Mole, ints: list[dict], expansion: list[np.ndarray], dm: np.ndarray) -> np.ndarray:
    """The part of the atoms' gradient (natm, 3), Hartree/Bohr, of E = -sum_A sum_n T_A,n . M_A,n / n! that
    comes from the moments M_A,n alone, the T_A,n held fixed: the basis functions moving with their atoms
    (needs ``add_response_integrals(..., deriv=True)``; ``expansion`` needs n = 0..2 only)."""
    grad = np.zeros((mol.natm, 3))
    ao_atom = np.repeat(np.arange(mol.natm), [p1 - p0 for _, _, p0, p1 in mol.aoslice_by_atom()])
    for atom, a in enumerate(ints):
        t = [expansion[n][atom] for n in range(3)]
        p0, p1 = a["rows"]
        # sum_n c_n . <mu|s^n|d_x nu> with c_n = -T_n / n!
        k = -(t[0] * a["d0"] + np.einsum("a,axij->xij", t[1], a["d1"]) + 0.5 * np.einsum("ab,abxij->xij", t[2], a["d2"]))
        weighted = k * dm[p0:p1][None]  # (3, n_mu, nao)
        grad[atom] += weighted.sum(axis=(1, 2))
        np.subtract.at(grad, ao_atom, weighted.sum(axis=1).T)
    return grad


def octupole_estimate(expansion: list[np.ndarray], moments: list[np.ndarray]) -> float:
    """The first neglected term, -(1/6) sum_A T_A,3 ... M_A,3, Hartree."""
    return float(-np.einsum("nabc,nabc->", expansion[3], moments[3]) / 6.0)


def share_radii(atom_coords: np.ndarray) -> np.ndarray:
    """Radius a_A about each atom taken to hold its share rho_A: the farthest QM centre + the margin, Bohr."""
    return np.linalg.norm(atom_coords[:, None] - atom_coords[None], axis=2).max(axis=1) + DENSITY_MARGIN_BOHR


def share_sizes(mol: gto.Mole, dm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q_A = sum_{mu on A, nu} |D_mu,nu| (e) and the radius a_A holding rho_A (Bohr) for each atom."""
    q = np.array([np.abs(dm[p0:p1]).sum() for _, _, p0, p1 in mol.aoslice_by_atom()])
    return q, share_radii(mol.atom_coords())


def expansion_start(atom_coords: np.ndarray, centre: np.ndarray) -> float:
    """Smallest distance from ``centre`` beyond which every site lies outside every atom's share radius, Bohr."""
    return float(np.max(np.linalg.norm(atom_coords - centre, axis=1) + share_radii(atom_coords)))


def error_bound(coords: np.ndarray, charges: np.ndarray, centres: np.ndarray, shares: np.ndarray,
                radii: np.ndarray) -> float:
    """Upper bound on |E_far - E_exact| (Hartree); inf if a site lies inside an atom's share radius."""
    total = 0.0
    for centre, share, radius in zip(centres, shares, radii):
        r = np.linalg.norm(coords - centre, axis=1)
        if np.any(r <= radius):
            return float("inf")
        total += float(np.sum(np.abs(charges) * share * radius**3 / (r**3 * (r - radius))))
    return total
