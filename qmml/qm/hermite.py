"""Hermite (McMurchie-Davidson) expansions of basis-function products: exact multipoles of the QM density.

Atomic units (Bohr, Hartree, e).  The product of two Cartesian Gaussians is a finite sum of Hermite
Gaussians at the product centre P = (a A + b B) / p, p = a + b,

    x_A^i x_B^j exp(-a x_A^2 - b x_B^2) = sum_t E^ij_t d^t/dP_x^t exp(-p x_P^2)        (per axis),

and outside its erfc radius the potential of a Hermite Gaussian is, to 1e-13 relative and better, that of a
point multipole at P: (pi/p)^(3/2) d^t/dP^t (1/|R - P|).  So beyond that radius the potential of the whole
density is exactly the series of its Cartesian moments about any centre C closer to every P than the
point R is,

    phi(R) = sum_n (-1)^|n| M_n / n! T_n(R - C),     M_n = integral rho(r) (r - C)^n,
    T_n(X) = d^n/dX^n (1/|X|)        (n = (k, l, m), n! = k! l! m!),

truncated at |n| <= order; each product is assigned to the centre nearest to its P, so the series
converges like (|P - C| / |R - C|)^(order + 1).  This module gives the pieces: `hermite_coefficients`
(E^ij_t), `density_moments` (M_n of the density D about each centre, from the E coefficients) and
`derivative_tensors` (T_n, by the McMurchie-Davidson recursion in its point-charge limit).
"""

from __future__ import annotations

import math

import numpy as np


def cartesian_powers(l: int) -> np.ndarray:
    """(i, j, k) of the Cartesian components of a shell of angular momentum ``l``, in PySCF's order."""
    return np.array([(l - a, a - c, c) for a in range(l + 1) for c in range(a + 1)], dtype=int)


def hermite_coefficients(la: int, lb: int, a: float, b: float, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """E^ij_t for i <= la, j <= lb, t <= i + j, per axis: array (3, la+1, lb+1, la+lb+1).

    ``a``, ``b`` exponents (Bohr^-2); ``xa``, ``xb`` the two centres (3,), Bohr.
    """
    p = a + b
    centre = (a * xa + b * xb) / p
    pa, pb, ab = centre - xa, centre - xb, xa - xb
    e = np.zeros((3, la + 1, lb + 1, la + lb + 2))  # one spare t for the recursion's t + 1
    e[:, 0, 0, 0] = np.exp(-a * b / p * ab * ab)
    half = 0.5 / p
    for i in range(la + 1):
        for j in range(lb + 1):
            if i == 0 and j == 0:
                continue
            if i > 0:
                prev, shift = e[:, i - 1, j], pa
            else:
                prev, shift = e[:, i, j - 1], pb
            for t in range(i + j + 1):
                value = shift * prev[:, t] + (t + 1) * prev[:, t + 1]
                if t > 0:
                    value = value + half * prev[:, t - 1]
                e[:, i, j, t] = value
    return e[..., :la + lb + 1]


def hermite_moments(t_max: int, order: int, p: float, pc: np.ndarray) -> np.ndarray:
    """M^k_t = integral d^t/dP^t exp(-p (x - P)^2) (x - C)^k dx per axis: array (3, t_max+1, order+1).

    ``pc`` = P - C (3,), Bohr.  Recursion M^(k+1)_t = t M^k_(t-1) + X_PC M^k_t + M^k_(t+1) / (2p).
    """
    m = np.zeros((3, t_max + order + 2, order + 1))
    m[:, 0, 0] = math.sqrt(math.pi / p)
    half = 0.5 / p
    for k in range(order):
        for t in range(t_max + order - k):
            value = pc * m[:, t, k] + half * m[:, t + 1, k]
            if t > 0:
                value = value + t * m[:, t - 1, k]
            m[:, t, k + 1] = value
    return m[:, :t_max + 1]


def _shells(mol):
    """Per shell: angular momentum, exponents (nprim,), normalised contraction coefficients (nprim, nctr),
    centre (3,) Bohr and first Cartesian AO."""
    loc = mol.ao_loc_nr(cart=True)
    return [(mol.bas_angular(b), mol.bas_exp(b),
             mol._libcint_ctr_coeff(b) * _LIBCINT_FACTOR.get(mol.bas_angular(b), 1.0), mol.bas_coord(b), loc[b])
            for b in range(mol.nbas)]


#: libcint's common factors of Cartesian s and p functions (the spherical-harmonic normalisation it folds in)
_LIBCINT_FACTOR = {0: 1.0 / math.sqrt(4.0 * math.pi), 1: math.sqrt(3.0 / (4.0 * math.pi))}


def cartesian_density(mol, dm: np.ndarray) -> np.ndarray:
    """The density matrix of ``mol``'s AOs (spherical unless mol.cart) over its Cartesian AOs."""
    if mol.cart:
        return np.asarray(dm)
    c = mol.cart2sph_coeff()
    return c @ dm @ c.T


def density_moments(mol, dm: np.ndarray, centres: np.ndarray, order: int, threshold: float = 1e-16):
    """Cartesian moments of the electron density sum D_mu,nu mu nu about ``centres``.

    Each primitive product goes to the centre nearest to its product centre P.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    dm : ndarray (nao, nao)
        Density matrix of mol's AOs (atomic units).
    centres : ndarray (n_centres, 3)
        Bohr.
    order : int
        Highest total order |n| kept.
    threshold : float
        Primitive products whose overlap prefactor exp(-ab/p |A-B|^2) is below this are left out.

    Returns
    -------
    moments : ndarray (n_centres, order+1, order+1, order+1)
        M[c, k, l, m] = integral rho(r) (x-Cx)^k (y-Cy)^l (z-Cz)^m, e Bohr^|n| (positive: electrons); entries
        with k + l + m > order are zero.
    reach : ndarray (n_centres,)
        The largest |P - C| of the products assigned to each centre, Bohr (the series converges beyond it).
    """
    centres = np.asarray(centres, dtype=np.float64)
    d = cartesian_density(mol, dm)
    shells = _shells(mol)
    moments = np.zeros((len(centres), order + 1, order + 1, order + 1))
    reach = np.zeros(len(centres))
    total = np.add.outer(np.add.outer(np.arange(order + 1), np.arange(order + 1)), np.arange(order + 1))
    keep = total <= order
    for sa, (la, ea, ca, xa, oa) in enumerate(shells):
        pa = cartesian_powers(la)
        for sb, (lb, eb, cb, xb, ob) in enumerate(shells[:sa + 1]):
            pb = cartesian_powers(lb)
            na, nb = len(pa), len(pb)
            block = d[oa:oa + na * ca.shape[1], ob:ob + nb * cb.shape[1]]
            factor = 1.0 if sa == sb else 2.0  # the (b, a) block is the transpose: the same density
            for ia, a in enumerate(ea):
                for ib, b in enumerate(eb):
                    p = a + b
                    if math.exp(-a * b / p * float(np.dot(xa - xb, xa - xb))) < threshold:
                        continue
                    # D over the Cartesian components, summed over contractions, with both coefficients
                    w = np.einsum("r,s,rasb->ab", ca[ia], cb[ib],
                                  block.reshape(ca.shape[1], na, cb.shape[1], nb)) * factor
                    if not np.any(w):
                        continue
                    centre = (a * xa + b * xb) / p
                    c = int(np.argmin(np.linalg.norm(centres - centre, axis=1)))
                    reach[c] = max(reach[c], float(np.linalg.norm(centre - centres[c])))
                    e = hermite_coefficients(la, lb, a, b, xa, xb)
                    m = hermite_moments(la + lb, order, p, centre - centres[c])
                    f = np.einsum("xijt,xtk->xijk", e, m)  # per axis: integral x_A^i x_B^j (x - C)^k
                    fx = f[0][pa[:, 0]][:, pb[:, 0]]  # (na, nb, order+1)
                    fy = f[1][pa[:, 1]][:, pb[:, 1]]
                    fz = f[2][pa[:, 2]][:, pb[:, 2]]
                    moments[c] += np.einsum("ab,abk,abl,abm->klm", w, fx, fy, fz) * keep
    return moments, reach


def derivative_tensors(x: np.ndarray, order: int) -> np.ndarray:
    """T_n(X) = d^k/dX^k d^l/dY^l d^m/dZ^m (1/|X|) for k + l + m <= order at points ``x`` (n, 3), Bohr.

    Returns an array (n, order+1, order+1, order+1), zero above ``order``.  McMurchie-Davidson recursion in
    the point limit: R^(j)_000 = (-1)^j (2j-1)!! / r^(2j+1), R^(j)_(t+1)uv = t R^(j+1)_(t-1)uv + X R^(j+1)_tuv.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    r2 = np.einsum("ij,ij->i", x, x)
    inv_r = 1.0 / np.sqrt(r2)
    # R[j][t, u, v] for t + u + v <= order - j, built from the highest j down
    base = np.empty((order + 1, n))
    base[0] = inv_r
    for j in range(1, order + 1):
        base[j] = -(2 * j - 1) * base[j - 1] * inv_r * inv_r
    out = None
    higher = None  # R^(j+1)
    for j in range(order, -1, -1):
        size = order - j
        cur = np.zeros((n, size + 1, size + 1, size + 1))
        cur[:, 0, 0, 0] = base[j]
        if higher is not None:
            for total in range(1, size + 1):
                for t in range(total + 1):
                    for u in range(total - t + 1):
                        v = total - t - u
                        if t > 0:
                            value = x[:, 0] * higher[:, t - 1, u, v]
                            if t > 1:
                                value = value + (t - 1) * higher[:, t - 2, u, v]
                        elif u > 0:
                            value = x[:, 1] * higher[:, t, u - 1, v]
                            if u > 1:
                                value = value + (u - 1) * higher[:, t, u - 2, v]
                        else:
                            value = x[:, 2] * higher[:, t, u, v - 1]
                            if v > 1:
                                value = value + (v - 1) * higher[:, t, u, v - 2]
                        cur[:, t, u, v] = value
        higher = cur
        out = cur
    return out


def multipole_potential(moments: np.ndarray, centres: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Potential (Hartree/e) of the charge distributions with ``moments`` about ``centres`` at ``points``
    (Bohr): sum over centres of sum_n (-1)^|n| M_n / n! T_n(R - C)."""
    order = moments.shape[1] - 1
    idx = np.arange(order + 1)
    fact = np.array([math.factorial(k) for k in idx], dtype=float)
    total = idx[:, None, None] + idx[None, :, None] + idx[None, None, :]
    scale = (-1.0) ** total / (fact[:, None, None] * fact[None, :, None] * fact[None, None, :])
    scale = np.where(total <= order, scale, 0.0)
    phi = np.zeros(len(points))
    for c, centre in enumerate(centres):
        t = derivative_tensors(points - centre, order)
        phi += np.einsum("nklm,klm->n", t, moments[c] * scale)
    return phi
