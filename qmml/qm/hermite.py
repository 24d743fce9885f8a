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
converges like (|P - C| / |R - C|)^(order + 1).  Every piece works product by product on its Hermite sums,
never on the products' Cartesian moment tensors: `density_moments` (the moments of point Hermite multipoles
at every P, translated to the centres), `local_operator` and `local_operator_gradient` (sum_t E_t d^t Phi(P),
with d^t Phi(P) from the Taylor series about C).  `potential_of_moments` gives phi and its gradient at many
points, `field_derivatives` d^n Phi at the centres of the potential Phi of many point charges,
`translate_derivatives` and `translate_moments` move both series to another centre.  T_n comes from Hobson's
theorem (`harmonic_map`): every T_n is a fixed combination of the monomials X^m / r^(2|m| + 2k + 1), so
n_points x n_monomials products and one matrix product per centre replace a recursion per point.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def cartesian_powers(l: int) -> np.ndarray:
    """(i, j, k) of the Cartesian components of a shell of angular momentum ``l``, in PySCF's order."""
    return np.array([(l - a, a - c, c) for a in range(l + 1) for c in range(a + 1)], dtype=int)


def hermite_coefficients(la: int, lb: int, a, b, xa, xb) -> np.ndarray:
    """E^ij_t for i <= la, j <= lb, t <= i + j, per axis, of N primitive pairs at once:
    array (N, 3, la+1, lb+1, la+lb+1).

    ``a``, ``b`` exponents (N,), Bohr^-2; ``xa``, ``xb`` the two centres (N, 3), Bohr.
    """
    a, b = np.asarray(a, dtype=np.float64)[:, None], np.asarray(b, dtype=np.float64)[:, None]
    p = a + b
    centre = (a * xa + b * xb) / p
    pa, pb, ab = centre - xa, centre - xb, xa - xb
    e = np.zeros((len(a), 3, la + 1, lb + 1, la + lb + 2))  # one spare t for the recursion's t + 1
    e[:, :, 0, 0, 0] = np.exp(-a * b / p * ab * ab)
    half = 0.5 / p
    for i in range(la + 1):
        for j in range(lb + 1):
            if i == 0 and j == 0:
                continue
            prev, shift = (e[:, :, i - 1, j], pa) if i > 0 else (e[:, :, i, j - 1], pb)
            for t in range(i + j + 1):
                value = shift * prev[:, :, t] + (t + 1) * prev[:, :, t + 1]
                if t > 0:
                    value = value + half * prev[:, :, t - 1]
                e[:, :, i, j, t] = value
    return e[..., :la + lb + 1]


#: libcint's common factors of Cartesian s and p functions (the spherical-harmonic normalisation it folds in)
_LIBCINT_FACTOR = {0: 1.0 / math.sqrt(4.0 * math.pi), 1: math.sqrt(3.0 / (4.0 * math.pi))}


def cartesian_density(mol, dm: np.ndarray) -> np.ndarray:
    """The density matrix of ``mol``'s AOs (spherical unless mol.cart) over its Cartesian AOs."""
    if mol.cart:
        return np.asarray(dm)
    c = mol.cart2sph_coeff()
    return c @ dm @ c.T


#: Primitive products evaluated together (memory: batch x (la + lb + 3)^6 x 8 bytes at most, 8 MB for d-d).
BATCH = 512


def _product_batches(mol, centres: np.ndarray, threshold: float, extra: int = 0):
    """The primitive products of ``mol``'s shells, each with the centre nearest to its product centre P.

    Yields batches of products of one pair of angular momenta (la, lb), as dicts over the batch: ``la``, ``lb``,
    ``ao_a`` (N, n_a) and ``ao_b`` (N, n_b) the Cartesian AOs (a general contraction counts as one shell per
    contraction), ``weight`` (N,) the two normalised contraction coefficients times (pi/p)^(3/2), doubled for a
    pair of different shells (whose transpose block is the same density), ``a``, ``b`` (N,) the exponents,
    ``atom_a``/``atom_b`` (N,), ``centre`` (N,) the nearest centre's index, ``offset`` (N, 3) P - C (Bohr),
    ``distance`` (N,) |P - C|, and ``e`` (N, 3, la+1+extra, lb+1+extra, la+lb+1+2 extra) the Hermite
    coefficients E^ij_t per axis.  Products whose overlap prefactor exp(-ab/p |A-B|^2) is below ``threshold``
    are left out.
    """
    centres = np.asarray(centres, dtype=np.float64)
    shells, table = _shells_and_pairs(mol, threshold)
    for (la, lb), picked in table.items():
        n_a, n_b = (la + 1) * (la + 2) // 2, (lb + 1) * (lb + 2) // 2
        for lo in range(0, len(picked["a"]), BATCH):
            a, b = picked["a"][lo:lo + BATCH], picked["b"][lo:lo + BATCH]
            sa, sb = picked["shell_a"][lo:lo + BATCH], picked["shell_b"][lo:lo + BATCH]
            xa = np.array([shells[i][3] for i in sa])
            xb = np.array([shells[i][3] for i in sb])
            p = a + b
            centre_xyz = (a[:, None] * xa + b[:, None] * xb) / p[:, None]
            gaps = np.linalg.norm(centre_xyz[:, None, :] - centres[None], axis=2)
            nearest = np.argmin(gaps, axis=1)
            yield {"la": la, "lb": lb, "a": a, "b": b,
                   "ao_a": np.array([shells[i][4] for i in sa])[:, None] + np.arange(n_a),
                   "ao_b": np.array([shells[i][4] for i in sb])[:, None] + np.arange(n_b),
                   "weight": picked["weight"][lo:lo + BATCH] * (math.pi / p) ** 1.5,
                   "atom_a": np.array([shells[i][5] for i in sa]), "atom_b": np.array([shells[i][5] for i in sb]),
                   "centre": nearest, "offset": centre_xyz - centres[nearest],
                   "distance": gaps[np.arange(len(a)), nearest],
                   "e": hermite_coefficients(la + extra, lb + extra, a, b, xa, xb)}


#: The last few molecules' shells and primitive pairs: one embedded step walks the same products four or five times.
_PAIR_CACHE: dict = {}
_PAIR_CACHE_SIZE = 4


def _shells_and_pairs(mol, threshold: float):
    """`_primitive_shells` and `_primitive_pairs` of ``mol``, remembered for the same basis at the same geometry."""
    key = (mol._atm.tobytes(), mol._bas.tobytes(), mol._env.tobytes(), bool(mol.cart), float(threshold))
    if key not in _PAIR_CACHE:
        if len(_PAIR_CACHE) >= _PAIR_CACHE_SIZE:
            _PAIR_CACHE.pop(next(iter(_PAIR_CACHE)))
        shells = _primitive_shells(mol)
        _PAIR_CACHE[key] = (shells, _primitive_pairs(shells, threshold))
    return _PAIR_CACHE[key]


def _primitive_pairs(shells, threshold: float) -> dict:
    """The primitive products kept, grouped by (la, lb): arrays of both exponents, both shells and the weight
    (the two coefficients, doubled for a pair of different shells)."""
    groups: dict = {}
    for sa, (la, ea, ca, xa, _, _) in enumerate(shells):
        for sb in range(sa + 1):
            lb, eb, cb, xb = shells[sb][:4]
            a, b = np.meshgrid(ea, eb, indexing="ij")
            w = np.outer(ca, cb) * (1.0 if sa == sb else 2.0)
            keep = (w != 0) & (np.exp(-a * b / (a + b) * float(np.dot(xa - xb, xa - xb))) >= threshold)
            if keep.any():
                groups.setdefault((la, lb), []).append((a[keep], b[keep], w[keep], sa, sb))
    out = {}
    for key, parts in sorted(groups.items()):
        out[key] = {"a": np.concatenate([p[0] for p in parts]), "b": np.concatenate([p[1] for p in parts]),
                    "weight": np.concatenate([p[2] for p in parts]),
                    "shell_a": np.concatenate([np.full(len(p[0]), p[3]) for p in parts]),
                    "shell_b": np.concatenate([np.full(len(p[0]), p[4]) for p in parts])}
    return out


def _primitive_shells(mol):
    """Per shell and contraction: angular momentum, exponents (nprim,), normalised coefficients (nprim,),
    centre (3,) Bohr, first Cartesian AO and atom."""
    loc = mol.ao_loc_nr(cart=True)
    out = []
    for b in range(mol.nbas):
        l = mol.bas_angular(b)
        n_comp = (l + 1) * (l + 2) // 2
        coefficients = mol._libcint_ctr_coeff(b) * _LIBCINT_FACTOR.get(l, 1.0)
        for r in range(coefficients.shape[1]):
            out.append((l, mol.bas_exp(b), coefficients[:, r], mol.bas_coord(b), loc[b] + r * n_comp,
                        mol.bas_atom(b)))
    return out


def _component_cells(la: int, lb: int):
    """For every pair of Cartesian components (a of la, b of lb): its cell (i_a, i_b, j_a, j_b, k_a, k_b) of the
    per-axis powers, as seven index arrays over (n_a, n_b) (the first, for the batch axis, left to the caller)."""
    pa, pb = cartesian_powers(la), cartesian_powers(lb)
    return tuple(np.broadcast_to(v, (len(pa), len(pb))) for v in
                 (pa[:, None, 0], pb[None, :, 0], pa[:, None, 1], pb[None, :, 1], pa[:, None, 2], pb[None, :, 2]))


def _density_cube(d: np.ndarray, batch: dict) -> np.ndarray:
    """D over each product's component pairs, times its weight, on the cube of per-axis powers:
    (N, la+1, lb+1, la+1, lb+1, la+1, lb+1)."""
    la, lb = batch["la"], batch["lb"]
    n = len(batch["weight"])
    cube = np.zeros((n,) + (la + 1, lb + 1) * 3)
    values = d[batch["ao_a"][:, :, None], batch["ao_b"][:, None, :]] * batch["weight"][:, None, None]
    cube[(np.arange(n)[:, None, None],) + _component_cells(la, lb)] = values
    return cube


def _hermite_multipoles(cube, ex, ey, ez) -> np.ndarray:
    """sum over the component pairs of cube x E_x E_y E_z: each product's Hermite multipoles c[n, t, u, v]."""
    s = np.einsum("nabcdef,nefv->nabcdv", cube, ez)
    s = np.einsum("nabcdv,ncdu->nabuv", s, ey)
    return np.einsum("nabuv,nabt->ntuv", s, ex)


def _derivative_coefficients(e: np.ndarray, exponent: np.ndarray, on_b: bool) -> np.ndarray:
    """E coefficients of d/dA_x (or d/dB_x with ``on_b``) of x_A^i x_B^j exp(...) per axis:
    2a E^(i+1) j - i E^(i-1) j, from ``e`` computed one power higher on both sides: (N, 3, la+1, lb+1, t)."""
    e = np.moveaxis(e, 3, 2) if on_b else e  # the differentiated power first
    top, other = e.shape[2] - 1, e.shape[3] - 1
    out = 2 * exponent[:, None, None, None, None] * e[:, :, 1:, :other]
    out[:, :, 1:] -= np.arange(1, top)[None, None, :, None, None] * e[:, :, :top - 1, :other]
    return np.moveaxis(out, 2, 3) if on_b else out


def taylor_monomials(x: np.ndarray, order: int) -> np.ndarray:
    """x^m / m! for every monomial m of degree <= ``order`` (`monomials` order) at points ``x`` (n, 3): (n, n_monomials)."""
    x = np.asarray(x, dtype=np.float64)
    powers = monomials(order)
    y = np.empty((len(x), len(powers)))
    y[:, 0] = 1.0
    for i, (lower, axis) in enumerate(_lowering(order)[1:], start=1):
        np.multiply(y[:, lower], x[:, axis] / powers[i, axis], out=y[:, i])
    return y


@lru_cache(maxsize=None)
def _shift_table(order: int, top: int) -> np.ndarray:
    """S[m, t]: index of the monomial m + t among `monomials(order)`, for m of degree <= ``order`` and t of degree
    <= ``top``; -1 where m + t has degree above ``order``."""
    powers = monomials(order)
    lookup = np.full((order + 1,) * 3, -1, dtype=int)
    lookup[tuple(powers.T)] = np.arange(len(powers))
    total = powers[:, None, :] + monomials(top)[None, :, :]
    inside = total.sum(2) <= order
    table = np.full(inside.shape, -1, dtype=int)
    table[inside] = lookup[tuple(total[inside].T)]
    return table


def translate_derivatives(derivatives: np.ndarray, origin: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d^n Phi at ``targets`` (Bohr) from d^n Phi at ``origin`` (`field_derivatives` layout, one centre), through
    the Taylor series about the origin: d^n Phi(X) = sum_m d^(n+m) Phi(origin) (X - origin)^m / m!, truncated at
    the same order.  (n_targets, n_monomials)."""
    order = monomials_order(len(derivatives))
    shift = _shift_table(order, order)
    y = taylor_monomials(np.asarray(targets) - origin, order)
    return y @ np.where(shift >= 0, derivatives[shift], 0.0)


def translate_moments(moments: np.ndarray, centres: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Moments about ``origin`` (Bohr) of the charges whose moments about ``centres`` are ``moments``
    (`density_moments` layout): M_n(origin) / n! = sum_c sum_m M_m(c) / m! (c - origin)^(n-m) / (n-m)!, exact
    to the same order.  (n_monomials,)."""
    order = monomials_order(moments.shape[1])
    powers = monomials(order)
    factorials = np.prod([[math.factorial(v) for v in p] for p in powers], axis=1)
    shift = _shift_table(order, order)
    valid = shift >= 0
    y = taylor_monomials(np.asarray(centres) - origin, order)
    out = np.zeros(len(powers))
    np.add.at(out, shift[valid], ((moments / factorials).T @ y)[valid])
    return out * factorials


@lru_cache(maxsize=None)
def _cube_cells(top: int):
    """(t, u, v) index arrays of `monomials(top)` on a (top+1)^3 cube."""
    return tuple(monomials(top).T)


def _derivatives_at_products(derivatives: np.ndarray, batch: dict, top: int) -> np.ndarray:
    """d^t Phi at every product centre P for t of degree <= ``top``, from the Taylor series of Phi about each
    product's centre C (``derivatives`` d^n Phi(C), `field_derivatives` layout): (N, top+1, top+1, top+1),
    zero above degree ``top``.  d^t Phi(P) = sum_m d^(m+t) Phi(C) (P - C)^m / m!."""
    order = monomials_order(derivatives.shape[1])
    shift = _shift_table(order, top)
    y = taylor_monomials(batch["offset"], order)
    flat = np.empty((len(y), shift.shape[1]))
    for c in np.unique(batch["centre"]):
        rows = batch["centre"] == c
        flat[rows] = y[rows] @ np.where(shift >= 0, derivatives[c][shift], 0.0)
    cube = np.zeros((len(y),) + (top + 1,) * 3)
    cube[(slice(None),) + _cube_cells(top)] = flat
    return cube


def density_moments(mol, dm: np.ndarray, centres: np.ndarray, order: int, threshold: float = 1e-16):
    """Multipole moments of the electron density sum D_mu,nu mu nu about ``centres``, as its potential outside
    the density sees them.

    Each primitive product, a finite sum of Hermite Gaussians at its centre P (E^ij_t), goes to the centre C
    nearest to P.  A Hermite Gaussian d^t/dP^t exp(-p |r - P|^2) has outside its erfc radius the potential of the
    point multipole (pi/p)^(3/2) d^t/dP^t delta(r - P), whose moments about C are
    (pi/p)^(3/2) d^t/dP^t (P - C)^n.  These differ from the Gaussian's Cartesian moments only by trace terms
    (|r - C|^2 times lower moments), which no potential outside the density sees (every T_n is traceless), so
    `potential_of_moments` gives the same series; the charge, the dipole and the traceless parts of every higher
    moment are the Cartesian ones.

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
        Products whose overlap prefactor exp(-ab/p |A-B|^2) is below it are left out.

    Returns
    -------
    moments : ndarray (n_centres, n_monomials)
        M[c, n] for n = (k, l, m) = ``monomials(order)[n]``, e Bohr^|n| (positive: electrons).
    reach : ndarray (n_centres,)
        The largest |P - C| of the products assigned to each centre, Bohr (the series converges beyond it).
    """
    d = cartesian_density(mol, dm)
    powers = monomials(order)
    scaled = np.zeros((len(centres), len(powers)))  # M_n / n!
    reach = np.zeros(len(centres))
    for batch in _product_batches(mol, centres, threshold):
        top = batch["la"] + batch["lb"]
        e = batch["e"]
        c = _hermite_multipoles(_density_cube(d, batch), e[:, 0], e[:, 1], e[:, 2])[(slice(None),) + _cube_cells(top)]
        y = taylor_monomials(batch["offset"], order)
        shift = _shift_table(order, top)
        valid = shift >= 0
        for k in np.unique(batch["centre"]):
            rows = batch["centre"] == k
            # M_n / n! = sum_t c_t (P - C)^(n - t) / (n - t)!
            np.add.at(scaled[k], shift[valid], (y[rows].T @ c[rows])[valid])
        used = np.abs(c).max(axis=1) > 0
        np.maximum.at(reach, batch["centre"][used], batch["distance"][used])
    factorials = np.prod([[math.factorial(v) for v in p] for p in powers], axis=1)
    return scaled * factorials[None, :], reach


def hermite_weights(mol, dm: np.ndarray, motion: bool = True, threshold: float = 1e-16):
    """How much of the density each primitive product holds at each Hermite degree, for remainder bounds
    (`qmml.qm.truncation`).

    Returns ``centre`` (N, 3) each product's centre P (Bohr), ``density`` (N, 5) the sum over |t| = tau of |c_t|
    (c_t the product's point Hermite multipoles with D, as in `density_moments`) and, with ``motion`` (else
    None), (N, 6) an upper bound of the same sums for the derivative coefficients of `local_operator_gradient`
    (both atoms, all three axes: the operator's nuclear gradient), e Bohr^tau.
    """
    d = cartesian_density(mol, dm)
    centre, density, moving = [], [], []
    for batch in _product_batches(mol, mol.atom_coords(), threshold, extra=1 if motion else 0):
        la, lb = batch["la"], batch["lb"]
        top = la + lb + int(motion)
        e = batch["e"]
        plain = e[:, :, :la + 1, :lb + 1, :top + 1]
        cube = _density_cube(d, batch)
        degree = np.add.outer(np.add.outer(np.arange(top + 1), np.arange(top + 1)), np.arange(top + 1))
        c = np.abs(_hermite_multipoles(cube, plain[:, 0], plain[:, 1], plain[:, 2]))
        density.append(np.stack([c[:, degree == tau].sum(1) for tau in range(5)], axis=1))
        if motion:  # |sum| <= sum of |.|: both atoms' derivative coefficients in one array per axis
            size = np.abs(plain)
            both = np.abs(_derivative_coefficients(e, batch["a"], False)[..., :top + 1]) \
                + np.abs(_derivative_coefficients(e, batch["b"], True)[..., :top + 1])
            moved = sum(_hermite_multipoles(np.abs(cube), *[both[:, k] if k == axis else size[:, k] for k in range(3)])
                        for axis in range(3))
            moving.append(np.stack([moved[:, degree == tau].sum(1) for tau in range(6)], axis=1))
        centre.append(batch["offset"] + mol.atom_coords()[batch["centre"]])
    return np.concatenate(centre), np.concatenate(density), np.concatenate(moving) if motion else None


def local_operator(mol, derivatives: np.ndarray, centres: np.ndarray, threshold: float = 1e-16) -> np.ndarray:
    """Matrix of a potential Phi over ``mol``'s AOs from its derivatives at ``centres``.

    Phi is represented by its Taylor series about the centre C nearest each primitive product's centre P, a
    harmonic polynomial (every term of the Taylor series of a harmonic function is harmonic), which a Gaussian's
    smoothing leaves unchanged; so <mu|Phi|nu> = sum_t E_t (pi/p)^(3/2) d^t Phi(P) over the product's Hermite
    Gaussians, with d^t Phi(P) from the series.  Exact where the series converges over the product, that is
    where Phi has no source closer to C than the product reaches.

    Parameters
    ----------
    derivatives : ndarray (n_centres, n_monomials)
        d^n Phi at each centre (`field_derivatives`), Hartree/e/Bohr^|n|.
    centres : ndarray (n_centres, 3)
        Bohr.

    Returns
    -------
    ndarray (nao, nao)
        Hartree/e, over mol's AOs (spherical unless mol.cart).
    """
    nao_cart = int(mol.ao_loc_nr(cart=True)[-1])
    v = np.zeros((nao_cart, nao_cart))
    for batch in _product_batches(mol, centres, threshold):
        la, lb = batch["la"], batch["lb"]
        e = batch["e"]
        phi = _derivatives_at_products(derivatives, batch, la + lb)
        w = np.einsum("nabt,ntuv->nabuv", e[:, 0], phi)
        w = np.einsum("ncdu,nabuv->nabcdv", e[:, 1], w)
        w = np.einsum("nefv,nabcdv->nabcdef", e[:, 2], w)
        values = w[(np.arange(len(w))[:, None, None],) + _component_cells(la, lb)] * batch["weight"][:, None, None]
        np.add.at(v, (batch["ao_a"][:, :, None], batch["ao_b"][:, None, :]), 0.5 * values)
        np.add.at(v, (batch["ao_b"][:, None, :], batch["ao_a"][:, :, None]), 0.5 * values)
    if mol.cart:
        return v
    c = mol.cart2sph_coeff()
    return c.T @ v @ c


def monomials(order: int) -> np.ndarray:
    """Exponents (k, l, m) of every monomial x^k y^l z^m of degree <= ``order``, by degree: (n, 3)."""
    return np.array([(d - a, a - c, c) for d in range(order + 1) for a in range(d + 1) for c in range(a + 1)],
                    dtype=int)


@lru_cache(maxsize=None)
def harmonic_map(order: int) -> np.ndarray:
    """A[n, k, m] with T_n(X) = sum_k sum_m A[n, k, m] X^m / r^(2|m| + 2k + 1) for |n| <= ``order``.

    Hobson's theorem: a homogeneous polynomial p of degree l applied as p(d/dX) to 1/r gives
    (-1)^l (2l-1)!! sum_k (-1)^k r^(2k) (Laplacian^k p)(X) / (2^k k! (2l-1)(2l-3)...(2l-2k+1)) / r^(2l+1);
    for p = X^n the Laplacian powers are monomials of degree l - 2k with fixed coefficients.
    """
    powers = monomials(order)
    index = {tuple(p): i for i, p in enumerate(powers)}
    a = np.zeros((len(powers), order // 2 + 1, len(powers)))
    for n, p in enumerate(powers):
        l = int(p.sum())
        poly = {tuple(p): 1.0}
        scale = (-1.0) ** l * _double_factorial(2 * l - 1)
        for k in range(l // 2 + 1):
            if k > 0:
                scale *= -1.0 / (2.0 * k * (2 * l - 2 * k + 1))
                laplacian = {}
                for q, c in poly.items():
                    for axis in range(3):
                        if q[axis] >= 2:
                            r = list(q)
                            r[axis] -= 2
                            laplacian[tuple(r)] = laplacian.get(tuple(r), 0.0) + c * q[axis] * (q[axis] - 1)
                poly = laplacian
            for q, c in poly.items():
                a[n, k, index[q]] += scale * c
    return a


def _double_factorial(n: int) -> float:
    return float(math.prod(range(n, 0, -2))) if n > 0 else 1.0


def scaled_monomials(x: np.ndarray, order: int):
    """Y[m, :] = X^m / r^(2|m|) for the monomials of degree <= ``order`` at points ``x`` (n, 3), and 1/r^2 (n,)."""
    x = np.asarray(x, dtype=np.float64)
    inv_r2 = 1.0 / np.einsum("ij,ij->i", x, x)
    scaled = (x * inv_r2[:, None]).T.copy()
    table = _lowering(order)
    y = np.empty((len(table), len(x)))
    y[0] = 1.0
    for i, (lower, axis) in enumerate(table[1:], start=1):
        np.multiply(y[lower], scaled[axis], out=y[i])
    return y, inv_r2


@lru_cache(maxsize=None)
def _lowering(order: int) -> tuple:
    """Per monomial of degree <= ``order``: (index of the monomial with one power fewer, the axis of that power)."""
    powers = monomials(order)
    index = {tuple(p): i for i, p in enumerate(powers)}
    table = [(0, 0)]
    for p in powers[1:]:
        axis = int(np.nonzero(p)[0][0])
        lower = p.copy()
        lower[axis] -= 1
        table.append((index[tuple(lower)], axis))
    return tuple(table)


def _radial(inv_r2, n_k: int) -> np.ndarray:
    """1/r^(2k+1) for k < n_k: (n_k, n)."""
    return np.sqrt(inv_r2)[None, :] * inv_r2[None, :] ** np.arange(n_k)[:, None]


def derivatives_of_inverse_distance(x: np.ndarray, order: int) -> np.ndarray:
    """T_n(X) = d^n/dX^n (1/|X|) for every monomial n of degree <= ``order`` at points ``x`` (n, 3): (n, n_monomials)."""
    a = harmonic_map(order)
    y, inv_r2 = scaled_monomials(x, order)
    return np.einsum("mp,nkm,kp->pn", y, a, _radial(inv_r2, a.shape[1]))


def potential_of_moments(moments: np.ndarray, centres: np.ndarray, points: np.ndarray,
                         gradient: bool = False, chunk: int = 4096):
    """Potential (Hartree/e) at ``points`` (Bohr) of the charges whose Cartesian moments about ``centres`` are
    ``moments`` (`density_moments` layout): sum over centres of sum_n (-1)^|n| M_n / n! T_n(R - C); with
    ``gradient``, also its gradient with respect to the points (Hartree/e/Bohr), from the series one order up."""
    order = int(monomials_order(moments.shape[1]))
    powers = monomials(order)
    signs = (-1.0) ** powers.sum(1) / np.prod([[math.factorial(v) for v in p] for p in powers], axis=1)
    top = order + 1 if gradient else order
    a = harmonic_map(top)
    index = {tuple(p): i for i, p in enumerate(monomials(top))}
    shifted = np.zeros((4 if gradient else 1, len(centres), len(index)))
    for n, p in enumerate(powers):
        shifted[0, :, index[tuple(p)]] = signs[n] * moments[:, n]
        if gradient:
            for axis in range(3):
                q = p.copy()
                q[axis] += 1
                shifted[1 + axis, :, index[tuple(q)]] = signs[n] * moments[:, n]
    # per centre, one matrix (4 * k, monomials): each output's coefficients of X^m / r^(2|m| + 2k + 1)
    coefficients = np.einsum("icn,nkm->cikm", shifted, a).reshape(len(centres), -1, len(index))
    n_k = a.shape[1]
    out = np.zeros((len(shifted), len(points)))
    for lo in range(0, len(points), chunk):
        for c, centre in enumerate(centres):
            y, inv_r2 = scaled_monomials(points[lo:lo + chunk] - centre, top)
            z = (coefficients[c] @ y).reshape(len(shifted), n_k, -1)
            out[:, lo:lo + chunk] += np.einsum("ikp,kp->ip", z, _radial(inv_r2, n_k))
    return (out[0], out[1:].T) if gradient else out[0]


def monomials_order(n_monomials: int) -> int:
    """The order whose `monomials` number ``n_monomials``."""
    order = 0
    while (order + 1) * (order + 2) * (order + 3) // 6 < n_monomials:
        order += 1
    if (order + 1) * (order + 2) * (order + 3) // 6 != n_monomials:
        raise ValueError(f"{n_monomials} is not a number of monomials up to some order")
    return order


def field_derivatives(charges: np.ndarray, positions: np.ndarray, centres: np.ndarray, order: int,
                      chunk: int = 4096) -> np.ndarray:
    """d^n Phi(C) for every monomial n of degree <= ``order`` at each of ``centres`` (Bohr), with
    Phi(r) = sum_j q_j / |r - R_j| the potential of point ``charges`` (e) at ``positions`` (Bohr):
    (n_centres, n_monomials), Hartree/e/Bohr^|n|."""
    a = harmonic_map(order)
    g = np.zeros((len(centres), a.shape[2], a.shape[1]))  # sum over charges of q X^m / r^(2|m| + 2k + 1)
    for lo in range(0, len(positions), chunk):
        q = np.asarray(charges[lo:lo + chunk], dtype=np.float64)
        for c, centre in enumerate(centres):
            y, inv_r2 = scaled_monomials(centre - positions[lo:lo + chunk], order)
            g[c] += y @ (q[:, None] * _radial(inv_r2, a.shape[1]).T)
    return g.reshape(len(centres), -1) @ _harmonic_columns(order)


@lru_cache(maxsize=None)
def _harmonic_columns(order: int) -> np.ndarray:
    """`harmonic_map` as one (monomials x k, n) matrix, contiguous: what `field_derivatives` multiplies by."""
    a = harmonic_map(order)
    return np.ascontiguousarray(a.transpose(2, 1, 0).reshape(-1, a.shape[0]))


def local_operator_gradient(mol, dm: np.ndarray, derivatives: np.ndarray, centres: np.ndarray,
                            threshold: float = 1e-16) -> np.ndarray:
    """d/dR_atom of sum_mu,nu D_mu,nu <mu|Phi|nu> through the motion of the basis functions, Phi held fixed
    (given by its derivatives at ``centres`` as in `local_operator`): (natm, 3), Hartree/e/Bohr.

    d/dA_x of x_A^i exp(-a x_A^2) is 2a x_A^(i+1) exp(...) - i x_A^(i-1) exp(...): the same Hermite sums with
    the E coefficients one power up and down, against d^t Phi(P) one order higher."""
    d = cartesian_density(mol, dm)
    grad = np.zeros((mol.natm, 3))
    for batch in _product_batches(mol, centres, threshold, extra=1):
        la, lb = batch["la"], batch["lb"]
        top = la + lb + 1
        e = batch["e"]
        plain = e[:, :, :la + 1, :lb + 1, :top + 1]
        phi = _derivatives_at_products(derivatives, batch, top)
        cube = _density_cube(d, batch)
        for which, (exponent, on_b, atoms) in enumerate(((batch["a"], False, batch["atom_a"]),
                                                         (batch["b"], True, batch["atom_b"]))):
            moved = _derivative_coefficients(e, exponent, on_b)[..., :top + 1]
            for axis in range(3):
                per_axis = [moved[:, k] if k == axis else plain[:, k] for k in range(3)]
                c = _hermite_multipoles(cube, *per_axis)
                np.add.at(grad[:, axis], atoms, np.einsum("ntuv,ntuv->n", c, phi))
    return grad
