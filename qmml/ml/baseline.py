"""`BondBaseline`: a bonded and short-range repulsive prior under the networks of an environment model.

A network only knows the configurations it was trained on.  Beyond them (an O-H bond stretched to
1.4 Å, two atoms of different molecules at 1 Å) its energy can fall, and a proton leaves its water
or two hydrogens collapse onto each other (both seen: `organic` in NaCl(aq), the seed runs of the
condensed-phase campaigns).  This term makes those regions expensive whatever the networks do:

    E = sum_H min( min_X V_X(r_HX), D_min ) + sum_{i<j walled pairs} k (r_w,ij - r_ij)^3_+ ,

* Morse bonds: for every hydrogen, the X-H bonds to the heavy atoms X of *its own molecule* (the
  ``molecules`` index the caller passes, fixed by the starting topology), with
  V_X(r) = D_X [1 - s(r) (2 e^{-a_X (r - r0_X)} - e^{-2 a_X (r - r0_X)})], zero at r0_X, rising to D_X
  as the bond breaks; s is the quintic switch between ``switch_on_A`` and ``cutoff_A`` (V_X = D_X from
  there on).  The minimum over X (and over D_min, the smallest D of the molecule's heavy elements)
  keeps the energy continuous when the nearest heavy atom changes.  Because the molecule index is
  fixed, moving a proton onto another molecule costs its whole bond energy: no proton transfer.
* Contact walls: a cubic repulsion between atoms of different molecules closer than ``wall_h_A`` (a
  pair with a hydrogen) or ``wall_heavy_A`` (two heavier atoms), or than ``wall_radius_factor`` times the
  sum of their covalent radii where that is larger (ions: at 0.75, Na-Cl 2.01 Å, Na-Na 2.49 Å, Na-O
  1.74 Å; without it a network fused Na+ and Cl- at 1.45 Å in liquid water), and between two hydrogens of one
  molecule closer than ``wall_hh_intra_A`` (a water whose H-O-H angle closed: seen in NPT with a
  briefly fine-tuned model, two H 0.05 Å apart at 1500 K), thresholds below any contact of
  the liquid training frames, so the term only acts where the networks have never been.

The Morse numbers are fits to GFN2-xTB (tblite) scans of one X-H bond of H2O, NH3, CH4 and H2S
from 0.75 to 2.2 Å, other atoms fixed (`data/scripts/fit_bond_baseline.py`; rms 0.05-0.15 eV).  The
networks learn the labels minus this term, as with the dispersion term.

Units: Å and eV (D in eV, a in 1/Å, k in eV/Å^3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..elements import covalent_radius_A
from ..errors import InputError
from .fixed_terms import FixedTerm
from ..periodic.cell import check_cell
from ..coupling.switching import switch
from ..periodic.neighbours import pairs

#: The only form so far; stored in model files so that another form can be told apart later.
FORM = "morse-xh-contact-walls-2"
#: The first form: no wall between the hydrogens of one molecule (files written with it load with
#: ``wall_hh_intra_A = 0``, their exact energy).
FORM_1 = "morse-xh-contact-walls"
#: (Z of X, D_eV, a_per_A, r0_A): GFN2-xTB X-H bond scans, data/scripts/fit_bond_baseline.py
GFN2_XH_MORSE = ((6, 5.598, 1.778, 1.0973), (7, 5.632, 1.907, 1.0303), (8, 6.251, 1.832, 0.9819),
                 (16, 2.785, 2.389, 1.2910))


@dataclass(frozen=True)
class BondBaseline(FixedTerm):
    """Morse X-H bonds within molecules and contact walls between molecules (see the module docstring).

    Parameters
    ----------
    morse : tuple of (Z, D_eV, a_per_A, r0_A)
        Morse parameters of X-H bonds per heavy element X.  Hydrogens of a molecule without any of
        these elements get no bond term.
    switch_on_A, cutoff_A : float
        The Morse attraction is switched off between these X-H distances, Å.
    wall_h_A, wall_heavy_A : float
        Contact distances between atoms of different molecules, Å: pairs with a hydrogen, and pairs of
        heavier atoms.  0 turns a wall off.
    wall_hh_intra_A : float
        Contact distance of two hydrogens of one molecule, Å (water's are 1.5 Å apart, geminal CH2
        hydrogens 1.75 Å).  Model files of the first form (without this wall) load with 0.
    wall_k : float
        Wall stiffness k, eV/Å^3.
    wall_radius_factor : float
        Between different molecules the wall stands at least at this multiple of the pair's covalent radii
        (PySCF's table); 0 (the default, and files written before this option) leaves only the fixed walls.
    """

    FORM, KIND, TABLE = FORM, "baseline", "morse"  # for FixedTerm (class attributes, not fields)

    morse: tuple = GFN2_XH_MORSE
    switch_on_A: float = 3.0
    cutoff_A: float = 4.0
    wall_h_A: float = 1.2
    wall_heavy_A: float = 1.6
    wall_hh_intra_A: float = 1.1
    wall_k: float = 20.0
    wall_radius_factor: float = 0.0

    def __post_init__(self):
        self._plain_numbers(("switch_on_A", "cutoff_A", "wall_h_A", "wall_heavy_A", "wall_hh_intra_A", "wall_k",
                             "wall_radius_factor"), non_negative=True)
        if not 0 < self.switch_on_A < self.cutoff_A:
            raise InputError(f"BondBaseline needs 0 < switch_on_A < cutoff_A, got {self.switch_on_A}, "
                             f"{self.cutoff_A} Å")
        table = []
        for z, d, a, r0 in self._table_rows((int, float, float, float), "(Z, D_eV, a_per_A, r0_A)"):
            if z <= 1 or not (d > 0 and a > 0 and 0 < r0 < self.switch_on_A):
                raise InputError(f"Morse parameters of X-H with X = {z} must have Z > 1, D > 0, a > 0 and "
                                 f"0 < r0 < switch_on_A; got D={d} eV, a={a} 1/Å, r0={r0} Å")
            table.append((z, d, a, r0))
        if len({row[0] for row in table}) != len(table):
            raise InputError("BondBaseline.morse names an element twice; give one row per element")
        object.__setattr__(self, "morse", tuple(sorted(table)))


    @classmethod
    def from_dict(cls, data) -> "BondBaseline":
        """The inverse of `to_dict`; ``{}`` gives the defaults, the first form loads without the H-H wall."""
        if isinstance(data, dict) and data.get("form") == FORM_1:
            data = {**data, "form": FORM, "wall_hh_intra_A": 0.0}
        return super().from_dict(data)

    # -- evaluation ------------------------------------------------------------------------
    def compute(self, elements, positions_A, cell=None, molecules=None, *, forces: bool = True):
        """Baseline energy, forces and strain derivative of one structure.

        Parameters
        ----------
        elements : array_like (n,) int
        positions_A : array_like (n, 3)
            Å.
        cell : array_like (3, 3), optional
            Lattice vectors (rows, Å) of a periodic box; None for open boundaries.
        molecules : array_like (n,) int, optional
            Molecule of each atom from the starting topology; -1 marks atoms of no molecule (they take
            part in walls only).  Default: one molecule of all atoms (bonds only, no walls).
        forces : bool
            False returns the energy only.

        Returns
        -------
        energy : float
            eV.
        forces : ndarray (n, 3) or None
            -dE/dR, eV/Å.
        strain_derivative : ndarray (3, 3) or None
            dE/d(strain) for R -> R (I + ε)^T of positions and cell, eV (None without a cell or forces).
        """
        z = np.asarray(elements, dtype=np.int64)
        x = np.asarray(positions_A, dtype=np.float64)
        n = len(z)
        if x.shape != (n, 3):
            raise InputError(f"positions must have shape ({n}, 3), got {x.shape}")
        mol = np.zeros(n, np.int64) if molecules is None else np.asarray(molecules, dtype=np.int64)
        if mol.shape != (n,):
            raise InputError(f"molecules needs one entry per atom ({n}), got shape {mol.shape}")
        h = None if cell is None else check_cell(cell, right_handed=False)
        grad = np.zeros((n, 3))
        virial = np.zeros((3, 3))
        energy = 0.0
        reach = max(self.cutoff_A, self.wall_h_A, self.wall_heavy_A, self.wall_hh_intra_A,
                    2 * self.wall_radius_factor * float(covalent_radius_A(z).max()) if n else 0.0)
        if n > 1:
            i, j, vec = _pairs(x, h, reach)
            r = np.linalg.norm(vec, axis=1)
            for part in (self._bonds(z, mol, i, j, vec, r), self._walls(z, mol, i, j, vec, r)):
                e, a, b, g, v = part
                energy += e
                for k in range(3):
                    grad[:, k] += np.bincount(b, g[:, k], minlength=n) - np.bincount(a, g[:, k], minlength=n)
                virial += g.T @ v
        if not forces:
            return energy, None, None
        return energy, -grad, None if h is None else virial

    def energy(self, elements, positions_A, cell=None, molecules=None) -> float:
        """Baseline energy only, eV (see `compute`)."""
        return self.compute(elements, positions_A, cell, molecules, forces=False)[0]

    def _bonds(self, z, mol, i, j, vec, r):
        """Energy, pair ends (X, H), dE/d(X->H vector) and those vectors of the Morse bonds."""
        table = {row[0]: row[1:] for row in self.morse}
        n = len(z)
        heavy = np.isin(z, list(table))
        # every (X, H) pair of one molecule within the cutoff, X first
        use = (z[j] == 1) & heavy[i] & (mol[i] == mol[j]) & (mol[j] >= 0) & (r < self.cutoff_A)
        x_at, h_at, v, rr = i[use], j[use], vec[use], r[use]
        d, a, r0 = (np.array([table[int(e)][k] for e in z[x_at]]) for k in range(3))
        s, ds = switch(rr, self.switch_on_A, self.cutoff_A)
        ex = np.exp(-a * (rr - r0))
        attraction = 2.0 * ex - ex * ex
        u = d * (1.0 - s * attraction)
        du = -d * (ds * attraction + s * (-2.0 * a * ex + 2.0 * a * ex * ex))
        # the bond energy of each hydrogen: the lowest of its pairs and of the plateau D_min of its molecule
        d_min = np.full(int(mol.max()) + 1 if n else 0, np.inf)
        if heavy.any():
            np.minimum.at(d_min, mol[heavy & (mol >= 0)], [table[int(e)][0] for e in z[heavy & (mol >= 0)]])
        hydrogens = np.nonzero((z == 1) & (mol >= 0))[0]
        plateau = np.where(np.isfinite(d_min[mol[hydrogens]]), d_min[mol[hydrogens]], 0.0) if len(hydrogens) else \
            np.zeros(0)
        best = np.full(n, np.inf)
        best[hydrogens] = plateau
        chosen = np.full(n, -1)
        lower = u < best[h_at]
        if lower.any():
            cand = np.nonzero(lower)[0]
            cand = cand[np.lexsort((u[cand], h_at[cand]))]  # by H, lowest u first
            first = np.ones(len(cand), bool)
            first[1:] = h_at[cand[1:]] != h_at[cand[:-1]]
            picks = cand[first]
            best[h_at[picks]] = u[picks]
            chosen[h_at[picks]] = picks
        energy = float(best[hydrogens].sum())
        picks = chosen[chosen >= 0]
        g = (du[picks] / rr[picks])[:, None] * v[picks]
        return energy, x_at[picks], h_at[picks], g, v[picks]

    def _walls(self, z, mol, i, j, vec, r):
        """Energy, pair ends, dE/d(pair vector) and the vectors of the contact walls (each pair once)."""
        hydrogen = (z[i] == 1) | (z[j] == 1)
        same = mol[i] == mol[j]
        between = np.where(hydrogen, self.wall_h_A, self.wall_heavy_A)
        if self.wall_radius_factor > 0:
            radius = covalent_radius_A(z)
            between = np.maximum(between, self.wall_radius_factor * (radius[i] + radius[j]))
        wall = np.where(same, np.where((z[i] == 1) & (z[j] == 1), self.wall_hh_intra_A, 0.0), between)
        use = (i < j) & ~((mol[i] < 0) & (mol[j] < 0)) & (r < wall)
        depth = wall[use] - r[use]
        energy = float((self.wall_k * depth ** 3).sum())
        du = -3.0 * self.wall_k * depth ** 2
        g = (du / r[use])[:, None] * vec[use]
        return energy, i[use], j[use], g, vec[use]


def _pairs(x, cell, cutoff):
    """Every ordered pair (i, j) within ``cutoff`` (both directions) and its vector x_j + shift - x_i."""
    i, j, shifts = pairs(x, cutoff, cell)
    vec = x[j] - x[i]
    if cell is not None:
        vec += shifts @ np.asarray(cell, dtype=np.float64)
    return i, j, vec
