"""Rigorous remainder bounds of the Hermite-multipole series, and the orders they call for.

Atomic units.  A primitive product's density is, seen from outside its erfc radius, a set of point Hermite
multipoles c_t d^t/dP^t at its centre P (`qmml.qm.hermite`).  Its interaction with a point charge q at R is
q sum_t c_t d^t/dP^t 1/|R - P|, and both series of `qmml.qm.hermite` (the density's moments about a centre C, or
the Taylor series of the sites' potential about C) keep of each term the homogeneous parts of degree <= L - |t|
in y = P - C of u(y) = T_t(X - y), X = R - C, T_t = d^t (1/r).

The degree-l part of that series is (1/l!) (-y . nabla)^l T_t(X), a derivative of order l + |t| of 1/r taken
along fixed directions, and every k-th derivative of 1/r is at most k! / r^(k+1) in size (each directional one is
k! P_k(cos) / r^(k+1), and a symmetric k-linear form is no larger than on its diagonal).  So with q = |y| / |X|
the part of degree l is at most k! C(l + k, k) q^l / |X|^(k+1), k = |t|, and the rest above degree m is bounded
by a geometric series (`tail_bound`); for a point charge (k = 0) this is the classical q^(m+1) / (|X| - |y|).
Energies take k = |t| and m = L - |t|, site forces k = |t| + 1 at the response order, the QM forces the
products' derivative coefficients (`qmml.qm.hermite.hermite_weights`, ``motion``) with k = |t| and m = L - |t|.
Products are grouped by their distance from C and sites by theirs, each group taking its least favourable
member, so the bound stays rigorous while it costs a few thousand evaluations.  Measured on single terms it is
2-25 times what is actually left out (`tests/test_truncation.py`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gamma, gammaln

#: Distance groups of the products (per centre) and of the sites.
_PRODUCT_GROUPS = 40
_SITE_GROUPS = 48
#: Orders the bounds are evaluated for: the lowest that meets a tolerance is taken, `MAX_ORDER` if none does.
MAX_ORDER = 24
MIN_ORDER = 6
ORDERS = np.arange(MIN_ORDER, MAX_ORDER + 1)
#: What a site inside the products' reach gets instead of a bound (huge, but zero times it stays zero).
_NO_BOUND = 1e300


def tail_bound(k, rho, distance, orders: np.ndarray, tau=0) -> np.ndarray:
    """Upper bound of what the Taylor series in y (|y| = ``rho``) of a k-th derivative of 1/|X - y| at |X| =
    ``distance`` > ``rho`` (Bohr) leaves out above degree m = L - ``tau``, for every L of ``orders`` (last axis;
    nothing kept where L < tau): ``k``, ``rho``, ``distance`` and ``tau`` broadcast together; per unit multipole,
    Hartree/e/Bohr^k.  With q = rho / |X| the degree-l part is at most a_l = k! C(l + k, k) q^l / |X|^(k+1), and
    from l = m + 1 on a_(l+1) / a_l <= r = q (m + 2 + k) / (m + 2), so the rest is at most a_(m+1) / (1 - r);
    where r >= 1 the whole sum k! / (|X| (1 - q))^(k+1) bounds it."""
    # plain broadcasting, so the factors that depend on k, tau and the order only stay small
    k, tau = np.asarray(k)[..., None], np.asarray(tau)[..., None]
    distance = np.asarray(distance, float)[..., None]
    q = np.asarray(rho, float)[..., None] / distance
    m = np.maximum(np.asarray(orders) - tau, -1)
    with np.errstate(all="ignore"):
        scale = gamma(k + 1) / distance ** (k + 1)
        log_binomial = gammaln(m + k + 2) - gammaln(m + 2) - gammaln(k + 1)
        first = np.where(q > 0, scale * np.exp(log_binomial + (m + 1) * np.log(q)), np.where(m < 0, scale, 0.0))
        r = q * ((m + 2 + k) / (m + 2))
        value = np.where(r < 1, first / (1 - r), scale / (1 - q) ** (k + 1))
    return np.where(q < 1, value, _NO_BOUND)


def _product_groups(distance: np.ndarray):
    """The group of each product (up to `_PRODUCT_GROUPS` by rho, quantiles) and each group's largest rho."""
    edges = np.quantile(distance, np.linspace(0, 1, _PRODUCT_GROUPS + 1))
    group = np.clip(np.searchsorted(edges, distance, side="left") - 1, 0, _PRODUCT_GROUPS - 1)
    rho = np.zeros(_PRODUCT_GROUPS)
    np.maximum.at(rho, group, distance)
    return group, rho


def _summed(weights: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    summed = np.zeros((n_groups, weights.shape[1]))
    np.add.at(summed, group, weights)
    return summed


def _site_groups(distance: np.ndarray, charges: np.ndarray):
    """(inner edge, summed |q|, group of each site) of `_SITE_GROUPS` geometric shells of sites by distance."""
    lo, hi = float(distance.min()), float(distance.max())
    edges = np.geomspace(lo, hi * (1 + 1e-12), _SITE_GROUPS + 1)
    group = np.clip(np.searchsorted(edges, distance, side="right") - 1, 0, _SITE_GROUPS - 1)
    return edges[:-1], np.bincount(group, np.abs(charges), minlength=_SITE_GROUPS), group


class SeriesBound:
    """Remainder bounds of the series about ``centres`` for the given products and sites, for every order of
    `ORDERS` at once.

    Parameters
    ----------
    centres : ndarray (n_centres, 3)
        Expansion centres, Bohr.
    product_centres : ndarray (n_products, 3)
        The primitive products' centres P (`qmml.qm.hermite.hermite_weights`), Bohr; each goes to its nearest
        centre.  Their weights come with `weigh`.
    site_positions : ndarray (n_sites, 3), Bohr
    site_charges : ndarray (n_sites,), e
    """

    def __init__(self, centres, product_centres, site_positions, site_charges):
        centres = np.atleast_2d(centres)
        gaps = np.linalg.norm(product_centres[:, None, :] - centres[None], axis=2)
        nearest = np.argmin(gaps, axis=1)  # as `qmml.qm.hermite` assigns them
        product_distance = gaps[np.arange(len(gaps)), nearest]
        self.groups = []  # per centre: (products, their group, rho per group, inner edge, summed |q|, site group)
        self._tails = {}
        self.n_sites = len(site_charges)
        for c, centre in enumerate(centres):
            mine = np.flatnonzero(nearest == c)
            if not len(mine) or not self.n_sites:
                continue
            group, rho = _product_groups(product_distance[mine])
            r = np.linalg.norm(site_positions - centre, axis=1)
            self.groups.append((mine, group, rho) + _site_groups(r, site_charges))
        self._charges = np.abs(np.asarray(site_charges, dtype=float))
        self.largest_charge = float(self._charges.max()) if self.n_sites else 0.0
        self.weights = None

    def weigh(self, density: np.ndarray, motion: np.ndarray | None = None) -> "SeriesBound":
        """Take the products' ``density`` (and ``motion``) weights of `qmml.qm.hermite.hermite_weights`, in
        its product order; the geometric part (the tails) is kept.  Returns self."""
        self.weights = [tuple(None if w is None else _summed(w[mine], group, len(rho)) for w in (density, motion))
                        for mine, group, rho, *_ in self.groups]
        return self

    def _per_site_group(self, which: int, k_extra: int) -> list:
        """Per centre: (site groups, orders) bound per unit |q| of one site of each site group, for the density's
        (``which`` 0) or the motion's (1) weights and derivatives ``k_extra`` beyond the Hermite degree."""
        if k_extra not in self._tails:
            tau = np.arange(6)[:, None, None]
            self._tails[k_extra] = [tail_bound(tau + k_extra, rho[None, :, None], inner[None, None, :], ORDERS, tau)
                                    for _, _, rho, inner, *_ in self.groups]  # (tau, product groups, site groups, orders)
        return [np.einsum("pt,tpso->so", w[which], tails[:w[which].shape[1]])
                for w, tails in zip(self.weights, self._tails[k_extra])]

    def energy(self) -> np.ndarray:
        """Bound of the energy the operator's series leaves out, per order, Hartree."""
        return sum((v * g[4][:, None]).sum(0) for v, g in zip(self._per_site_group(0, 0), self.groups)) \
            if self.groups else np.zeros(len(ORDERS))

    def energy_orders(self, tolerance: float) -> np.ndarray:
        """Per site, the lowest order at which its energy bound (summed over the centres) is at most its share of
        ``tolerance`` (Hartree), shared by |q|."""
        per_charge = self._per_site(0)
        total = self.groups[0][4].sum() if self.groups else 0.0
        return self._lowest(per_charge * total, tolerance)

    def gradient_orders(self, tolerance: float, potential_tolerance: float) -> np.ndarray:
        """Per site, the lowest order at which the bounds of its gradient and of the potential there are at most
        ``tolerance`` (Hartree/Bohr) and ``potential_tolerance`` (Hartree/e)."""
        return np.maximum(self._lowest(self._per_site(1) * self._charges[:, None], tolerance),
                          self._lowest(self._per_site(0), potential_tolerance))

    def potential(self) -> np.ndarray:
        """Bound of the largest error of the density's potential at one site, per order, Hartree/e."""
        return sum(v.max(0) for v in self._per_site_group(0, 0)) if self.groups else np.zeros(len(ORDERS))

    def potential_at(self, orders: np.ndarray) -> float:
        """Bound of the largest potential error with each site at its own order, Hartree/e."""
        return float(self._at(self._per_site(0), orders).max()) if self.n_sites else 0.0

    def _per_site(self, k_extra: int) -> np.ndarray:
        if not self.groups:
            return np.zeros((self.n_sites, len(ORDERS)))
        return sum(v[g[5]] for v, g in zip(self._per_site_group(0, k_extra), self.groups))  # (sites, orders)

    def energy_at(self, orders: np.ndarray) -> float:
        """Bound of the energy with each site at its own order (`energy_orders`), Hartree."""
        return float((self._charges * self._at(self._per_site(0), orders)).sum()) if self.n_sites else 0.0

    def gradient_at(self, orders: np.ndarray) -> float:
        """Bound of the largest site gradient error with each site at its own order, Hartree/Bohr."""
        return float((self._charges * self._at(self._per_site(1), orders)).max()) if self.n_sites else 0.0

    def qm_gradient_at(self, orders: np.ndarray) -> float:
        """Bound of the summed QM gradient error with each site at its own order, Hartree/Bohr."""
        if not self.groups:
            return 0.0
        per_site = sum(v[g[5]] for v, g in zip(self._per_site_group(1, 0), self.groups))
        return float((self._charges * self._at(per_site, orders)).sum())

    @staticmethod
    def _at(table: np.ndarray, orders: np.ndarray) -> np.ndarray:
        return table[np.arange(len(table)), np.searchsorted(ORDERS, orders)]

    @staticmethod
    def _lowest(bound: np.ndarray, tolerance: float) -> np.ndarray:
        good = bound <= tolerance
        return np.where(good.any(1), ORDERS[np.argmax(good, axis=1)], MAX_ORDER)

    def site_gradient(self) -> np.ndarray:
        """Bound of the largest error of one site's gradient from the density's moments, per order, Hartree/Bohr
        (each centre's largest, summed: no smaller than any one site's sum over the centres)."""
        return self.largest_charge * sum(v.max(0) for v in self._per_site_group(0, 1)) \
            if self.groups else np.zeros(len(ORDERS))

    def qm_gradient(self) -> np.ndarray:
        """Bound of the summed error of the QM gradient from the operator's series, per order, Hartree/Bohr."""
        return sum((v * g[4][:, None]).sum(0) for v, g in zip(self._per_site_group(1, 0), self.groups)) \
            if self.groups else np.zeros(len(ORDERS))


def lowest_order(bound: np.ndarray, tolerance: float) -> int:
    """The lowest order of `ORDERS` whose ``bound`` (per order of `ORDERS`) is at most ``tolerance``
    (`MAX_ORDER` if none is)."""
    good = np.flatnonzero(bound <= tolerance)
    return int(ORDERS[good[0]]) if len(good) else MAX_ORDER
