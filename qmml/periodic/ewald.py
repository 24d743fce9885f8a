"""Ewald sum of point charges in a periodic box of any shape, in PyTorch (differentiable).

Units: Å, e, eV.  With lattice vectors as the rows of H, volume V, splitting eta and G = 2 pi m H^-T,

    E = 1/2 sum'_{i,j,n} q_i q_j erfc(eta r)/r                  (real space, r = |R_j + nH - R_i|)
      + (2 pi / V) sum_{G != 0} exp(-G^2 / 4 eta^2) / G^2 |S(G)|^2,   S(G) = sum_j q_j exp(i G.R_j)
      - eta / sqrt(pi) sum_i q_i^2                              (self)
      - pi Q^2 / (2 V eta^2)                                    (neutralizing background, Q = sum q)
      - 1/2 sum_{excluded (i, j)} q_i q_j / r_ij                 (pairs that must not interact)

times the Coulomb constant.  The background term makes the energy of a charged box independent of
eta (the energy of the charges in a uniform compensating background).  Everything is written with
torch operations on the positions, the charges and the (optionally strained) cell, so one backward
pass gives the forces, dE/dq (the potential) and the strain derivative.

Splitting: with p = sqrt(-ln accuracy), eta = p / r_c and |G| <= 2 eta p, both neglected tails are
about exp(-p^2) = accuracy relative to the terms kept.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import units
from ..errors import InputError
from ..ml.neighbours import neighbour_list

#: Default relative size of the neglected Ewald terms.
DEFAULT_ACCURACY = 1e-6


def reciprocal_indices(cell: np.ndarray, g_max: float) -> np.ndarray:
    """Integer m (k, 3), one of each +-pair, with 0 < |2 pi m H^-T| <= g_max (1/Å)."""
    cell = np.asarray(cell, dtype=float)
    m_max = np.ceil(g_max * np.linalg.norm(cell, axis=1) / (2 * math.pi)).astype(int)
    m = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in m_max], indexing="ij"), -1).reshape(-1, 3)
    first = np.where(m[:, 0] != 0, m[:, 0], np.where(m[:, 1] != 0, m[:, 1], m[:, 2]))
    m = m[first > 0]
    g = 2 * math.pi * m @ np.linalg.inv(cell).T
    return m[np.einsum("gx,gx->g", g, g) <= g_max**2]


def splitting(real_cutoff: float, accuracy: float = DEFAULT_ACCURACY) -> tuple[float, float]:
    """(eta in 1/Å, largest |G| in 1/Å) for a real-space cutoff (Å) and an accuracy."""
    p = math.sqrt(-math.log(accuracy))
    eta = p / real_cutoff
    return eta, 2.0 * eta * p


def ewald_coulomb(charges, positions, cell, *, real_cutoff: float, accuracy: float = DEFAULT_ACCURACY,
                  exclude=None, strain=None, pairs=None):
    """Ewald energy (eV) of point charges in a periodic box.

    Parameters
    ----------
    charges : Tensor (n,) or (m, n)
        e; a 2-D tensor gives one energy per row (committee members).
    positions : Tensor (n, 3)
        Å, any images (unwrapped positions are fine).
    cell : array_like (3, 3)
        Lattice vectors as rows, Å.
    real_cutoff : float
        Real-space cutoff, Å (any size: the neighbour list finds every image within it).
    accuracy : float
        Relative size of the neglected terms (see module docstring).
    exclude : Tensor (n,) of int, optional
        Molecule index per atom: pairs of atoms of the same molecule in the same cell (shift zero) do
        not interact (their bare Coulomb energy is removed).  Negative entries exclude nothing.
    strain : Tensor (3, 3), optional
        Homogeneous strain applied to positions and cell (R -> R (I + strain)^T); differentiate the
        energy with respect to it for the strain derivative.
    pairs : tuple (i, j, shifts), optional
        A neighbour list within ``real_cutoff`` (Cartesian shifts, Å), to reuse one already built.

    Returns
    -------
    Tensor () or (m,)
        eV.
    """
    single = charges.dim() == 1
    q = charges[None] if single else charges
    dtype, device = positions.dtype, positions.device
    cell_t = torch.as_tensor(np.asarray(cell, dtype=np.float64), dtype=dtype, device=device)
    eta, g_max = splitting(real_cutoff, accuracy)
    m_idx = torch.as_tensor(reciprocal_indices(cell_t.detach().cpu().numpy(), g_max), dtype=dtype, device=device)
    if pairs is None:
        pairs = neighbour_list(positions.detach(), real_cutoff, cell_t)
    i, j, shifts = pairs
    deform = None if strain is None else torch.eye(3, dtype=dtype, device=device) + strain
    vec = positions[j] + shifts - positions[i]
    if deform is not None:
        vec = vec @ deform.T
        cell_t = cell_t @ deform.T
        positions = positions @ deform.T
    r = torch.linalg.norm(vec, dim=1)
    kernel = torch.special.erfc(eta * r) / r
    if exclude is not None:
        # shifts are lattice vectors up to rounding: zero means the same cell
        same = (exclude[i] == exclude[j]) & (exclude[i] >= 0) & (shifts.abs().sum(1) < 1e-6)
        kernel = kernel - same.to(dtype) / r
    real = 0.5 * (q[:, i] * q[:, j] * kernel).sum(1)
    if exclude is not None:
        # excluded pairs beyond the real-space cutoff would be missed above; molecules that large are refused
        _check_excluded_within(exclude, positions, real_cutoff, cell_t)

    volume = torch.linalg.det(cell_t).abs()
    g = 2 * math.pi * m_idx @ torch.linalg.inv(cell_t).T
    g2 = (g * g).sum(1)
    phase = positions @ g.T  # (n, k)
    s_cos, s_sin = q @ torch.cos(phase), q @ torch.sin(phase)
    recip = (4 * math.pi / volume) * ((torch.exp(-g2 / (4 * eta * eta)) / g2) * (s_cos**2 + s_sin**2)).sum(1)
    total = q.sum(1)
    self_term = -(eta / math.sqrt(math.pi)) * (q * q).sum(1)
    background = -math.pi * total**2 / (2 * volume * eta * eta)
    energy = units.COULOMB_EV_A * (real + recip + self_term + background)
    return energy[0] if single else energy


def _check_excluded_within(molecules, positions, cutoff, cell):
    mol = molecules.detach().cpu().numpy()
    pos = positions.detach().cpu().numpy()
    inside = mol >= 0
    if not inside.any():
        return
    _, first, index = np.unique(mol[inside], return_index=True, return_inverse=True)
    spread = np.linalg.norm(pos[inside] - pos[inside][first][index], axis=1)
    if spread.max() >= cutoff:
        bad = int(mol[inside][np.argmax(spread)])
        raise InputError(f"molecule {bad} spans more than the Ewald real-space cutoff {cutoff:.1f} Å (or is split "
                         "across the box): unwrap the positions so that every molecule is whole")


def coulomb_open(charges, positions, *, exclude=None, strain=None):
    """Bare Coulomb energy (eV) of all pairs (open boundaries), skipping pairs of the same molecule of
    ``exclude`` (negative: never excluded); charges (n,) or (m, n).  The open-boundary limit of
    `ewald_coulomb`."""
    single = charges.dim() == 1
    q = charges[None] if single else charges
    n = len(positions)
    i, j = torch.triu_indices(n, n, 1, device=positions.device)
    vec = positions[j] - positions[i]
    if strain is not None:
        vec = vec @ (torch.eye(3, dtype=positions.dtype, device=positions.device) + strain).T
    r = torch.linalg.norm(vec, dim=1)
    keep = torch.ones_like(r, dtype=torch.bool) if exclude is None else \
        ~((exclude[i] == exclude[j]) & (exclude[i] >= 0))
    energy = units.COULOMB_EV_A * (q[:, i] * q[:, j] * keep.to(r.dtype) / r).sum(1)
    return energy[0] if single else energy
