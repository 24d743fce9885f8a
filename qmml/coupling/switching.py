"""Smooth switching of embedding charges beyond a cutoff from the QM region.

Each embedding site belongs to a switching group, the residue of the atom it mostly sits on (a water
molecule, an amino-acid residue), so whole near-neutral groups fade together and no spurious dipole
appears at the cutoff.  A group's distance is that between the centre of its environment atoms and the
centre of the QM atoms, r_g = |c_g - c_QM|, and every site of the group carries S(r_g) times its charge,

    S = 1                                for r <= r_on,
    S = 1 - 10 x^3 + 15 x^4 - 6 x^5     with x = (r - r_on) / (r_off - r_on),
    S = 0                                for r >= r_off,

which has continuous first and second derivatives, so forces stay continuous and NVE stays stable.
Forces are exact: with E depending on the switched charges S_g q~_s,
dE/dq~_s = S_g phi_s, and the distance dependence adds -(sum_{s in g} phi_s q~_s) dS_g/dR to the atoms
of group g and to the QM atoms.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError


def switch(r, r_on: float, r_off: float):
    """S(r) and dS/dr (1/Å) of the quintic switch between r_on and r_off (Å); r_off <= r_on is a hard cutoff at
    r_off (S = 1 below it, 0 from it on, dS/dr = 0).  ``r`` is a NumPy array or a torch tensor (then S is
    differentiable by autograd); the results are of the same kind.  The one switch function of qmml.

    Parameters
    ----------
    r : ndarray or Tensor
        Distances, Å.
    r_on, r_off : float
        Start and end of the switch, Å.
    """
    if isinstance(r, torch.Tensor):
        if r_off <= r_on:
            return (r < r_off).to(r.dtype), torch.zeros_like(r)
        x = ((r - r_on) / (r_off - r_on)).clamp(0.0, 1.0)
    else:
        r = np.asarray(r, float)
        if r_off <= r_on:
            return (r < r_off).astype(float), np.zeros_like(r)
        x = np.clip((r - r_on) / (r_off - r_on), 0.0, 1.0)
    s = 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x * x)
    ds = -30.0 * x * x * (1.0 - x) ** 2 / (r_off - r_on)
    return s, ds


class ChargeSwitching:
    """Switching of site charges by group distance from the QM centre (see module docstring).

    Parameters
    ----------
    partition : Partition
    cutoff_A : float
        r_off: groups farther than this from the QM centre are not seen by the QM region, Å.
    width_A : float
        r_off - r_on, Å.
    """

    def __init__(self, partition, cutoff_A: float, width_A: float = 1.0):
        if not cutoff_A > width_A > 0:
            raise InputError(f"embedding cutoff {cutoff_A} Å and switching width {width_A} Å: need cutoff > width > 0")
        self.r_off, self.r_on = float(cutoff_A), float(cutoff_A - width_A)
        system = partition.system
        pmap = partition.boundary.positions_map.tocsr()
        main = np.array([pmap.indices[a:b][np.argmax(np.abs(pmap.data[a:b]))]
                         for a, b in zip(pmap.indptr[:-1], pmap.indptr[1:])], dtype=int)
        residue = system.residue_index
        env = partition.env_atoms
        groups, self.site_group = np.unique(residue[main], return_inverse=True)
        # environment atoms of each group (a site's main atom is an environment atom, so none is empty)
        slot = np.searchsorted(groups, residue[env]).clip(max=len(groups) - 1)
        inside = groups[slot] == residue[env]
        self.atoms, self.atom_group = env[inside], slot[inside]
        self.group_size = np.bincount(self.atom_group, minlength=len(groups)).astype(float)
        self.qm_atoms = partition.qm_atoms
        self.n_groups = len(groups)

    def factors(self, positions: np.ndarray):
        """Per-site factors S (n_sites,) and what `forces` needs."""
        centre_qm = positions[self.qm_atoms].mean(0)
        sums = np.zeros((self.n_groups, 3))
        np.add.at(sums, self.atom_group, positions[self.atoms])
        d = sums / self.group_size[:, None] - centre_qm
        r = np.linalg.norm(d, axis=1)
        s, ds = switch(r, self.r_on, self.r_off)
        unit = np.divide(d, r[:, None], out=np.zeros_like(d), where=r[:, None] > 0)
        return s[self.site_group], (ds, unit)

    def forces(self, positions: np.ndarray, site_term: np.ndarray, state) -> np.ndarray:
        """-dE/dR from the distance dependence of S, given site_term = phi_s q~_s (eV) per site."""
        ds, unit = state
        de_ds = np.bincount(self.site_group, weights=site_term, minlength=self.n_groups)
        pull = (de_ds * ds)[:, None] * unit  # dE/dc_g
        out = np.zeros_like(positions)
        np.add.at(out, self.atoms, -(pull / self.group_size[:, None])[self.atom_group])
        out[self.qm_atoms] += pull.sum(0) / len(self.qm_atoms)
        return out
