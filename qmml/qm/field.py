"""`ExternalField`: the embedding sites as one QM calculation sees them.

Atomic units.  Every site interacts exactly with the QM nuclei.  With the electrons, a site interacts
through one of three treatments:

* exact integrals (`qmml.qm.embedding`): every site within ``series_beyond`` of a QM atom, or every site;
* the exact series (`qmml.qm.hermite`, with ``series_beyond``): beyond that distance from every QM atom the
  density's Hermite multipoles about the atoms give the sites' potential, and the Taylor series of the sites'
  potential about the atoms gives their operator, at the lowest orders whose rigorous remainder bounds
  (`qmml.qm.truncation`) meet ``tolerance``, so the two sets meet without a switch and distant sites cost no
  integrals;
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
from . import far_field, hermite, truncation
from .embedding import SiteIntegrals, nuclear_terms

#: What the exact series may leave out, as rigorous bounds (`qmml.qm.truncation`): the energy, Hartree, and the
#: gradient of any site and the summed gradient of the QM atoms, Hartree/Bohr.  The orders follow from them per
#: calculation (14 for the operator and 8 for the forces per atom, glycine/6-31G* in 1e4-1e5 water charges
#: started from a converged density; benchmarks/series_orders.py).
SERIES_ENERGY_TOLERANCE = 1e-11
SERIES_GRADIENT_TOLERANCE = 1e-8
#: The potential at each site (dE/dq, which environment-dependent charges turn into forces) is held to the
#: gradient's tolerance times this, Bohr.
POTENTIAL_PER_GRADIENT = 1.0
#: The orders are chosen at the SCF's initial density for this fraction of the tolerances, so the bounds at the
#: converged density (reported) stay within them.
GUESS_MARGIN = 0.5
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
    series : dict or None
        Where distant sites took the exact series: `ExternalField.series_bounds` at the converged density.
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
    series: dict | None = None


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
    tolerance : (float, float)
        Bounds the series must meet: the energy, Hartree, and the gradients, Hartree/Bohr (half of each for
        the per-atom series, half for the one about the centre, where both are used).
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
                 series_min_sites=0, tolerance=(SERIES_ENERGY_TOLERANCE, SERIES_GRADIENT_TOLERANCE), cache_bytes=None,
                 integrals=SiteIntegrals):
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
        self.tolerance = tolerance
        self.series = None
        self._series_bounds = None
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

    def operator(self, density=None) -> np.ndarray:
        """The one-electron operator of all sites, (nao, nao), Hartree.  ``density`` (nao x nao, or per spin) is
        where the series' orders are chosen, the SCF's initial density (None: see `_guess`)."""
        h = self.exact.operator(self.charges[self.near] * self.weight[self.near])
        if len(self.distant):
            self._choose_orders(self._guess(density))
            atoms, sites = self.mol.atom_coords(), self.per_atom
            orders = self._single_orders["energy"]
            top = max([self.series["energy_order"]] + [int(o) for o in orders])
            self._derivatives = np.zeros((len(atoms), len(hermite.monomials(top))))
            own = hermite.field_derivatives(self.charges[sites], self.coords[sites], atoms, self.series["energy_order"])
            self._derivatives[:, :own.shape[1]] = own  # monomials run by degree: a lower order is a leading block
            if len(self.single_centre):
                at_centre = np.zeros(self._derivatives.shape[1])
                for order in np.unique(orders):
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

    def _guess(self, density):
        """The total density the orders are chosen for: ``density``, or without one the largest off-diagonal
        elements a density matrix (positive semidefinite: |D_ab| <= sqrt(D_aa D_bb)) with the diagonal of PySCF's
        minimal-basis guess could have (that guess itself has no bonds)."""
        if density is None:
            from pyscf.scf import hf

            diagonal = np.sqrt(np.abs(np.diag(hf.init_guess_by_minao(self.mol))))
            return np.outer(diagonal, diagonal)
        density = np.asarray(density)
        return density if density.ndim == 2 else density.sum(axis=0)

    def _bounds(self, density, motion: bool):
        """`truncation.SeriesBound` of the per-atom and the single-centre sites, weighed with ``density``; the
        geometric part is built once per field."""
        product_centres, dens, move = hermite.hermite_weights(self.mol, density, motion=motion)
        if self._series_bounds is None:
            self._series_bounds = (
                truncation.SeriesBound(self.mol.atom_coords(), product_centres, self.coords[self.per_atom],
                                       self.charges[self.per_atom]),
                truncation.SeriesBound(self.centre, product_centres, self.coords[self.single_centre],
                                       self.charges[self.single_centre]))
        return tuple(bound.weigh(dens, move) for bound in self._series_bounds)

    def _choose_orders(self, density) -> None:
        """The lowest orders whose bounds meet ``tolerance`` for the initial ``density``."""
        energy_tol, gradient_tol = self.tolerance
        share = 0.5 if len(self.per_atom) and len(self.single_centre) else 1.0
        per_atom, single = self._bounds(density, motion=False)
        energy_tol, gradient_tol = GUESS_MARGIN * energy_tol, GUESS_MARGIN * gradient_tol
        response = max(truncation.lowest_order(per_atom.site_gradient(), gradient_tol),
                       truncation.lowest_order(per_atom.potential(), gradient_tol * POTENTIAL_PER_GRADIENT))
        self.series = {"energy_order": truncation.lowest_order(per_atom.energy(), share * energy_tol),
                       "response_order": response}
        self._single_orders = {"energy": single.energy_orders(share * energy_tol),
                               "gradient": single.gradient_orders(gradient_tol, gradient_tol * POTENTIAL_PER_GRADIENT)}

    def series_bounds(self, density) -> dict:
        """The bounds at the orders used, for ``density`` (total, nao x nao; the converged one after the SCF):
        ``energy`` (Hartree), ``site_gradient`` (the largest, Hartree/Bohr), ``site_potential`` (the largest,
        Hartree/e) and ``qm_gradient`` (summed over the QM atoms, Hartree/Bohr), with the per-atom orders and the range of the single-centre ones."""
        per_atom, single = self._bounds(density, motion=True)
        column = np.searchsorted(truncation.ORDERS, [self.series["energy_order"], self.series["response_order"]])
        out = dict(self.series)
        out["energy"] = float(per_atom.energy()[column[0]] + single.energy_at(self._single_orders["energy"]))
        out["site_gradient"] = float(max(per_atom.site_gradient()[column[1]],
                                         single.gradient_at(self._single_orders["gradient"])))
        out["site_potential"] = float(max(per_atom.potential()[column[1]],
                                          single.potential_at(self._single_orders["gradient"])))
        out["qm_gradient"] = float(per_atom.qm_gradient()[column[0]]
                                   + single.qm_gradient_at(self._single_orders["energy"]))
        for kind, orders in self._single_orders.items():
            out[f"single_centre_{kind}_orders"] = (int(orders.min()), int(orders.max())) if len(orders) else None
        return out

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
            response_order = self.series["response_order"]
            orders = self._single_orders["gradient"]
            top = max([response_order] + [int(o) for o in orders])
            moments, _ = hermite.density_moments(mol, dm, nuc_coords, top)
            groups = [(self.per_atom, moments[:, :len(hermite.monomials(response_order))], nuc_coords)]
            if len(self.single_centre):
                at_centre = hermite.translate_moments(moments, nuc_coords, self.centre)[None]
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
                grad_qm -= hermite.local_operator_gradient(mol, dm, self._derivatives, nuc_coords)
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
        series = self.series_bounds(dm) if len(self.distant) else None
        return FieldResponse(e_nuc, grad_qm, grad_sites, phi_nuc + phi_el, info, series=series)

