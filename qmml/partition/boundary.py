"""Boundary charge schemes: how environment charges near a cut bond are modified.

Every scheme is one linear map.  The embedding sees *sites*: site s sits at
``R_s = sum_k P[s, k] R_k`` (a linear combination of atom positions) and carries charge
``q~_s = sum_j C[s, j] q_j`` (a linear combination of the environment charges q).  Forces then
follow from the same two matrices: ``F_k += sum_s P[s, k] F_s`` and ``dE/dq_j = sum_s C[s, j] phi_s``.
Total charge is conserved because every column of C sums to one.

Schemes (M1: environment atom of a cut bond, M2: its other environment neighbours, q0 = q_M1 / n_M2):

``none``
    Charges untouched (only sensible without cut bonds).
``z1`` / ``z2`` / ``z3``
    Zero the charges of M1 (and M2, M3); to conserve total charge the removed charge is spread
    evenly over the next shell of bonded environment atoms (the M2, M3 or M4 atoms), else over the
    rest of M1's residue, else over all remaining environment atoms.
``rc``
    Redistributed charge: q_M1 moves to the midpoints of the M1-M2 bonds, q0 each.
``rcd`` (default)
    Redistributed charge and dipole (Lin & Truhlar, J. Phys. Chem. A 109, 3991 (2005)): 2 q0 at
    each M1-M2 midpoint and q_M2 -> q_M2 - q0, which also keeps every M1-M2 bond dipole.
``shift``
    Charge shift (Sherwood et al.): q_M1 moves onto the M2 atoms, q0 each, and a point-dipole
    correction q0 (R_M1 - R_M2) at each M2 (two charges +-q0/s at R_M2 +- (s/2)(R_M1 - R_M2),
    s = 0.2) restores the M1-M2 bond dipole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import PartitionError

SCHEMES = ("none", "z1", "z2", "z3", "rc", "rcd", "shift")
SHIFT_DIPOLE_SEPARATION = 0.2


@dataclass(frozen=True, eq=False)
class BoundaryMap:
    """Linear maps from atom positions and environment charges to embedding sites.

    Attributes
    ----------
    positions_map : scipy.sparse.csr_matrix, shape (n_sites, n_atoms)
        P with site positions ``P @ R``.
    charge_map : scipy.sparse.csr_matrix, shape (n_sites, n_env)
        C with site charges ``C @ q_env``.
    scheme : str
    """

    positions_map: sp.csr_matrix
    charge_map: sp.csr_matrix
    scheme: str

    @property
    def n_sites(self) -> int:
        return self.positions_map.shape[0]

    def site_positions(self, positions: np.ndarray) -> np.ndarray:
        """Site coordinates (Å) from all atom coordinates (Å), shape (n_sites, 3)."""
        return np.asarray(self.positions_map @ positions)

    def site_charges(self, env_charges: np.ndarray) -> np.ndarray:
        """Site charges (e) from the environment charges (e)."""
        return np.asarray(self.charge_map @ env_charges)

    def atom_forces(self, site_forces: np.ndarray) -> np.ndarray:
        """Forces on atoms (n_atoms, 3) from forces on sites (chain rule through P)."""
        return np.asarray(self.positions_map.T @ site_forces)

    def env_charge_gradient(self, site_potential: np.ndarray) -> np.ndarray:
        """dE/dq for every environment charge from dE/dq~ (the potential phi at the sites)."""
        return np.asarray(self.charge_map.T @ site_potential)


def build_boundary_map(scheme: str, env_atoms: np.ndarray, m1_atoms: list[int], graph, residue_index: np.ndarray,
                       n_atoms: int) -> BoundaryMap:
    """Build the site maps for ``scheme``.

    Parameters
    ----------
    scheme : str
        One of `SCHEMES`.
    env_atoms : ndarray of int
        Environment atoms, in the order of the environment charge vector.
    m1_atoms : list of int
        Environment atoms of cut bonds (each once).
    graph : networkx.Graph
        Bond graph of the whole system.
    residue_index : ndarray
        Residue of every atom (used when a zeroed charge has no bonded shell to go to).
    n_atoms : int
    """
    if scheme not in SCHEMES:
        raise PartitionError(f"boundary={scheme!r} is not one of {', '.join(SCHEMES)}")
    n_env = len(env_atoms)
    column = {int(a): j for j, a in enumerate(env_atoms)}
    # site rows as dicts: positions {atom: weight}, charges {env column: weight}; sites 0..n_env-1 are the atoms
    pos_rows: list[dict[int, float]] = [{int(a): 1.0} for a in env_atoms]
    chg_rows: list[dict[int, float]] = [{j: 1.0} for j in range(n_env)]

    def move(src: int, dst_row: int, weight: float) -> None:
        chg_rows[dst_row][column[src]] = chg_rows[dst_row].get(column[src], 0.0) + weight

    def env_neighbours(atoms: set[int]) -> list[int]:
        return sorted({n for a in atoms for n in graph.neighbors(a) if n in column and n not in atoms})

    zeroed_by_m1: dict[int, set[int]] = {}
    if scheme in ("z1", "z2", "z3"):
        for m1 in sorted(set(m1_atoms)):
            zeroed = {m1}
            for _ in range(int(scheme[1]) - 1):
                zeroed |= set(env_neighbours(zeroed))
            zeroed_by_m1[m1] = zeroed
    all_zeroed = set().union(*zeroed_by_m1.values())
    moved: set[int] = set()
    for m1 in sorted(set(m1_atoms)):
        m2 = env_neighbours({m1})
        if m1 in zeroed_by_m1:
            zeroed = zeroed_by_m1[m1]
            shell = [a for a in env_neighbours(zeroed) if a not in all_zeroed]
            if not shell:
                shell = [a for a in env_atoms if residue_index[a] == residue_index[m1] and a not in all_zeroed]
            if not shell:
                shell = [a for a in env_atoms if a not in all_zeroed]
            if not shell:
                raise PartitionError(f"boundary={scheme!r} would zero every environment charge; use 'rcd'")
            for z in sorted(zeroed - moved):
                moved.add(z)
                chg_rows[column[z]].pop(column[z], None)
                for s in shell:
                    move(z, column[s], 1.0 / len(shell))
            continue
        if scheme == "none" or not m2:
            continue  # an M1 without further environment neighbours keeps its charge
        n = len(m2)
        if scheme in ("rc", "rcd", "shift"):
            chg_rows[column[m1]].pop(column[m1], None)
        for a in m2:
            if scheme in ("rc", "rcd"):
                pos_rows.append({m1: 0.5, a: 0.5})
                chg_rows.append({column[m1]: (2.0 if scheme == "rcd" else 1.0) / n})
                if scheme == "rcd":
                    move(m1, column[a], -1.0 / n)
            else:  # shift
                move(m1, column[a], 1.0 / n)
                half = 0.5 * SHIFT_DIPOLE_SEPARATION
                pos_rows.append({a: 1.0 - half, m1: half})
                chg_rows.append({column[m1]: 1.0 / (n * SHIFT_DIPOLE_SEPARATION)})
                pos_rows.append({a: 1.0 + half, m1: -half})
                chg_rows.append({column[m1]: -1.0 / (n * SHIFT_DIPOLE_SEPARATION)})
    return BoundaryMap(_to_csr(pos_rows, n_atoms), _to_csr(chg_rows, n_env), scheme)


def _to_csr(rows: list[dict[int, float]], n_cols: int) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.fromiter((k for r in rows for k in r), dtype=np.int64, count=indptr[-1])
    data = np.fromiter((v for r in rows for v in r.values()), dtype=np.float64, count=indptr[-1])
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_cols))
