"""`EnvironmentModel`: a committee of atomistic networks predicting energy, forces and charges.

Architecture (one member)
-------------------------
* Pair geometry within a smooth cutoff: radial basis g_n(r) (Gaussians) times
  f_c(r) = (1 - (r/r_c)^2)^3, which is zero with two vanishing derivatives at r_c.
* Learned species-resolved channels R^l_c(r, Z_j) = sum_n W^l[Z_j, c, n] g_n(r) f_c(r).
* Atomic moments A^0_c = sum_j R^0_c, A^1_c = sum_j R^1_c u_ij, A^2_c = sum_j R^2_c u_ij (x) u_ij
  and their rotation invariants A^0_c, A^1_c . A^1_c', A^2_c : A^2_c'.  Because
  u_ij.u_ik = cos(theta_jik), these are exactly the three-body (radial x Legendre-polynomial-in-angle)
  symmetry functions of Behler-Parrinello/ANI, but computed from sums over pairs, so the cost is
  O(pairs) instead of O(triplets).
* One multilayer perceptron per element maps the invariants to an atomic energy and a raw charge.
* Charges are made to sum exactly to each group's (molecule's) charge by a weighted shift
  q_i = q^_i + f_i (Q_g - sum_g q^) / sum_g f with learned positive per-element weights f.
* Optional explicit Coulomb energy between predicted charges of different molecules: damped shifted
  force ("dsf", smooth at its cutoff, the form the models are trained with), or the full Coulomb sum
  ("ewald": an Ewald sum in a periodic box, `qmml.periodic.ewald`, the bare sum in open
  boundaries); the subtractive scheme can then remove the QM-environment Coulomb part it replaces
  by embedding.
* Strain derivative: the model sees positions only through pair vectors R_j + shift - R_i, so a
  homogeneous strain acts on those vectors (and on the cell of the Ewald sum), and dE/d(strain)
  comes out of the same backward passes as the forces.
* Optional explicit dispersion (``dispersion=D3Dispersion(...)``, `qmml.ml.dispersion`): a two-body
  D3(BJ) energy over a long cutoff (15 Å by default, switched smoothly), evaluated by simple-dftd3 over
  all atoms passed to `EnvironmentModel.predict` and added, with its exact forces and strain
  derivative, to every member's energy (the committee spread is unchanged).  The labels are trained
  with it subtracted, so the networks learn only what is not dispersion beyond their cutoff.
* Optional bonded baseline (``baseline=BondBaseline(...)``, `qmml.ml.baseline`): Morse X-H bonds within
  each molecule and contact walls between molecules, added the same way, so that no network hole lets
  a proton leave its molecule or two molecules collapse.  `fixed_terms` lists the model's terms of
  this kind; all share ``compute(elements, positions, cell, molecules, forces=)``.

A committee is a list of such members sharing the neighbour list and the radial basis; the
prediction is the committee mean and the spread its standard deviation.

Units: Å, eV, e throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .. import units
from ..errors import InputError
from ..periodic.cell import check_cell
from .baseline import BondBaseline
from .dispersion import D3Dispersion
from ..periodic.neighbours import StackedNeighbours, neighbour_list, pairs

COULOMB_FORMS = ("dsf", "ewald")
#: Relative accuracy of the Ewald form of the Coulomb term.
EWALD_ACCURACY = 1e-6
#: Largest structure whose autograd graph a force evaluation keeps between the charges and the forces
#: (`EnvironmentModel.prepare_response`): one forward pass instead of two.  Memory: about 40-60 kB per atom for
#: networks only (2.1 GB peak at 35k water atoms), about 150 kB per atom with a 9 Å DSF Coulomb term.
ONE_PASS_MAX_ATOMS = 40_000
#: Damping of the optional Coulomb term (1/Å), Fennell & Gezelter, J. Chem. Phys. 124, 234104 (2006).
DSF_ALPHA_PER_A = 0.2


def dsf_coulomb_pairs(q_i, q_j, r, cutoff: float):
    """Damped-shifted-force Coulomb energy (eV) of charge pairs at distances r (Å); zero force at the cutoff."""
    a = DSF_ALPHA_PER_A
    erfc_rc = math.erfc(a * cutoff) / cutoff
    shift_force = erfc_rc / cutoff + 2 * a / math.sqrt(math.pi) * math.exp(-(a * cutoff) ** 2) / cutoff
    kernel = torch.special.erfc(a * r) / r - erfc_rc + shift_force * (r - cutoff)
    return units.COULOMB_EV_A * q_i * q_j * kernel


def _group_sum(values, group, n_groups):
    return values.new_zeros(n_groups).index_add_(0, group, values)


def cutoff_function(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    x = (r / cutoff).clamp(max=1.0)
    return (1.0 - x * x) ** 3


def neighbour_density(basis, unit, neighbour_species, centre_local, n_centres: int, n_species: int):
    """Each centre's neighbour density on the radial basis, by neighbour species and angular component.

    D[i, (s, n), :] = sum over pairs (i, j) with species(j) = s of g_n(r_ij) f_c(r_ij) (1, u, u (x) u), the
    symmetric u (x) u in 6 components (xx, yy, zz and sqrt(2) xy, xz, yz, so that dot products of them are
    Frobenius products).  Shape (n_centres, n_species * n_radial, 10); what every member's channels are
    linear combinations of (`Member.features`).

    Per species, each centre's pairs are laid out in a padded block (centre, slot), so the sum over pairs is
    one batched matrix product: 3.7x faster forward and backward than scattering a (pairs, n_radial, 10)
    outer product, in less memory.
    """
    x, y, z = unit.unbind(1)
    r2 = math.sqrt(2.0)
    angular = torch.stack([torch.ones_like(x), x, y, z, x * x, y * y, z * z, r2 * x * y, r2 * x * z, r2 * y * z], 1)
    n_radial = basis.shape[1]
    blocks = []
    for s in range(n_species):
        pick = torch.nonzero(neighbour_species == s, as_tuple=True)[0]
        if len(pick) == 0:
            blocks.append(basis.new_zeros((n_centres, n_radial, 10)))
            continue
        centres = centre_local[pick]
        if len(centres) > 1 and bool((centres[1:] < centres[:-1]).any()):
            centres, order = torch.sort(centres, stable=True)
            pick = pick[order]
        counts = torch.bincount(centres, minlength=n_centres)
        slot = torch.arange(len(centres), device=centres.device) - (torch.cumsum(counts, 0) - counts)[centres]
        width = int(counts.max())
        radial = basis.new_zeros((n_centres, width, n_radial)).index_put((centres, slot), basis[pick])
        angles = basis.new_zeros((n_centres, width, 10)).index_put((centres, slot), angular[pick])
        blocks.append(torch.bmm(radial.transpose(1, 2), angles))
    return torch.stack(blocks, 1).reshape(n_centres, n_species * n_radial, 10)


class Member(nn.Module):
    """One committee member: learned radial channels, invariants, per-element networks."""

    def __init__(self, n_species: int, n_radial: int, n_channels: int, hidden: tuple[int, ...],
                 embedding_head: bool = False):
        super().__init__()
        self.embedding_head = bool(embedding_head)
        self.n_channels = n_channels
        scale = 1.0 / math.sqrt(n_radial)
        self.mixing = nn.Parameter(torch.randn(3, n_species, n_radial, n_channels) * scale)
        n_pairs = n_channels * (n_channels + 1) // 2
        n_features = n_channels + 2 * n_pairs
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.networks = nn.ModuleList()
        for _ in range(n_species):
            layers, width = [], n_features
            for h in hidden:
                layers += [nn.Linear(width, h), nn.SiLU()]
                width = h
            layers.append(nn.Linear(width, 3 if self.embedding_head else 2))
            self.networks.append(nn.Sequential(*layers))
        self.atomic_energy = nn.Parameter(torch.zeros(n_species))  # eV, per-element reference
        self.atomic_charge = nn.Parameter(torch.zeros(n_species))  # e, per-element offset
        self.charge_weight_logit = nn.Parameter(torch.zeros(n_species))
        self.register_buffer("energy_scale", torch.ones(()))
        self.register_buffer("charge_scale", torch.ones(()) * 0.1)
        if self.embedding_head:  # charges that embed a QM region, apart from the latent ones of the energy
            self.embedding_charge = nn.Parameter(torch.zeros(n_species))  # e, per-element offset
            self.embedding_weight_logit = nn.Parameter(torch.zeros(n_species))
        iu = torch.triu_indices(n_channels, n_channels)
        self.register_buffer("pair_a", iu[0])
        self.register_buffer("pair_b", iu[1])

    def features(self, density):
        """Rotation-invariant features of each centre from its `neighbour_density` (n, n_species*n_radial, 10).

        The member's radial channels are linear in the density, R^l_c = sum_(s,n) W^l[s, n, c] D[s, n], so
        the work over pairs is done once for the whole committee and each member only mixes.
        """
        k = self.n_channels
        weights = self.mixing.reshape(3, -1, k)
        a0 = torch.matmul(density[:, :, 0], weights[0])  # (n, k)
        a1 = torch.matmul(density[:, :, 1:4].transpose(1, 2), weights[1])  # (n, 3, k)
        a2 = torch.matmul(density[:, :, 4:].transpose(1, 2), weights[2])  # (n, 6, k)
        p1 = torch.bmm(a1.transpose(1, 2), a1)[:, self.pair_a, self.pair_b]
        p2 = torch.bmm(a2.transpose(1, 2), a2)[:, self.pair_a, self.pair_b]
        return torch.cat([a0, p1, p2], dim=1)

    def charge_weights(self, species, head: str = "latent"):
        logit = self.embedding_weight_logit if head == "embedding" else self.charge_weight_logit
        return nn.functional.softplus(logit[species]) + 1e-3


def committee_atomic(members, density, species):
    """Atomic energies (eV), raw charges and raw embedding charges (e; None without that head), each
    (n_members, n), of every member at once: the members' weights stacked, so each layer of each element's
    network is one batched matrix product over the committee (`Member.features` gives one member's features,
    the same numbers)."""
    n, k = len(density), members[0].n_channels
    n_members = len(members)
    mixing = torch.stack([m.mixing.reshape(3, -1, k) for m in members], 2)  # (3, SR, M, k)
    mixing = mixing.reshape(3, mixing.shape[1], n_members * k)
    a0 = torch.matmul(density[:, :, 0], mixing[0]).reshape(n, n_members, k)
    a1 = torch.matmul(density[:, :, 1:4].transpose(1, 2), mixing[1]).reshape(n, 3, n_members, k)
    a2 = torch.matmul(density[:, :, 4:].transpose(1, 2), mixing[2]).reshape(n, 6, n_members, k)
    pair_a, pair_b = members[0].pair_a, members[0].pair_b

    def invariants(a):  # (n, c, M, k) -> (n, M, k(k+1)/2): the dot products A_c . A_c'
        a = a.permute(0, 2, 1, 3).reshape(n * n_members, a.shape[1], k)
        return torch.bmm(a.transpose(1, 2), a)[:, pair_a, pair_b].reshape(n, n_members, -1)

    features = torch.cat([a0, invariants(a1), invariants(a2)], 2).transpose(0, 1)  # (M, n, F)
    mean = torch.stack([m.feature_mean for m in members])[:, None, :]
    std = torch.stack([m.feature_std for m in members])[:, None, :]
    x = (features - mean) / std
    width = 3 if members[0].embedding_head else 2
    out = x.new_zeros((n, n_members, width))
    for s in range(len(members[0].networks)):
        rows = torch.nonzero(species == s, as_tuple=True)[0]
        if len(rows) == 0:
            continue
        h = x[:, rows]
        layers = [m.networks[s] for m in members]
        for depth, layer in enumerate(layers[0]):
            if isinstance(layer, nn.Linear):
                weight = torch.stack([net[depth].weight for net in layers]).transpose(1, 2)  # (M, in, out)
                bias = torch.stack([net[depth].bias for net in layers])[:, None, :]
                h = torch.baddbmm(bias, h, weight)
            else:
                h = layer(h)
        out = out.index_put((rows,), h.transpose(0, 1))
    out = out.transpose(0, 1)  # (M, n, width)
    scale_e = torch.stack([m.energy_scale for m in members])[:, None]
    scale_q = torch.stack([m.charge_scale for m in members])[:, None]
    energy = out[..., 0] * scale_e + torch.stack([m.atomic_energy for m in members])[:, species]
    charge = out[..., 1] * scale_q + torch.stack([m.atomic_charge for m in members])[:, species]
    if width == 2:
        return energy, charge, None
    return energy, charge, out[..., 2] * scale_q + torch.stack([m.embedding_charge for m in members])[:, species]


class _LazyPairs:
    """Neighbour pairs of each chunk's atoms: one list for the whole structure (`qmml.periodic.neighbours`;
    from a `VerletList` if given), kept compact (centre offsets, int32 partners, int8 lattice shifts) and
    handed out chunk by chunk as torch tensors."""

    def __init__(self, positions, cutoff, cell, chunks, neighbours=None):
        self.device, self.dtype, self.chunks = positions.device, positions.dtype, chunks
        i, j, shifts = pairs(positions, cutoff, cell) if neighbours is None else \
            neighbours.pairs(positions, cutoff, cell)
        counts = np.bincount(i, minlength=len(positions)) if len(i) else np.zeros(len(positions), dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.partners = j.astype(np.int32)
        self.shifts = shifts.astype(np.int8) if len(shifts) and np.abs(shifts).max() < 128 else shifts
        self.cell = None if cell is None else torch.as_tensor(
            np.asarray(cell.detach().cpu() if torch.is_tensor(cell) else cell, dtype=np.float64),
            device=self.device).to(self.dtype)

    def __iter__(self):
        for a, b in self.chunks:
            lo, hi = int(self.starts[a]), int(self.starts[b])
            centres = np.repeat(np.arange(a, b), np.diff(self.starts[a:b + 1]))
            i = torch.as_tensor(centres, dtype=torch.long, device=self.device)
            j = torch.as_tensor(self.partners[lo:hi], dtype=torch.long, device=self.device)
            if self.cell is None:
                s = torch.zeros((hi - lo, 3), dtype=self.dtype, device=self.device)
            else:
                s = torch.as_tensor(self.shifts[lo:hi].astype(np.float64), device=self.device).to(self.dtype) @ self.cell
            yield i, j, s


@dataclass(frozen=True)
class Prediction:
    """Committee prediction for one structure (Å, eV, e).

    Attributes
    ----------
    energy : float
        Committee-mean energy of the atoms in ``energy_mask``, eV (plus the model's dispersion term of
        all atoms, if it has one).
    charges : ndarray (n,)
        Committee-mean charges, e (zero for atoms in group -1): those of the embedding-charge head if the
        model has one (`EnvironmentModel(embedding_charges=True)`), else the one charge head's.
    forces : ndarray (n, 3) or None
        -d/dR of ``energy + sum_i potential_i * charges_i`` with the potential held fixed, eV/Å.
    energy_std, charges_std, forces_std
        Committee standard deviations (forces_std only with ``uncertainty=True``); zero for one member.
    member_energies : ndarray (n_members,)
    member_charges : ndarray (n_members, n)
        Each member's conserved charges, e (for the spread of quantities linear in the charges, such
        as the embedding energy sum_j phi_j q_j).
    strain_derivative : ndarray (3, 3) or None
        With a cell and forces: d/d(strain) of the objective whose negative gradient is ``forces``
        (homogeneous strain of positions and cell; [a, b] = sum over pair vectors g_a d_b), eV.
    copy_member_energies : ndarray (copies, n_members) or None
        Each copy's energy per member, eV, when ``predict`` evaluated several copies at once (``copies``);
        ``energy`` and ``member_energies`` are then sums over the copies.
    """

    energy: float
    charges: np.ndarray
    forces: np.ndarray | None
    energy_std: float
    charges_std: np.ndarray
    forces_std: np.ndarray | None
    member_energies: np.ndarray
    member_charges: np.ndarray | None = None
    strain_derivative: np.ndarray | None = None
    copy_member_energies: np.ndarray | None = None


class EnvironmentModel(nn.Module):
    """Committee of atomistic networks: energy, forces and exactly conserved charges.

    Parameters
    ----------
    elements : sequence of int
        Atomic numbers the model knows.
    cutoff : float
        Descriptor cutoff, Å.
    n_radial : int
        Gaussian radial basis functions.
    n_channels : int
        Learned radial channels per angular order (features: c + c(c+1)).
    hidden : tuple of int
        Hidden layer widths of each element's network.
    n_members : int
        Committee size.
    coulomb_cutoff : float or None
        Cutoff (Å) of an explicit damped-shifted-force Coulomb energy between charges of different
        molecules (the "ewald" form has no cutoff); None leaves electrostatics implicit in the
        short-range networks.
    charge_groups : {"molecule", "structure"}
        What the charges were conserved over in training: each molecule (no charge transfer between
        molecules), or each whole structure (charge transfer allowed, e.g. ions in water).  At
        prediction time pass ``groups`` accordingly.
    coulomb : {"dsf", "ewald"}
        Form of the Coulomb term (with ``coulomb_cutoff``): damped shifted force, or the full Coulomb
        sum (Ewald in periodic boxes, relative accuracy `EWALD_ACCURACY`, splitting chosen by
        `qmml.periodic.ewald.default_real_cutoff`; bare in open boundaries).  Training uses "dsf";
        `with_coulomb` switches a trained model.
    dispersion : D3Dispersion or dict, optional
        An explicit two-body D3(BJ) dispersion term (`qmml.ml.dispersion.D3Dispersion`, or its
        ``to_dict()``), added by `predict` over all atoms it is given (group -1 included) to every
        member's energy, with exact forces and strain derivative; it needs the ``dftd3`` package.
        Stored in `config` and so in model files; None (the default, and every model file written
        before the option) has none.
    baseline : BondBaseline or dict, optional
        A bonded and contact-wall baseline (`qmml.ml.baseline.BondBaseline`, or its ``to_dict()``;
        ``{}`` for the defaults), added like ``dispersion``; it acts on the ``molecules`` passed to
        `predict`.  None (the default, and older model files) has none.
    embedding_charges : bool
        A second charge head: the charges `predict` returns and the ones a QM region is embedded in
        (trained on charges fitted to the QM electrostatic potential, `Frame.esp_charges`), conserved per
        group like the first.  The first head's (latent) charges then serve only the model's own Coulomb
        term.  False (the default, and older model files): one head for both.
    """

    def __init__(self, elements, cutoff: float = 5.0, n_radial: int = 12, n_channels: int = 10,
                 hidden=(64, 64), n_members: int = 1, coulomb_cutoff: float | None = None,
                 charge_groups: str = "molecule", coulomb: str = "dsf",
                 dispersion: D3Dispersion | dict | None = None, baseline: BondBaseline | dict | None = None,
                 embedding_charges: bool = False):
        super().__init__()
        self.embedding_charges = bool(embedding_charges)
        self.dispersion = None if dispersion is None else D3Dispersion.from_dict(dispersion)
        self.baseline = None if baseline is None else BondBaseline.from_dict(baseline)
        if charge_groups not in ("molecule", "structure"):
            raise ValueError(f"charge_groups must be 'molecule' or 'structure', not {charge_groups!r}")
        if coulomb not in COULOMB_FORMS:
            raise InputError(f"coulomb={coulomb!r} is not one of {COULOMB_FORMS}")
        self.coulomb_form = coulomb
        self.charge_groups = charge_groups
        self.elements = [int(z) for z in elements]
        self.cutoff = float(cutoff)
        self.n_radial, self.n_channels, self.hidden = int(n_radial), int(n_channels), tuple(int(h) for h in hidden)
        self.coulomb_cutoff = None if coulomb_cutoff is None else float(coulomb_cutoff)
        table = torch.full((119,), -1, dtype=torch.long)
        table[torch.tensor(self.elements)] = torch.arange(len(self.elements))
        self.register_buffer("species_table", table, persistent=False)
        self.register_buffer("centres", torch.linspace(0.5, cutoff, n_radial))
        self.width = (cutoff - 0.5) / (n_radial - 1)
        self.members = nn.ModuleList(
            Member(len(self.elements), n_radial, n_channels, self.hidden, self.embedding_charges)
            for _ in range(int(n_members)))

    # -- configuration -------------------------------------------------------------------
    def config(self) -> dict:
        return {"elements": self.elements, "cutoff": self.cutoff, "n_radial": self.n_radial,
                "n_channels": self.n_channels, "hidden": list(self.hidden), "n_members": len(self.members),
                "coulomb_cutoff": self.coulomb_cutoff, "charge_groups": self.charge_groups,
                "coulomb": self.coulomb_form,
                "dispersion": None if self.dispersion is None else self.dispersion.to_dict(),
                "baseline": None if self.baseline is None else self.baseline.to_dict(),
                "embedding_charges": self.embedding_charges}

    def with_embedding_head(self) -> "EnvironmentModel":
        """A copy with an embedding-charge head (see the class docstring) that starts as a copy of the
        latent one, so the copy predicts what this model does until it is trained on ESP charges."""
        if self.embedding_charges:
            return self.select_members(range(len(self.members)))
        clone = EnvironmentModel(**{**self.config(), "embedding_charges": True}).to(self.dtype)
        state = self.state_dict()
        for key, value in clone.state_dict().items():
            if key in state and state[key].shape == value.shape:
                value.copy_(state[key])
            elif key in state:  # the last layer of an element network: a third row copying the charge row
                value.copy_(torch.cat([state[key], state[key][1:2]]))
        with torch.no_grad():
            for member in clone.members:
                member.embedding_charge.copy_(member.atomic_charge)
                member.embedding_weight_logit.copy_(member.charge_weight_logit)
        clone.coulomb_form = self.coulomb_form
        return clone.to(self.device)

    @property
    def fixed_terms(self) -> list:
        """The model's terms with fixed parameters (dispersion, baseline), added to every member's energy,
        forces and strain derivative; the networks are trained on the labels minus their sum."""
        return [t for t in (self.dispersion, self.baseline) if t is not None]

    def with_coulomb(self, form: str) -> "EnvironmentModel":
        """A copy whose Coulomb term takes the form ``form`` ("dsf" or "ewald"); see the class docstring.

        The "ewald" form of a model trained with "dsf" adds the long-range part the damping removed:
        a different energy surface, physically the complete electrostatics of the predicted charges.
        """
        import copy

        if form not in COULOMB_FORMS:
            raise InputError(f"Coulomb form {form!r} is not one of {COULOMB_FORMS}")
        if self.coulomb_cutoff is None:
            raise InputError("this model has no Coulomb term (coulomb_cutoff is None); nothing to switch")
        clone = copy.deepcopy(self)
        clone.coulomb_form = form
        return clone

    def select_members(self, indices) -> "EnvironmentModel":
        """A copy holding only the committee members ``indices`` (e.g. ``[0]``: one member, a third of
        the cost of a three-member committee, for a cheap fast force)."""
        import copy

        indices = [int(i) for i in indices]
        if not indices or any(not 0 <= i < len(self.members) for i in indices):
            raise InputError(f"members {indices}: this model has members 0..{len(self.members) - 1}")
        clone = copy.deepcopy(self)
        clone.members = nn.ModuleList(clone.members[i] for i in indices)
        return clone

    @property
    def dtype(self):
        return self.centres.dtype

    @property
    def device(self):
        return self.centres.device

    def species(self, atomic_numbers) -> torch.Tensor:
        z = torch.as_tensor(np.asarray(atomic_numbers), dtype=torch.long, device=self.device)
        s = self.species_table[z.clamp(0, 118)]
        if (s < 0).any() or (z > 118).any() or (z < 1).any():
            bad = sorted({int(v) for v in z[(s < 0) | (z > 118) | (z < 1)]})
            from ..elements import SYMBOLS
            names = [SYMBOLS[b - 1] if 0 < b <= 118 else str(b) for b in bad]
            known = [SYMBOLS[e - 1] for e in self.elements]
            raise InputError(f"the model knows elements {known}, not {names}; use a model trained on them")
        return s

    # -- building blocks -----------------------------------------------------------------
    def basis(self, r):
        g = torch.exp(-0.5 * ((r[:, None] - self.centres[None, :]) / self.width) ** 2)
        return g * cutoff_function(r, self.cutoff)[:, None]

    def pair_geometry(self, positions, i, j, shifts, rows=None, strain=None):
        """Radial basis (pairs, n_radial) and unit vectors (pairs, 3) of pairs (i, j).

        ``rows``, if given, is (row of i, row of j) in ``positions`` (a chunk's own copy of the
        positions it touches); by default rows are the atom indices.  ``strain`` (3, 3) deforms the
        pair vectors homogeneously.
        """
        ri, rj = (i, j) if rows is None else rows
        vec = positions[rj] + shifts - positions[ri]
        if strain is not None:
            vec = vec @ (torch.eye(3, dtype=vec.dtype, device=vec.device) + strain).T
        r = torch.linalg.norm(vec, dim=1)
        return self.basis(r), vec / r[:, None]

    def atomic_terms(self, species, positions, i, j, shifts, start: int, stop: int, rows=None, members=None,
                     strain=None):
        """Atomic energies, raw charges and raw embedding charges (None without that head) of atoms
        start..stop-1, each of shape (n_members, stop-start).

        ``members`` selects committee members by index (default all); ``rows`` and ``strain`` see
        `pair_geometry`.
        """
        basis, unit = self.pair_geometry(positions, i, j, shifts, rows, strain)
        density = neighbour_density(basis, unit, species[j], i - start, stop - start, len(self.elements))
        chosen = list(self.members) if members is None else [self.members[m] for m in members]
        return committee_atomic(chosen, density, species[start:stop])

    def _group_weights(self, species, groups, members=None, head: str = "latent"):
        """Atoms inside a group, their group index, and each member's shift weights f (zero outside)."""
        inside = groups >= 0
        chosen = self.members if members is None else [self.members[m] for m in members]
        return inside, groups.clamp(min=0), [member.charge_weights(species, head) * inside for member in chosen]

    def conserve(self, raw, species, groups, group_charges, members=None, head: str = "latent"):
        """Shift raw charges (n_members, n) so each group sums to its charge; atoms of group -1 get zero.

        ``members`` selects committee members by index (default all), matching the rows of ``raw``;
        ``head`` ("latent" or "embedding") the charge head whose shift weights apply.
        """
        n_groups = len(group_charges)
        inside, g, weights = self._group_weights(species, groups, members, head)
        out = []
        for m, w in enumerate(weights):
            weight = _group_sum(w, g, n_groups).clamp(min=1e-30)  # an empty group must not give 0/0
            excess = (group_charges - _group_sum(raw[m] * inside, g, n_groups)) / weight
            out.append(torch.where(inside, raw[m] + w * excess[g], 0.0))
        return torch.stack(out)

    def effective_potential(self, potential, species, groups, n_groups, head: str = "latent"):
        """d(sum_i phi_m,i q_m,i)/d q^_m,k for potentials (M, n): phi minus its f-weighted group mean.

        This is the transpose of `conserve`'s shift.  Because the weights f do not depend on
        positions, the charge response of the conserved charges is that of the raw charges in this
        shifted potential; a constant added to phi drops out.
        """
        inside, g, weights = self._group_weights(species, groups, head=head)
        out = []
        for m, w in enumerate(weights):
            mean = _group_sum(potential[m] * w, g, n_groups) / _group_sum(w, g, n_groups).clamp(min=1e-30)
            out.append(torch.where(inside, potential[m] - mean[g], 0.0))
        return torch.stack(out)

    def coulomb(self, charges, positions, molecules, cell, strain=None, neighbours=None):
        """Coulomb energy (eV) between atoms of different molecules, per member (see ``coulomb``)."""
        if self.coulomb_form == "ewald":
            from ..periodic.ewald import coulomb_open, ewald_coulomb

            # atoms outside every molecule (-1, the QM atoms of the subtractive scheme) carry no charge
            if cell is None:
                return coulomb_open(charges, positions, exclude=molecules, strain=strain)
            # the cost-balancing real-space cutoff: 2.3x faster than coulomb_cutoff (9 Å) for 64 waters in a
            # 15.6 x 15.6 x 7.8 Å box, 1.5x for 1000 waters, the same energy to EWALD_ACCURACY
            from ..periodic.cell import volume
            from ..periodic.ewald import default_real_cutoff

            real_cutoff = default_real_cutoff(len(positions), float(volume(cell)), EWALD_ACCURACY)
            real_pairs = None if neighbours is None else \
                neighbour_list(positions.detach(), real_cutoff, cell, verlet=neighbours)
            return ewald_coulomb(charges, positions, cell, accuracy=EWALD_ACCURACY, exclude=molecules, strain=strain,
                                 real_cutoff=real_cutoff, pairs=real_pairs)
        i, j, shifts = neighbour_list(positions, self.coulomb_cutoff, cell, verlet=neighbours)
        keep = (molecules[i] != molecules[j]) & (molecules[i] >= 0) & (molecules[j] >= 0)
        i, j, shifts = i[keep], j[keep], shifts[keep]
        vec = positions[j] + shifts - positions[i]
        if strain is not None:
            vec = vec @ (torch.eye(3, dtype=vec.dtype, device=vec.device) + strain).T
        r = torch.linalg.norm(vec, dim=1)
        return 0.5 * dsf_coulomb_pairs(charges[:, i], charges[:, j], r, self.coulomb_cutoff).sum(1)

    def _structure(self, atomic_numbers, positions, cell, groups, group_charges):
        """Species, positions, charge groups, group charges (one per group) and checked cell as tensors,
        with one clear error for each malformed input."""
        dtype, device = self.dtype, self.device
        species = self.species(atomic_numbers)
        n = len(species)
        pos = torch.as_tensor(np.asarray(positions, dtype=np.float64), device=device).to(dtype)
        if pos.shape != (n, 3):
            raise InputError(f"positions must have shape ({n}, 3), got {tuple(pos.shape)}")
        groups_t = torch.zeros(n, dtype=torch.long, device=device) if groups is None else \
            torch.as_tensor(np.asarray(groups), dtype=torch.long, device=device)
        if groups_t.shape != (n,):
            raise InputError(f"groups needs one entry per atom ({n}), got shape {tuple(groups_t.shape)}")
        n_groups = int(groups_t.max()) + 1 if n else 0
        qg = torch.zeros(n_groups, dtype=dtype, device=device) if group_charges is None else \
            torch.as_tensor(np.asarray(group_charges, dtype=np.float64), device=device).to(dtype)
        if len(qg) < n_groups:
            raise InputError(f"{n_groups} charge groups but {len(qg)} group charges; give one charge per group")
        if not torch.isfinite(pos).all():
            bad = int(torch.nonzero(~torch.isfinite(pos).all(1))[0])
            raise InputError(f"position of atom {bad} is not finite; check the structure or the integrator")
        if cell is not None:
            cell = check_cell(cell, right_handed=False)
        return species, pos, groups_t, qg[:n_groups], cell

    def _coulomb_of_copies(self, charges, positions, molecules, cell, strain, neighbours, copies: int):
        """`coulomb` of each copy on its own (members, copies), eV: no Coulomb pair, real or reciprocal,
        joins two copies."""
        if copies == 1:
            return self.coulomb(charges, positions, molecules, cell, strain=strain, neighbours=neighbours)[:, None]
        n = len(positions) // copies
        return torch.stack([self.coulomb(charges[:, k * n:(k + 1) * n], positions[k * n:(k + 1) * n],
                                         molecules[k * n:(k + 1) * n], cell, strain=strain,
                                         neighbours=neighbours.lists[k]) for k in range(copies)], 1)

    def _fixed_terms(self, atomic_numbers, positions, cell, groups_t, molecules, forces: bool, copies: int = 1):
        """Sum of the fixed terms (`fixed_terms`) on each copy: energies (copies,) (eV), forces (eV/Å) and
        strain derivative (eV, summed over copies), the same for every member, so they shift the mean and
        leave the spread alone."""
        z_np, x_np = np.asarray(atomic_numbers), np.asarray(positions, np.float64)
        mol_np = groups_t.cpu().numpy() if molecules is None else np.asarray(molecules)
        n = len(x_np) // copies
        energy, f_sum, s_sum = np.zeros(copies), np.zeros((len(x_np), 3)) if forces else None, None
        for term in self.fixed_terms:
            for k in range(copies):
                rows = slice(k * n, (k + 1) * n)
                e_d, f_d, s_d = term.compute(z_np[rows], x_np[rows], cell, mol_np[rows], forces=forces)
                energy[k] += e_d
                if forces:
                    f_sum[rows] += f_d
                if s_d is not None:
                    s_sum = s_d if s_sum is None else s_sum + s_d
        return energy, f_sum, s_sum

    def _copies(self, n: int, copies: int, neighbours):
        """The neighbour lists for ``copies`` copies of n / copies atoms, checked."""
        copies = int(copies)
        if copies < 1 or n % copies:
            raise InputError(f"copies={copies}: {n} atoms do not split into that many equal copies")
        if copies == 1:
            return neighbours
        if neighbours is None:
            return StackedNeighbours(copies, skin=0.0)
        if not isinstance(neighbours, StackedNeighbours) or neighbours.copies != copies:
            raise InputError(f"copies={copies} needs neighbours=StackedNeighbours({copies}) (one Verlet list per "
                             "copy), or none")
        return neighbours

    # -- prediction ----------------------------------------------------------------------
    def predict(self, atomic_numbers, positions, *, cell=None, groups=None, group_charges=None, potential=None,
                energy_mask=None, molecules=None, forces: bool = True, uncertainty: bool = False,
                chunk_size: int = 1024, neighbours=None, copies: int = 1) -> Prediction:
        """Energy, charges and forces of one structure (or of several copies of one, ``copies``).

        Parameters
        ----------
        atomic_numbers : array_like (n,) int
        positions : array_like (n, 3)
            Å.
        cell : array_like (3, 3), optional
            Lattice vectors (rows, Å) of a periodic box; None for open boundaries.  With ``forces``,
            the result also carries ``strain_derivative`` (eV), from the same backward passes.
        groups : array_like (n,) int, optional
            Charge group (molecule) of each atom; -1 marks atoms that are neighbours only and carry no
            charge (the QM atoms).  Default: one group holding every atom.
        group_charges : array_like (n_groups,), optional
            Total charge of each group, e (default 0).
        potential : array_like (n,), optional
            Electrostatic potential phi at each atom, V, held fixed: the forces then include the charge
            response -sum_i phi_i dq_i/dR of the returned ``charges``.
        molecules : array_like (n,) int, optional
            Molecule of each atom (-1: none); the optional Coulomb term acts only between different
            molecules.  Default: ``groups``.
        energy_mask : array_like (n,) bool, optional
            Atoms whose atomic energies make up ``energy`` (default all).  Not available with a
            dispersion or baseline term (`fixed_terms`), which belong to pairs of atoms rather than to atoms.
        forces : bool
        uncertainty : bool
            Also compute each member's forces for ``forces_std`` (costs one backward pass per member).
        chunk_size : int
            Atoms per evaluation chunk; memory stays bounded and time linear for any size.  The
            default keeps a chunk's pair arrays (a few MB) in cache on CPUs; larger chunks help GPUs.
        neighbours : VerletList, optional
            The pair lists of this trajectory (`qmml.periodic.neighbours.VerletList`), reused while no atom
            has moved more than half its skin; the default searches afresh.  With ``copies``, a
            `qmml.periodic.neighbours.StackedNeighbours` of that many copies.
        copies : int
            The arrays hold this many independent copies of one structure, back to back (path-integral
            beads in one call): no pair and no Coulomb or fixed term joins two copies; ``groups`` and
            ``molecules`` must number each copy's groups apart.  ``energy`` is then the sum over copies and
            ``copy_member_energies`` each copy's; ``strain_derivative`` is summed too.
        """
        species, pos, groups_t, qg, cell = self._structure(atomic_numbers, positions, cell, groups, group_charges)
        dtype, device, n, n_groups = pos.dtype, pos.device, len(species), len(qg)
        neighbours = self._copies(n, copies, neighbours)
        phi = torch.zeros(n, dtype=dtype, device=device) if potential is None else \
            torch.as_tensor(np.asarray(potential, dtype=np.float64), device=device).to(dtype)
        mask = torch.ones(n, dtype=dtype, device=device) if energy_mask is None else \
            torch.as_tensor(np.asarray(energy_mask), device=device).to(dtype)
        for name, value in (("potential", phi), ("energy_mask", mask)):
            if value.shape != (n,):
                raise InputError(f"{name} needs one entry per atom ({n}), got shape {tuple(value.shape)}")
        if self.fixed_terms and energy_mask is not None and not bool((mask != 0).all()):
            raise InputError("this model has a dispersion or baseline term, a pair energy that cannot be split "
                             "by atoms: energy_mask must be all true (or omitted)")
        if forces and self.coulomb_cutoff is not None and n <= ONE_PASS_MAX_ATOMS:
            # the Coulomb term's potential depends on every charge: one forward pass with its graph kept
            return self.prepare_response(atomic_numbers, positions, cell=cell, groups=groups,
                                         group_charges=group_charges, molecules=molecules, energy_mask=energy_mask,
                                         chunk_size=chunk_size, neighbours=neighbours,
                                         copies=copies).with_forces(phi.cpu().numpy(), uncertainty)
        chunks = [(a, min(n, a + chunk_size)) for a in range(0, n, chunk_size)]
        pair_lists = _LazyPairs(pos, self.cutoff, cell, chunks, neighbours)
        n_members = len(self.members)
        weight_sets = [torch.full((n_members,), 1.0 / n_members, dtype=dtype, device=device)]
        if forces and uncertainty and n_members > 1:
            weight_sets += list(torch.eye(n_members, dtype=dtype, device=device))
        grads = torch.zeros((len(weight_sets), n, 3), dtype=dtype, device=device)
        with_strain = forces and cell is not None
        strain_grads = torch.zeros((len(weight_sets), 3, 3), dtype=dtype, device=device)

        def new_strain():
            return torch.zeros((3, 3), dtype=dtype, device=device, requires_grad=True) if with_strain else None

        embedding = self.embedding_charges

        def chunk_with_forces(a, b, i, j, s, phi_eff, psi_eff=None):
            """Evaluate one chunk on its own copy of the positions it touches (so its cost does not
            grow with the system) and add -d/dR (E + phi_eff . q^_emb + psi_eff . q^) of every weight set
            to grads (and its strain derivative to strain_grads); without an embedding head the charges
            are one, and phi_eff already holds both potentials."""
            touched, rows = torch.unique(torch.cat([torch.arange(a, b, device=device), j]), return_inverse=True)
            leaf = pos[touched].clone().requires_grad_(True)
            strain = new_strain()
            e, q, q_emb = self.atomic_terms(species, leaf, i, j, s, a, b, rows=(rows[i - a], rows[b - a:]),
                                            strain=strain)
            inputs = (leaf,) if strain is None else (leaf, strain)
            coupling = phi_eff[:, a:b] * (q_emb if embedding else q)
            if psi_eff is not None:
                coupling = coupling + psi_eff[:, a:b] * q
            for k, w in enumerate(weight_sets):
                objective = (w[:, None] * (e * mask[a:b] + coupling)).sum()
                g = torch.autograd.grad(objective, inputs, retain_graph=k < len(weight_sets) - 1)
                grads[k].index_add_(0, touched, g[0])
                if strain is not None:
                    strain_grads[k] += g[1]
            return e.detach(), q.detach(), None if q_emb is None else q_emb.detach()

        # The weights f of the charge shift do not depend on positions, so the response to the given
        # potential is known before any charge is: each chunk is evaluated and differentiated once, in memory
        # bounded by the chunk size.  Only the optional Coulomb term, whose potential depends on all charges,
        # needs a second pass here (above ONE_PASS_MAX_ATOMS; below, the graph is kept instead).
        head = "embedding" if embedding else "latent"
        second_pass = forces and self.coulomb_cutoff is not None
        if forces:
            with torch.no_grad():
                phi_eff = self.effective_potential(phi.expand(n_members, n), species, groups_t, n_groups, head)
        e_parts, q_parts, emb_parts = [], [], []
        for (a, b), (i, j, s) in zip(chunks, pair_lists):
            if forces and not second_pass:
                e, q, q_emb = chunk_with_forces(a, b, i, j, s, phi_eff)
            else:
                with torch.no_grad():
                    e, q, q_emb = self.atomic_terms(species, pos, i, j, s, a, b)
            e_parts.append(e)
            q_parts.append(q)
            emb_parts.append(q_emb)
        raw = torch.cat(q_parts, 1) if q_parts else pos.new_zeros((n_members, 0))
        atomic_e = torch.cat(e_parts, 1) if e_parts else pos.new_zeros((n_members, 0))
        with torch.no_grad():  # the charge-shift weights are parameters; no gradient is wanted here
            charges = self.conserve(raw, species, groups_t, qg)
            embedding_charges = charges if not embedding else self.conserve(
                torch.cat(emb_parts, 1) if emb_parts else pos.new_zeros((n_members, 0)), species, groups_t,
                qg, head="embedding")
        member_e = (atomic_e * mask).reshape(n_members, copies, n // copies).sum(2)

        if self.coulomb_cutoff is not None:
            if molecules is None and self.charge_groups == "structure":
                raise InputError("this model's Coulomb term acts between molecules and its charges are conserved "
                                 "per structure: pass molecules= (the molecule index of every atom)")
            x = pos.clone().requires_grad_(forces)
            q_leaf = charges.clone().requires_grad_(forces)
            mol_t = groups_t if molecules is None else \
                torch.as_tensor(np.asarray(molecules), dtype=torch.long, device=device)
            strain = new_strain()
            e_c = self._coulomb_of_copies(q_leaf, x, mol_t, cell, strain, neighbours, copies)
            member_e = member_e + e_c.detach()
            if forces:
                # One backward pass of the committee mean gives the direct (fixed-charge) force, its strain
                # derivative and psi_m = dE_c,m/dq_m (member m's energy depends on its own charges only, so
                # psi_m is the charge gradient over the member's weight); psi acts as an extra potential
                # on the latent charges.
                inputs = (x, q_leaf) if strain is None else (x, q_leaf, strain)
                for k, w in enumerate(weight_sets):
                    g = torch.autograd.grad((w[:, None] * e_c).sum(), inputs if k == 0 else inputs[:1] + inputs[2:],
                                            retain_graph=k < len(weight_sets) - 1)
                    if k == 0:
                        psi, g = g[1] / w[:, None], (g[0],) + g[2:]
                    grads[k] += g[0]
                    if strain is not None:
                        strain_grads[k] += g[1]
                with torch.no_grad():
                    if embedding:
                        psi_eff = self.effective_potential(psi, species, groups_t, n_groups)
                    else:
                        phi_eff, psi_eff = self.effective_potential(phi[None, :] + psi, species, groups_t,
                                                                    n_groups), None
                for (a, b), (i, j, s) in zip(chunks, pair_lists):
                    chunk_with_forces(a, b, i, j, s, phi_eff, psi_eff)

        result_forces = result_std = None
        if forces:
            result_forces = (-grads[0]).cpu().numpy().astype(np.float64)
            if len(weight_sets) > 1:
                result_std = grads[1:].std(0, unbiased=False).cpu().numpy().astype(np.float64)
        copy_e = member_e.detach().cpu().numpy().astype(np.float64).T
        strain_derivative = strain_grads[0].cpu().numpy().astype(np.float64) if with_strain else None
        if self.fixed_terms:
            e_d, f_d, s_d = self._fixed_terms(atomic_numbers, positions, cell, groups_t, molecules, forces, copies)
            copy_e = copy_e + e_d[:, None]
            if forces:
                result_forces = result_forces + f_d
            if with_strain:
                strain_derivative = strain_derivative + s_d
        q_np = embedding_charges.detach().cpu().numpy().astype(np.float64)
        m_e = copy_e.sum(0)
        return Prediction(
            energy=float(m_e.mean()), charges=q_np.mean(0), forces=result_forces, energy_std=float(m_e.std()),
            charges_std=q_np.std(0), forces_std=result_std if uncertainty else None, member_energies=m_e,
            member_charges=q_np, strain_derivative=strain_derivative, copy_member_energies=copy_e)

    def prepare_response(self, atomic_numbers, positions, *, cell=None, groups=None, group_charges=None,
                         molecules=None, energy_mask=None, chunk_size: int = 1024,
                         neighbours=None, copies: int = 1) -> "ResponsePass":
        """Energy and charges of one structure, with the autograd graph kept for forces to come.

        A QM/ML step needs the charges before the QM calculation and the forces of
        ``E + sum_i phi_i q_i`` after it, with phi the QM potential at the charges.  This method makes the
        only forward pass of that step; `ResponsePass.forces` then costs one backward pass.  Arguments are
        those of `predict`; memory grows with the number of atoms (the graph of every chunk is kept), where
        `predict` with a known ``potential`` stays bounded by ``chunk_size``.
        """
        species, pos, groups_t, qg, cell = self._structure(atomic_numbers, positions, cell, groups, group_charges)
        n, dtype, device = len(species), pos.dtype, pos.device
        neighbours = self._copies(n, copies, neighbours)
        chunks = [(a, min(n, a + chunk_size)) for a in range(0, n, chunk_size)]
        strain = None if cell is None else torch.zeros((3, 3), dtype=dtype, device=device, requires_grad=True)
        leaves, rows_of_leaves, e_parts, q_parts, emb_parts = [], [], [], [], []
        for (a, b), (i, j, s) in zip(chunks, _LazyPairs(pos, self.cutoff, cell, chunks, neighbours)):
            # each chunk differentiates its own copy of the positions it touches, so that the backward pass
            # of a chunk costs what the chunk does, not the whole system
            touched, rows = torch.unique(torch.cat([torch.arange(a, b, device=device), j]), return_inverse=True)
            leaf = pos[touched].clone().requires_grad_(True)
            e, q, q_emb = self.atomic_terms(species, leaf, i, j, s, a, b, rows=(rows[i - a], rows[b - a:]),
                                            strain=strain)
            leaves.append(leaf)
            rows_of_leaves.append(touched)
            e_parts.append(e)
            q_parts.append(q)
            emb_parts.append(q_emb)
        n_members = len(self.members)
        empty = pos.new_zeros((n_members, 0))
        charges = self.conserve(torch.cat(q_parts, 1) if q_parts else empty, species, groups_t, qg)
        embedding = charges if not self.embedding_charges else self.conserve(
            torch.cat(emb_parts, 1) if emb_parts else empty, species, groups_t, qg, head="embedding")
        atomic_e = torch.cat(e_parts, 1) if e_parts else empty
        if energy_mask is not None:
            atomic_e = atomic_e * torch.as_tensor(np.asarray(energy_mask), device=device).to(dtype)
        member_e = atomic_e.reshape(n_members, copies, n // copies).sum(2)
        if self.coulomb_cutoff is not None:
            if molecules is None and self.charge_groups == "structure":
                raise InputError("this model's Coulomb term acts between molecules and its charges are conserved "
                                 "per structure: pass molecules= (the molecule index of every atom)")
            mol_t = groups_t if molecules is None else \
                torch.as_tensor(np.asarray(molecules), dtype=torch.long, device=device)
            x = pos.clone().requires_grad_(True)
            member_e = member_e + self._coulomb_of_copies(charges, x, mol_t, cell, strain, neighbours, copies)
            leaves.append(x)
            rows_of_leaves.append(torch.arange(n, device=device))
        fixed = self._fixed_terms(atomic_numbers, positions, cell, groups_t, molecules, True, copies) \
            if self.fixed_terms else (np.zeros(copies), None, None)
        return ResponsePass(self, member_e, embedding, leaves, rows_of_leaves, strain, fixed)


class ResponsePass:
    """A model evaluated at one structure with its autograd graph kept (`EnvironmentModel.prepare_response`).

    Attributes
    ----------
    prediction : Prediction
        Energy (eV), charges (e; the embedding head's if the model has one) and their committee spreads,
        without forces.
    """

    def __init__(self, model, member_energies, member_charges, leaves, rows_of_leaves, strain, fixed):
        # member_energies: (members, copies); fixed: the fixed terms' energies (copies,), forces and strain
        self._member_energies, self._member_charges = member_energies.sum(1), member_charges
        self._leaves, self._rows, self._strain = leaves, rows_of_leaves, strain
        fixed_energies, self._fixed_forces, self._fixed_strain = fixed
        self._n_members = len(model.members)
        copy_e = member_energies.detach().cpu().numpy().astype(np.float64).T + np.asarray(fixed_energies)[:, None]
        m_e = copy_e.sum(0)
        q = member_charges.detach().cpu().numpy().astype(np.float64)
        self.prediction = Prediction(energy=float(m_e.mean()), charges=q.mean(0), forces=None,
                                     energy_std=float(m_e.std()), charges_std=q.std(0), forces_std=None,
                                     member_energies=m_e, member_charges=q, copy_member_energies=copy_e)

    def _gradients(self, potential, weights):
        """d/dR (n, 3) and d/d(strain) (3, 3 or None) of sum_m weights_m (E_m + potential . q_m), networks only."""
        q = self._member_charges
        phi = torch.as_tensor(np.asarray(potential, dtype=np.float64), device=q.device).to(q.dtype)
        if phi.shape != q.shape[1:]:
            raise InputError(f"potential needs one entry per atom ({q.shape[1]}), got shape {tuple(phi.shape)}")
        objective = (weights * (self._member_energies + (q * phi).sum(1))).sum()
        inputs = self._leaves + ([] if self._strain is None else [self._strain])
        # retain_graph: the same pass may be asked for the forces of another potential (finite differences)
        grads = torch.autograd.grad(objective, inputs, retain_graph=True, allow_unused=True)
        total = q.new_zeros((q.shape[1], 3))
        for rows, g in zip(self._rows, grads):
            if g is not None:
                total.index_add_(0, rows, g)
        strain = None
        if self._strain is not None:
            strain = torch.zeros((3, 3), dtype=q.dtype) if grads[-1] is None else grads[-1]
        return total, strain

    def forces(self, potential):
        """Forces and strain derivative of ``energy + sum_i potential_i * charges_i``, potential held fixed.

        Parameters
        ----------
        potential : array_like (n,)
            Electrostatic potential at each atom, V (zero for atoms without charge).

        Returns
        -------
        forces : ndarray (n, 3)
            eV/Å, committee mean.
        strain_derivative : ndarray (3, 3) or None
            d/d(strain) of the same objective, eV (None in open boundaries).
        """
        q = self._member_charges
        grad, strain = self._gradients(potential, torch.full((self._n_members,), 1.0 / self._n_members,
                                                             dtype=q.dtype, device=q.device))
        forces = (-grad).cpu().numpy().astype(np.float64)
        if self._fixed_forces is not None:
            forces = forces + self._fixed_forces
        if strain is not None:
            strain = strain.cpu().numpy().astype(np.float64)
            if self._fixed_strain is not None:
                strain = strain + self._fixed_strain
        return forces, strain

    def with_forces(self, potential, uncertainty: bool = False) -> Prediction:
        """`prediction` with the forces and strain derivative of `forces`, and with ``uncertainty`` each
        member's forces for ``forces_std`` (one more backward pass per member)."""
        forces, strain = self.forces(potential)
        std = None
        if uncertainty and self._n_members > 1:
            q = self._member_charges
            members = torch.stack([self._gradients(potential, w)[0]
                                   for w in torch.eye(self._n_members, dtype=q.dtype, device=q.device)])
            std = members.std(0, unbiased=False).cpu().numpy().astype(np.float64)
        return replace(self.prediction, forces=forces, forces_std=std, strain_derivative=strain)
