"""`PeriodicField`: the QM region in a periodic array of environment charges (Ewald embedding).

Atomic units (Bohr, Hartree, e); lattice vectors are the rows of H.  The QM region is one molecule;
the environment sites and the QM region itself repeat with the lattice.  The energy is

    E = E_SCF[rho; near images, exact]  +  sum_A M_A . V_A  +  1/2 sum_AB M_A . K_AB . M_B ,

1. **Near images, exact.**  Every image R_j + n H of a site within ``near`` of the QM centre C (the
   mean of the QM centres) enters the one-electron operator and the nuclear energy exactly
   (`qmml.qm.field.ExternalField`, point or Gaussian), with a weight w(|R_i - C|) that falls from 1 to 0
   over ``width`` inside ``near`` (a quintic switch, so the energy stays smooth when a site crosses;
   ``width`` = 0 is a hard cut).
2. **Everything else through the QM region's multipoles.**  Each QM atom A carries the total charge
   Q_A = Z_A - (electron share), dipole D_A and (raw, second-moment) quadrupole O_A of its share of the
   density (`qmml.qm.far_field`: the same atom shares as the non-periodic far field).  V_A are the
   potential, its gradient and its Hessian at R_A of all periodic images of all sites (Ewald, with the
   neutralizing background of a charged box) minus the w-weighted near images (Gaussian sites keep
   their Gaussian shape at every distance).  K_AB couples the QM region to its own periodic images
   (the Ewald interaction of A with every image of B, minus the direct interaction of A and B in the
   same cell).  Both sums keep the terms of total multipole order <= 2 (charge-charge,
   charge-dipole, charge-quadrupole, dipole-dipole), the order of the far-field expansion.

This is the energy of pyscf.qmmm.pbc (C. Li, PySCF 2.9+) for a hard cut (``width`` = 0), which it
reproduces to its own test's tolerance, extended to triclinic boxes, charged boxes (the background term
makes the energy independent of the Ewald splitting), a smooth near/far blend, the forces on the
sites and the strain derivative (stress).  Because the second term is quadratic in the density, its
density derivative enters the SCF's effective potential (`image_potential`), so the energy stays
variational and the forces exact.

The lattice sums are written in PyTorch (float64): the potential terms V and K are built once per
geometry for the SCF, and after it the energy at the converged moments is differentiated by autograd
with respect to the QM centres, the sites, the site charges, the blend weights and a homogeneous
strain of positions and cell (the moments' own dependence on the basis functions is added from
`far_field.basis_gradient`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..periodic.cell import perpendicular_widths
from ..periodic.ewald import reciprocal_indices, splitting
from ..coupling.switching import switch
from ..units import BOHR_A as _BOHR_A
from . import far_field
from .embedding import SiteIntegrals
from .field import ExternalField, FieldResponse

#: Relative size of the neglected real-space and reciprocal Ewald terms, exp(-p^2) with p the
#: product (splitting x real-space cutoff).
DEFAULT_ACCURACY = 1e-10
#: Sites x reciprocal vectors handled at once in the structure factors (memory ~ 16 bytes each).
SITE_BLOCK_ELEMENTS = 4_000_000
_SQRT_PI = math.sqrt(math.pi)


def lattice_shifts(cell: np.ndarray, radius: float) -> np.ndarray:
    """Integer shifts n (k, 3) of every lattice vector n H shorter than ``radius`` + one cell diagonal,
    so that the images of any point of the cell within ``radius`` of any other are all reached."""
    reach = radius + np.linalg.norm(cell.sum(0)) + np.abs(cell).sum()
    n_max = np.ceil(reach / perpendicular_widths(cell)).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in n_max], indexing="ij"), -1).reshape(-1, 3)
    return grid[np.linalg.norm(grid @ cell, axis=1) <= reach]


@dataclass(frozen=True)
class EwaldParameters:
    """Splitting eta (1/Bohr), real-space cutoff (Bohr) and half-space reciprocal indices m (G = 2 pi m H^-T)."""

    eta: float
    real_cutoff: float
    g_indices: np.ndarray


def ewald_parameters(cell: np.ndarray, accuracy: float, real_cutoff: float) -> EwaldParameters:
    """The splitting rule of `qmml.periodic.ewald` (both neglected tails ~ accuracy), in Bohr."""
    eta, g_max = splitting(real_cutoff, accuracy)
    return EwaldParameters(eta, real_cutoff, reciprocal_indices(cell, g_max))


def _screened(a, r):
    """f = erfc(a r)/r and its first two radial derivatives (a a number or a tensor like r)."""
    f = torch.special.erfc(a * r) / r
    gauss = (2.0 / _SQRT_PI) * a * torch.exp(-(a * r) ** 2)
    d1 = -(f + gauss) / r
    d2 = 2.0 * (f + gauss) / r**2 + 2.0 * a * a * gauss
    return f, d1, d2


def _coulomb(r):
    inv = 1.0 / r
    return inv, -inv * inv, 2.0 * inv**3


def _tensors(x, r, f, d1, d2):
    """Sums over the last pair axis of (f, grad f, grad grad f) of radial functions at separations x
    (..., P, 3), given f, f' and f'' (..., P) at r = |x|: tensors (...), (..., 3), (..., 3, 3)."""
    u = x / r[..., None]
    t0 = f.sum(-1)
    t1 = torch.einsum("...p,...px->...x", d1, u)
    t2 = torch.einsum("...p,...px,...py->...xy", d2 - d1 / r, u, u) \
        + (d1 / r).sum(-1)[..., None, None] * torch.eye(3, dtype=x.dtype)
    return t0, t1, t2


def _strain_matrix(strain):
    return torch.eye(3, dtype=strain.dtype) + strain


class PeriodicField:
    """Sites of charge q at coords (Bohr, any image) in the periodic box ``cell`` around ``mol``.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    coords : ndarray (n, 3)
        Site positions, Bohr (any periodic image).
    charges : ndarray (n,)
        e.
    zetas : ndarray (n,), optional
        Gaussian exponents, 1/Bohr^2; None for point charges.
    cell : ndarray (3, 3)
        Lattice vectors as rows, Bohr.
    near : float
        Radius about the QM centre inside which site images are treated exactly, Bohr.
    width : float
        Blending width inside ``near``, Bohr (0: a hard cut).
    accuracy : float
        Ewald accuracy (`ewald_parameters`).
    real_cutoff : float, optional
        Ewald real-space cutoff, Bohr (default: the larger of ``near`` and half the narrowest cell width,
        at least 12 Bohr; a long cutoff costs little here and keeps the reciprocal sum short).
    integrals : type
        Exact-integral backend for the near images.
    """

    periodic = True  # the SCF adds the density's interaction with its own images (an image potential)

    def __init__(self, mol, coords, charges, zetas, cell, *, near: float, width: float = 0.0,
                 accuracy: float = DEFAULT_ACCURACY, real_cutoff: float | None = None, integrals=SiteIntegrals):
        self.mol = mol
        self.cell = np.asarray(cell, dtype=float)
        self.coords = np.asarray(coords, dtype=float).reshape(-1, 3)
        self.charges = np.asarray(charges, dtype=float).ravel()
        self.zetas = None if zetas is None else np.broadcast_to(np.asarray(zetas, dtype=float), self.charges.shape)
        self.near, self.width = float(near), float(width)
        atoms = mol.atom_coords()
        self.centre = atoms.mean(axis=0)
        self._check(atoms)
        self.ewald = ewald_parameters(self.cell, accuracy, real_cutoff or max(self.near, 0.5 * float(perpendicular_widths(self.cell).min()), 12.0))
        extent = float(np.max(np.linalg.norm(atoms - self.centre, axis=1)))
        # every image the real-space sums need: the Ewald cutoff and the near sphere around each QM atom
        self.reach = max(self.ewald.real_cutoff, self.near) + extent
        self._select_images()
        w = self.image_weight
        exact = w > 0
        self.exact_images = np.flatnonzero(exact)
        self.exact = ExternalField(mol, self.image_coords[exact], self.charges[self.image_site[exact]] * w[exact],
                                   None if self.zetas is None else self.zetas[self.image_site[exact]],
                                   integrals=integrals)
        self.qm_shifts = lattice_shifts(self.cell, self.ewald.real_cutoff + 2 * extent)
        self._g = 2 * math.pi * self.ewald.g_indices @ np.linalg.inv(self.cell).T
        self._factors = self._structure_factors()
        with torch.no_grad():
            v, k, _ = self._potentials(*self._leaves(requires_grad=False), *self._factors)
        self.V = [t.numpy() for t in v]
        self.K = [t.numpy() for t in k]
        self._atom_ints = far_field.atom_integrals(mol)
        m_nuc = self.nuclear_moments()
        self._u_nuc = self.moment_gradient(m_nuc)
        self.constant_energy = self.energy(m_nuc)

    # -- setup --------------------------------------------------------------------------
    def _check(self, atoms):
        start = far_field.expansion_start(atoms, self.centre)
        if self.near - self.width <= start:
            raise InputError(
                f"periodic embedding: the exact region ends at {(self.near - self.width) * _BOHR_A:.2f} Å from the QM "
                f"centre (near_field_A - near_field_width_A), inside the QM density, which needs "
                f"{start * _BOHR_A:.2f} Å; raise near_field_A above {(start + self.width) * _BOHR_A + 0.5:.1f} Å")
        lengths = np.linalg.norm(lattice_shifts(self.cell, 0.0) @ self.cell, axis=1)
        image = float(lengths[lengths > 0].min())  # the shortest lattice vector
        if image <= 2 * start:
            raise InputError(f"periodic embedding: the box (shortest lattice vector {image * _BOHR_A:.2f} Å) is too small for "
                             f"the QM region, whose images must stay {2 * start * _BOHR_A:.2f} Å apart so that their "
                             "densities do not overlap; use a larger box")

    def _select_images(self):
        """Images of the sites within ``reach`` of the centre: site index, integer shift, position, weight."""
        inv = np.linalg.inv(self.cell)
        base = -np.floor((self.coords - self.centre) @ inv + 0.5)  # nearest image of each site to C
        shifts = lattice_shifts(self.cell, self.reach)
        site, shift, pos = [], [], []
        for s in shifts:
            n = base + s
            p = self.coords + n @ self.cell
            keep = np.linalg.norm(p - self.centre, axis=1) <= self.reach
            site.append(np.flatnonzero(keep))
            shift.append(n[keep])
            pos.append(p[keep])
        self.image_site = np.concatenate(site)
        self.image_shift = np.concatenate(shift)
        self.image_coords = np.concatenate(pos)
        r = np.linalg.norm(self.image_coords - self.centre, axis=1)
        self.image_weight = switch(r, self.near - self.width, self.near)[0]

    def _site_phases(self):
        """cos and sin of G . R_j in blocks of sites (bounded memory), as torch tensors on all threads:
        yields (slice, cos, sin)."""
        step = max(1, SITE_BLOCK_ELEMENTS // max(1, len(self._g)))
        g = torch.from_numpy(self._g)
        coords = torch.from_numpy(self.coords)
        for i0 in range(0, len(self.coords), step):
            phase = coords[i0:i0 + step] @ g.T
            yield slice(i0, i0 + step), torch.cos(phase), torch.sin(phase)

    def _structure_factors(self):
        """sum_j q_j cos(G . R_j) and sum_j q_j sin(G . R_j).  They depend on the fractional coordinates
        only, so a homogeneous strain leaves them unchanged; the sites' gradients through them are
        formed block by block (`_site_reciprocal_gradient`) rather than by autograd over (sites x G)."""
        q = torch.from_numpy(self.charges)
        sc, ss = torch.zeros(len(self._g), dtype=torch.float64), torch.zeros(len(self._g), dtype=torch.float64)
        for block, cos, sin in self._site_phases():
            sc += q[block] @ cos
            ss += q[block] @ sin
        return sc.numpy(), ss.numpy()

    def _site_reciprocal_gradient(self, d_sc: np.ndarray, d_ss: np.ndarray):
        """dE/dR_j and dE/dq_j through the structure factors, given dE/d(sum q cos) and dE/d(sum q sin)."""
        grad = torch.zeros(self.coords.shape, dtype=torch.float64)
        dq = torch.zeros(len(self.coords), dtype=torch.float64)
        d_sc, d_ss, g = torch.from_numpy(d_sc), torch.from_numpy(d_ss), torch.from_numpy(self._g)
        q = torch.from_numpy(self.charges)
        for block, cos, sin in self._site_phases():
            dq[block] = cos @ d_sc + sin @ d_ss
            grad[block] = q[block, None] * ((cos * d_ss - sin * d_sc) @ g)
        return grad.numpy(), dq.numpy()

    def _leaves(self, requires_grad: bool):
        def leaf(a):
            return torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)

        return (leaf(self.mol.atom_coords()), leaf(self.coords), leaf(self.charges),
                leaf(np.zeros((3, 3))))

    # -- lattice sums -------------------------------------------------------------------
    def _potentials(self, atoms, sites, charges, strain, sc, ss):
        """V (site terms at each QM atom) and K (QM-QM image terms), as differentiable tensors."""
        dtype = torch.float64
        deform = _strain_matrix(strain)
        cell = torch.as_tensor(self.cell, dtype=dtype) @ deform.T
        atoms = atoms @ deform.T
        sites = sites @ deform.T
        volume = torch.linalg.det(cell).abs()
        eta = self.ewald.eta
        g = 2 * math.pi * torch.as_tensor(self.ewald.g_indices, dtype=dtype) @ torch.linalg.inv(cell).T
        g2 = (g * g).sum(1)
        coef = 2.0 * (4 * math.pi / volume) * torch.exp(-g2 / (4 * eta * eta)) / g2  # both of each +-G pair
        background = -math.pi / (volume * eta * eta)

        # sites: real space over the selected images, reciprocal space over all sites
        img = sites[self.image_site] + torch.as_tensor(self.image_shift, dtype=dtype) @ cell
        centre = atoms.mean(0)
        w = switch(torch.linalg.norm(img - centre, dim=1), self.near - self.width, self.near)[0]
        q_img = charges[self.image_site]
        x = atoms[:, None, :] - img[None, :, :]  # (A, images, 3)
        r = torch.linalg.norm(x, dim=2)
        n_atoms = len(atoms)
        pieces = [(_screened(eta, r), q_img), (_coulomb(r), -w * q_img)]
        if self.zetas is not None:
            a = torch.as_tensor(np.sqrt(self.zetas[self.image_site]), dtype=dtype)
            pieces.append((_screened(a, r), -(1.0 - w) * q_img))
        f, d1, d2 = (sum(p[0][n] * p[1] for p in pieces) for n in range(3))
        v0, v1, v2 = _tensors(x, r, f, d1, d2)
        sc, ss = torch.as_tensor(sc), torch.as_tensor(ss)
        phase_a = atoms @ g.T
        ca, sa = torch.cos(phase_a), torch.sin(phase_a)
        v0 = v0 + (ca * sc + sa * ss) @ coef + background * charges.sum()
        v1 = v1 + ((-sa * sc + ca * ss) * coef) @ g
        gg = (g[:, :, None] * g[:, None, :]).reshape(-1, 9)
        v2 = v2 - (((ca * sc + sa * ss) * coef) @ gg).reshape(-1, 3, 3)

        # QM-QM: every image of B seen from A, less the same-cell pair (and the self term for A = B)
        shifts = torch.as_tensor(self.qm_shifts, dtype=dtype) @ cell
        xab = atoms[:, None, :] - atoms[None, :, :]  # (A, B, 3)
        x = xab[:, :, None, :] - shifts[None, None, :, :]  # (A, B, shifts, 3)
        zero = torch.as_tensor(np.all(self.qm_shifts == 0, axis=1), dtype=torch.bool)
        same = torch.eye(n_atoms, dtype=torch.bool)[:, :, None] & zero[None, None, :]
        x = torch.where(same[..., None], torch.ones_like(x), x)  # the self pair is added below
        r = torch.linalg.norm(x, dim=3)
        sf, sd1, sd2 = _screened(eta, r)
        cf, cd1, cd2 = _coulomb(r)
        direct = (zero[None, None, :] & ~same).to(dtype)
        keep = (~same).to(dtype)
        f, d1, d2 = keep * sf - direct * cf, keep * sd1 - direct * cd1, keep * sd2 - direct * cd2
        k0, k1, k2 = _tensors(x, r, f, d1, d2)
        phase = (xab.reshape(-1, 3) @ g.T)
        c, s = torch.cos(phase) * coef, torch.sin(phase) * coef
        k0 = k0 + c.sum(1).reshape(n_atoms, n_atoms) + background
        k1 = k1 - (s @ g).reshape(n_atoms, n_atoms, 3)
        k2 = k2 - (c @ gg).reshape(n_atoms, n_atoms, 3, 3)
        eye = torch.eye(n_atoms, dtype=dtype)
        k0 = k0 - (2 * eta / _SQRT_PI) * eye
        k2 = k2 + (4 * eta**3 / (3 * _SQRT_PI)) * eye[:, :, None, None] * torch.eye(3, dtype=dtype)
        return (v0, v1, v2), (k0, k1, k2), w

    # -- multipole energy ---------------------------------------------------------------
    def nuclear_moments(self):
        """(Q, D, O) of the bare nuclei: charges Z_A, no dipoles or quadrupoles."""
        n = self.mol.natm
        return [self.mol.atom_charges().astype(float), np.zeros((n, 3)), np.zeros((n, 3, 3))]

    def moments(self, dm: np.ndarray):
        """(Q, D, O) of each atom's nuclear charge plus its share of the electrons (total density ``dm``)."""
        m = [np.array([np.einsum("...ij,ij->...", a[n], dm[a["rows"][0]:a["rows"][1]]) for a in self._atom_ints])
             for n in range(3)]
        return [self.mol.atom_charges() - m[0], -m[1], -m[2]]

    @staticmethod
    def _energy(v, k, m):
        q, d, o = m
        lib = torch if isinstance(q, torch.Tensor) else np
        site = (q * v[0]).sum() + (d * v[1]).sum() + 0.5 * (o * v[2]).sum()
        pair = lib.einsum("a,ab,b->", q, k[0], q) + 2 * lib.einsum("ax,abx,b->", d, k[1], q) \
            - lib.einsum("ax,abxy,by->", d, k[2], d) + lib.einsum("axy,abxy,b->", o, k[2], q)
        return site + 0.5 * pair

    def energy(self, m) -> float:
        """sum_A M_A . V_A + 1/2 sum_AB M_A . K_AB . M_B for moments ``m`` = (Q, D, O), Hartree."""
        return float(self._energy(self.V, self.K, m))

    def moment_gradient(self, m):
        """dE/dQ, dE/dD, dE/dO at moments ``m`` (arrays like ``m``)."""
        q, d, o = m
        v, k = self.V, self.K
        uq = v[0] + k[0] @ q + np.einsum("bx,bax->a", d, k[1]) + 0.5 * np.einsum("bxy,baxy->a", o, k[2])
        ud = v[1] + np.einsum("abx,b->ax", k[1], q) - np.einsum("abxy,by->ax", k[2], d)
        uo = 0.5 * (v[2] + np.einsum("abxy,b->axy", k[2], q))
        return [uq, ud, uo]

    def _operator(self, u):
        """One-electron operator of a linear functional sum_A U_A . M_A of the electron moments."""
        return far_field.operator(self._atom_ints, [u[0], u[1], 2.0 * u[2]], self.mol.nao)

    # -- what the SCF sees --------------------------------------------------------------
    def operator(self, density=None) -> np.ndarray:
        """Density-independent one-electron operator (nao, nao): the exact near images and the part of the
        multipole energy linear in the electron moments (with the nuclei's moments as the other factor).
        ``density`` is not needed (the `ExternalField` contract)."""
        return self.exact.operator() + self._operator(self._u_nuc)

    def image_potential(self, dm: np.ndarray) -> tuple[np.ndarray, float]:
        """The density-dependent part: the QM electrons' interaction with their own periodic images.

        Returns its effective potential (nao, nao) and its energy 1/2 M_el . K . M_el (Hartree), equal
        to half the trace of the potential with ``dm`` (the total density).
        """
        m = self.moments(dm)
        m_el = [m[0] - self.mol.atom_charges(), m[1], m[2]]
        u = self.moment_gradient(m_el)
        u = [u[i] - self.V[i] * (0.5 if i == 2 else 1.0) for i in range(3)]  # K . M_el alone
        v = self._operator(u)
        return v, 0.5 * float(np.einsum("ij,ij->", v, dm))

    # -- after the SCF ------------------------------------------------------------------
    def response(self, dm: np.ndarray, deriv: bool = True) -> FieldResponse:
        """Energy beyond the SCF energy, gradients, site potentials and strain derivative at ``dm``."""
        exact = self.exact.response(dm, deriv)
        n_sites = len(self.charges)
        m = self.moments(dm)
        atoms, sites, charges, strain = self._leaves(requires_grad=True)
        sc, ss = (torch.tensor(f, requires_grad=True) for f in self._factors)
        v, k, weights = self._potentials(atoms, sites, charges, strain, sc, ss)
        m_t = [torch.as_tensor(a) for a in m]
        e_multipole = self._energy(v, k, m_t)
        # the exact images' share: E_exact depends on the weights through their charges w q
        ex = self.exact_images
        phi_exact = np.zeros(len(self.image_site))
        phi_exact[ex] = exact.potential
        q_img = self.charges[self.image_site]
        weight_term = (weights * torch.as_tensor(q_img * phi_exact)).sum()
        objective = e_multipole + weight_term
        potential = np.zeros(n_sites)
        np.add.at(potential, self.image_site[ex], self.image_weight[ex] * exact.potential)
        if not deriv:
            g_q, d_sc, d_ss = (t.numpy() for t in torch.autograd.grad(e_multipole, (charges, sc, ss)))
            return FieldResponse(exact.nuclear_energy, None, None,
                                 potential + g_q + self._site_reciprocal_gradient(d_sc, d_ss)[1])
        g_atoms, g_sites, g_q, g_strain, d_sc, d_ss = (
            t.numpy() for t in torch.autograd.grad(objective, (atoms, sites, charges, strain, sc, ss)))
        g_rec, q_rec = self._site_reciprocal_gradient(d_sc, d_ss)
        g_sites = g_sites + g_rec
        g_q = g_q + q_rec
        ints = far_field.add_response_integrals(self.mol, self._atom_ints, True)
        u = self.moment_gradient(m)
        g_basis = far_field.basis_gradient(self.mol, ints, [u[0], u[1], 2.0 * u[2]], dm)
        grad_qm = exact.grad_qm + g_atoms + g_basis
        grad_sites = g_sites.copy()
        np.add.at(grad_sites, self.image_site[ex], exact.grad_sites)
        # positions the exact and basis terms were computed at, for their share of the strain derivative
        coords = self.mol.atom_coords()
        strain_derivative = g_strain + (exact.grad_qm + g_basis).T @ coords \
            + exact.grad_sites.T @ self.image_coords[ex]
        return FieldResponse(exact.nuclear_energy, grad_qm, grad_sites, potential + g_q,
                             strain_derivative=strain_derivative)


