"""Covalent bonds cut by the QM/environment boundary, and the cuts qmml refuses.

Only single bonds between two carbons are safe places for a hydrogen link atom: cutting a
polar bond (C-N, C-O, ...) puts a large partial charge next to the cap, and cutting a double or
aromatic bond breaks a delocalized electron system.  A bond counts as multiple/aromatic when both
ends have fewer bonded neighbours than their saturated valence (C 4, N 3, O 2, S 2); this needs
explicit hydrogens in the structure.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..elements import SATURATED_VALENCE
from ..errors import PartitionError
from ..system import System


def find_cut_bonds(system: System, qm_atoms: np.ndarray) -> list[tuple[int, int]]:
    """(Q1, M1) for every bond with exactly one end in the QM region, sorted."""
    if system.bonds is None or len(system.bonds) == 0:
        return []
    in_qm = np.zeros(system.n_atoms, dtype=bool)
    in_qm[qm_atoms] = True
    a, b = system.bonds[:, 0], system.bonds[:, 1]
    crossing = in_qm[a] != in_qm[b]
    q1 = np.where(in_qm[a], a, b)[crossing]
    m1 = np.where(in_qm[a], b, a)[crossing]
    return sorted(zip(q1.tolist(), m1.tolist()))


def is_multiple_bond(system: System, i: int, j: int) -> bool:
    """Both ends unsaturated: the bond is double, triple or aromatic."""
    graph = system.bond_graph

    def unsaturated(k: int) -> bool:
        valence = SATURATED_VALENCE.get(system.elements[k])
        return valence is not None and graph.degree[k] < valence

    return unsaturated(i) and unsaturated(j)


def _override(flag: str) -> str:
    """The switch that allows a refused cut, in each of qmml's interfaces."""
    return f"{flag}=True in Python, qm.{flag}: true in a job file, --{flag.replace('_', '-')} for qmml partition"


def check_cuts(system: System, cuts: list[tuple[int, int]], *, allow_polar_cuts: bool,
               allow_multiple_bond_cuts: bool, allow_multiple_links: bool) -> None:
    """Raise `PartitionError` for a cut qmml refuses, naming the atoms and the override flag."""
    label = system.atom_label
    for q1, m1 in cuts:
        pair = f"{system.elements[q1]}-{system.elements[m1]}"
        if not allow_multiple_bond_cuts and is_multiple_bond(system, q1, m1):
            raise PartitionError(
                f"the QM boundary cuts a double or aromatic {pair} bond between {label(q1)} and {label(m1)}; "
                f"move the boundary to a single C-C bond, or allow it ({_override('allow_multiple_bond_cuts')})")
        if not allow_polar_cuts and (system.elements[q1], system.elements[m1]) != ("C", "C"):
            raise PartitionError(
                f"the QM boundary cuts a polar {pair} bond between {label(q1)} and {label(m1)}; "
                f"move the boundary to a C-C single bond, or allow it ({_override('allow_polar_cuts')})")
    if not allow_multiple_links:
        for q1, n in Counter(q for q, _ in cuts).items():
            if n > 1:
                partners = ", ".join(label(m) for q, m in cuts if q == q1)
                raise PartitionError(
                    f"{label(q1)} would carry {n} link atoms (cut bonds to {partners}); "
                    "add those neighbours to the QM region or remove this atom from it, "
                    f"or allow it ({_override('allow_multiple_links')})")
