"""`ExternalField`: the embedding sites as one QM calculation sees them.

Atomic units.  Every site interacts exactly with the QM nuclei.  With the electrons, a site interacts
through one of three treatments:

* exact integrals (`qmml.qm.embedding`): every site within ``series_beyond`` of a QM atom, or every site;
* the exact series (`qmml.qm.hermite`, with ``series_beyond``): beyond that distance from every QM atom the
  density's Hermite multipoles about the atoms give the sites' potential, and the Taylor series of the sites'
  potential about the atoms gives their operator, both converged to ~1e-13 (order `SERIES_ORDER`), so the two
  sets meet without a switch and distant sites cost no integrals;
* the approximate far field (`qmml.qm.far_field`, with ``far_field``): atom-centred expansions to the
  quadrupole beyond a cutoff from the expansion centre C (the mean of the QM centres).  Over ``width`` Bohr
  inside it a quintic switch w(|R_g - C|) blends the exact and expanded treatments so the energy stays
  smooth when a site crosses the cutoff:

    E_el = sum_g q_g [w_g phi_exact(R_g) + (1 - w_g) phi_far(R_g)],

i.e. the exact integrals see the charges w_g q_g and the expansion the charges (1 - w_g) q_g; the
switch adds q_g (phi_exact - phi_far) dw_g/dR to the site and the opposite to the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..units import BOHR_A as _BOHR_A
from ..coupling.switching import switch
from . import far_field, hermite
from .embedding import SiteIntegrals, nuclear_terms

#: Order of the operator's Taylor series, which sets the energy: 3e-14 Hartree in the operator of sites 6.4 Å
#: from the nearest QM atom of a water dimer (6-31G*; tests/test_hermite.py).
SERIES_ORDER = 16
#: Order of what only the forces and the site potential need (the density's multipoles at the sites, the operator's
#: nuclear gradient): 5e-13 Hartree/e in the potential 6 Å out, 2e-11 Hartree in the operator at 6.4 Å, far
#: below the 1e-7 Hartree/Bohr the forces are held to; half the monomials of order 16.
RESPONSE_ORDER = 12
#: The series start no nearer than this to every QM atom, Bohr (8 Å), or farther for diffuse basis functions.
SERIES_MIN_BOHR = 8.0 / _BOHR_A
#: How far the product densities assigned to an atom reach from it, Bohr (1.5 Å; 1.48 Å measured for a water
#: dimer in 6-31G*): what sets how far out one expansion centre for the whole QM region is as good as one per atom.
PRODUCT_SPREAD_BOHR = 1.5 / _BOHR_A


def distant_sites(mol, coords: np.ndarray, zetas: np.ndarray | None, beyond: float) -> np.ndarray:
    """Indices of the sites farther than ``beyond`` (Bohr) from every QM atom of ``mol`` and, if Gaussian, narrow
    enough there to act as points."""
    nearest = np.full(len(coords), np.inf)
    for atom in mol.atom_coords():
        nearest = np.minimum(nearest, np.linalg.norm(coords - atom, axis=1))
    distant = nearest > beyond
    if zetas is not None:  # the Gaussian's own reach must end well before the density's
        distant &= nearest - beyond / 2 > far_field.GAUSSIAN_POINT_RANGE / np.sqrt(zetas)
    return np.flatnonzero(distant)


def single_centre_radius(mol, beyond: float) -> float:
    """Distance from the QM centre C0 (the mean of the atoms) beyond which one series about C0 converges as fast as
    the per-atom series do at ``beyond`` (Bohr) from every atom: the products reach rho0 + s from C0 (rho0 the
    farthest atom, s = `PRODUCT_SPREAD_BOHR`) where they reach s from their atom, so the same ratio needs
    beyond * (rho0 + s) / s.  Bohr."""
    atoms = mol.atom_coords()
    rho0 = float(np.linalg.norm(atoms - atoms.mean(axis=0), axis=1).max())
    return beyond * (rho0 + PRODUCT_SPREAD_BOHR) / PRODUCT_SPREAD_BOHR


def orders_by_distance(distance: np.ndarray, radius: float, spread: float, order: int) -> np.ndarray:
    """The lowest series order for each site at ``distance`` (Bohr, >= ``radius``) from the expansion centre whose
    remainder bound (spread / distance)^(order + 1) is no larger than that of ``order`` at ``radius``: the series of
    a site twice as far needs about half the terms for the same accuracy."""
    ratio = np.log(spread / radius) / np.log(spread / np.maximum(distance, radius))
    return np.minimum(order, np.ceil((order + 1) * ratio - 1e-9).astype(int) - 1)


def series_radius(mol) -> float:
    """Distance from every QM atom beyond which a site enters through the series, Bohr: `SERIES_MIN_BOHR`, or
    the reach of the most diffuse product density (where erfc(sqrt(p) r) falls below 1e-14) plus 2 Bohr."""
    alpha = min(float(np.min(mol.bas_exp(b))) for b in range(mol.nbas))
    return max(SERIES_MIN_BOHR, 5.7 / np.sqrt(2.0 * alpha) + 2.0)


@dataclass(frozen=True)
class FieldResponse:
    """Embedding terms after the SCF (atomic units).

    nuclear_energy : float
        Interaction of the QM nuclei with all sites, Hartree (the SCF energy holds the electronic part).
    grad_qm, grad_sites : ndarray or None
        dE/dR of the QM centres (beyond the SCF gradient) and of the sites, Hartree/Bohr.
    potential : ndarray (n_sites,)
        dE/dq_g: potential of the QM nuclei and electrons at each site, Hartree/e.
    far_field : dict or None
        For a far-field calculation: sites treated exactly / by expansion, and the error estimate and
        bound of the expansion, Hartree.
    strain_derivative : ndarray (3, 3) or None
        Periodic fields, with derivatives: dE/d(strain) of the embedding terms beyond the SCF gradient's
        (sum R (x) g of the SCF gradient is added by the caller), Hartree; [a, b] = sum_i g_ia R_ib +
        explicit cell terms.
    """

    nuclear_energy: float
    grad_qm: np.ndarray | None
    grad_sites: np.ndarray | None
    potential: np.ndarray
    far_field: dict | None = None
    strain_derivative: np.ndarray | None = None


class ExternalField:
    """Sites of charge q at coords (Bohr) around the QM molecule ``mol`` (open boundaries).

    Parameters
    ----------
    mol : pyscf.gto.Mole
    coords : ndarray (n, 3), Bohr
    charges : ndarray (n,), e
    zetas : ndarray (n,), optional
        Gaussian exponents, 1/Bohr^2.
    far_field : float, optional
        Sites beyond this distance from the centre enter through the approximate multipole expansion, Bohr;
        None treats every site exactly.
    series_beyond : float, optional
        Sites farther than this from every QM atom enter through the exact series, Bohr (`series_radius`);
        None computes integrals for every site.  Not with ``far_field``.  Those also farther than
        `single_centre_radius` from the QM centre share one series about it instead of one per atom.
    series_min_sites : int
        The series are used only if at least this many sites are that far.
    width : float
        Blending width inside ``far_field``, Bohr.
    cache_bytes : int, optional
        Memory for potential integrals kept from before to after the SCF (`qmml.qm.embedding.CACHE_BYTES`).
    integrals : type
        Exact integral backend: `SiteIntegrals` (CPU) or `qmml.qm.gpu.GPUSiteIntegrals`.
    """

    periodic = False  # no images: the SCF needs no image potential
    constant_energy = 0.0  # the nuclei's interaction with the sites is all in the response

    def __init__(self, mol, coords, charges, zetas=None, *, far_field=None, width=0.0, series_beyond=None,
                 series_min_sites=0, cache_bytes=None, integrals=SiteIntegrals):
        self.mol = mol
        self.coords = coords
        self.charges = charges
        self.zetas = zetas
        n = len(charges)
        self.weight = np.ones(n)
        self.weight_slope = np.zeros(n)
        self.centre = mol.atom_coords().mean(axis=0)
        self.radius = None
        self.distant = self.per_atom = self.single_centre = np.zeros(0, dtype=int)
        if far_field is not None:
            self._split(far_field, width)
        elif series_beyond is not None and n:
            distant = distant_sites(mol, coords, zetas, series_beyond)
            if len(distant) >= series_min_sites:
                self.distant = distant
                self.weight[distant] = 0.0
                from_centre = np.linalg.norm(coords[distant] - self.centre, axis=1)
                radius = single_centre_radius(mol, series_beyond)
                outer = from_centre > radius
                self.per_atom, self.single_centre = distant[~outer], distant[outer]
                spread = radius * PRODUCT_SPREAD_BOHR / series_beyond  # rho0 + s
                self._single_orders = {order: orders_by_distance(from_centre[outer], radius, spread, order)
                                       for order in (SERIES_ORDER, RESPONSE_ORDER + 1)}
        self.near = np.flatnonzero(self.weight > 0)
        self.far = np.flatnonzero(self.weight < 1) if far_field is not None else np.zeros(0, dtype=int)
        self.exact = integrals(mol, coords[self.near], None if zetas is None else zetas[self.near], cache_bytes)
        self._expansion = None
        self._derivatives = None


    def _split(self, cutoff, width):
        start = far_field.expansion_start(self.mol.atom_coords(), self.centre)
        r_on = cutoff - width
        if not r_on > start:
            raise InputError(f"far_field_A={cutoff * _BOHR_A:.2f} Å with width {width * _BOHR_A:.2f} Å starts the "
                             f"multipole expansion at {r_on * _BOHR_A:.2f} Å from the QM centre, where the QM "
                             f"density still reaches (it needs {start * _BOHR_A:.2f} Å for this QM region); raise "
                             f"far_field_A above {(start + width) * _BOHR_A:.1f} Å or use None")
        self.radius = start
        distance = np.linalg.norm(self.coords - self.centre, axis=1)
        self.distance = distance
        self.weight, self.weight_slope = switch(distance, r_on, cutoff)
        if self.zetas is not None:
            far = self.weight < 1
            reach = far_field.GAUSSIAN_POINT_RANGE / np.sqrt(self.zetas[far])
            density_edge = np.max(np.linalg.norm(self.mol.atom_coords() - self.centre, axis=1))
            if np.any(distance[far] - density_edge - far_field.DENSITY_MARGIN_BOHR < reach):
                raise InputError(f"far_field_A={cutoff * _BOHR_A:.2f} Å: Gaussian charges this wide overlap the QM "
                                 "density beyond the cutoff, where they are treated as points; raise far_field_A")

    def operator(self) -> np.ndarray:
        """The one-electron operator of all sites, (nao, nao), Hartree."""
        h = self.exact.operator(self.charges[self.near] * self.weight[self.near])
        if len(self.distant):
            atoms, sites = self.mol.atom_coords(), self.per_atom
            self._derivatives = hermite.field_derivatives(self.charges[sites], self.coords[sites], atoms, SERIES_ORDER)
            if len(self.single_centre):
                at_centre = np.zeros(self._derivatives.shape[1])
                orders = self._single_orders[SERIES_ORDER]
                for order in np.unique(orders):  # monomials run by degree: a lower order is a leading block
                    sites = self.single_centre[orders == order]
                    block = hermite.field_derivatives(self.charges[sites], self.coords[sites], self.centre[None], order)
                    at_centre[:block.shape[1]] += block[0]
                self._derivatives += hermite.translate_derivatives(at_centre, self.centre, atoms)
            h = h - hermite.local_operator(self.mol, self._derivatives, atoms)
        if len(self.far):
            q_far = self.charges[self.far] * (1.0 - self.weight[self.far])
            self._expansion = far_field.local_expansions(self.coords[self.far], q_far, self.mol.atom_coords())
            self._atom_ints = far_field.atom_integrals(self.mol)
            h = h + far_field.operator(self._atom_ints, self._expansion, self.mol.nao)
        return h

    def response(self, dm: np.ndarray, deriv: bool = True) -> FieldResponse:
        """Energy, gradients and site potential at the converged density ``dm`` (total, nao x nao)."""
        mol, q = self.mol, self.charges
        n = len(q)
        nuc_coords, nuc_charges = mol.atom_coords(), mol.atom_charges().astype(float)
        e_nuc, g_nuc_qm, g_nuc_sites, phi_nuc = nuclear_terms(nuc_coords, nuc_charges, self.coords, q, self.zetas)
        near, far = self.near, self.far
        phi_el = np.zeros(n)
        grad_sites = g_nuc_sites.copy() if deriv else None
        grad_qm = g_nuc_qm.copy() if deriv else None

        phi_exact = np.zeros(n)
        if len(near):
            g_qm, g_sites, phi_exact[near] = self.exact.response(dm, q[near] * self.weight[near], deriv)
            if deriv:
                grad_qm += g_qm
                grad_sites[near] += g_sites
        phi_el[near] += self.weight[near] * phi_exact[near]
        if len(self.distant):
            # electrons: E = -sum D <mu|Phi|nu>, their potential at a site -phi_rho
            moments, _ = hermite.density_moments(mol, dm, nuc_coords, RESPONSE_ORDER)
            at_centre = hermite.translate_moments(moments, nuc_coords, self.centre)[None]
            groups = [(self.per_atom, moments, nuc_coords)]
            if len(self.single_centre):
                # the gradient takes the series one order up: the bound is set at RESPONSE_ORDER + 1
                orders = np.maximum(self._single_orders[RESPONSE_ORDER + 1] - 1, 0)
                groups += [(self.single_centre[orders == order], at_centre[:, :len(hermite.monomials(order))],
                            self.centre[None]) for order in np.unique(orders)]
            for sites, m, c in groups:
                if not len(sites):
                    continue
                if deriv:
                    phi_rho, dphi = hermite.potential_of_moments(m, c, self.coords[sites], gradient=True)
                    grad_sites[sites] -= q[sites, None] * dphi
                else:
                    phi_rho = hermite.potential_of_moments(m, c, self.coords[sites])
                phi_el[sites] = -phi_rho
            if deriv:
                lower = self._derivatives[:, :len(hermite.monomials(RESPONSE_ORDER))]  # monomials run by degree
                grad_qm -= hermite.local_operator_gradient(mol, dm, lower, nuc_coords)
        info = None if self.radius is None else {"n_exact": int(len(near)), "n_expanded": int(len(far)),
                                                 "error_estimate": 0.0, "error_bound": 0.0}
        if len(far):
            atoms = nuc_coords
            ints = far_field.add_response_integrals(mol, self._atom_ints, deriv)
            moments = far_field.atom_moments(ints, dm)
            q_far = q[far] * (1.0 - self.weight[far])
            phi_far = np.zeros(n)
            phi_far[far], dphi = far_field.electron_potential(self.coords[far], atoms, moments, deriv)
            phi_el[far] += (1.0 - self.weight[far]) * phi_far[far]
            if deriv:
                grad_sites[far] += q_far[:, None] * dphi
                grad_qm += far_field.atom_gradient(mol, ints, self._expansion, moments, dm)
                # the blend: dE/dR_g = q_g (phi_exact - phi_far) dw/dr * unit vector from C
                blend = np.flatnonzero(self.weight_slope != 0)
                if len(blend):
                    unit = (self.coords[blend] - self.centre) / self.distance[blend, None]
                    g_blend = (q[blend] * (phi_exact[blend] - phi_far[blend]) * self.weight_slope[blend])[:, None] * unit
                    grad_sites[blend] += g_blend
                    grad_qm -= g_blend.sum(axis=0) / mol.natm  # C is the mean of the QM centres
            info["error_estimate"] = abs(far_field.octupole_estimate(self._expansion, moments))
            info["error_bound"] = far_field.error_bound(self.coords[far], q_far, atoms,
                                                        *far_field.share_sizes(mol, dm))
        return FieldResponse(e_nuc, grad_qm, grad_sites, phi_nuc + phi_el, info)

