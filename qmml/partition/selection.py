"""Which atoms are quantum: a selection, grown by a distance buffer and completed to whole units."""

from __future__ import annotations

import numpy as np

from ..errors import PartitionError
from ..system import System

COMPLETIONS = (None, "residue", "molecule")


def resolve_qm_atoms(system: System, qm, *, buffer_A: float | None = None, complete: str | None = None) -> np.ndarray:
    """Sorted indices of the QM atoms.

    Parameters
    ----------
    qm : str or array_like of int
        MDAnalysis selection string or atom indices.
    buffer_A : float, optional
        Also take every atom within this distance (Å) of a selected atom.
    complete : {None, "residue", "molecule"}
        Grow the selection (after the buffer) to whole residues or whole molecules
        (connected components of the bond graph).
    """
    if complete not in COMPLETIONS:
        raise PartitionError(f"complete={complete!r} is not one of {COMPLETIONS}")
    atoms = system.select(qm)
    if atoms.size == 0:
        raise PartitionError(f"QM selection {qm!r} selects no atom; check the selection against the structure "
                             f"({system.source}, {system.n_atoms} atoms)")
    if buffer_A:
        from MDAnalysis.lib.distances import capped_distance

        pairs = capped_distance(system.positions[atoms], system.positions, float(buffer_A),
                                box=system.box, return_distances=False)
        atoms = np.union1d(atoms, pairs[:, 1])
    if complete == "residue":
        atoms = np.flatnonzero(np.isin(system.residue_index, system.residue_index[atoms]))
    elif complete == "molecule":
        if system.bonds is None:
            raise PartitionError(f"complete='molecule' needs bonds, and {system.source} has none; "
                                 "load it with guess_bonds=True")
        atoms = np.flatnonzero(np.isin(system.molecule_index, system.molecule_index[atoms]))
    if atoms.size == system.n_atoms:
        raise PartitionError(f"QM selection {qm!r} takes all {system.n_atoms} atoms, leaving no environment; "
                             "select fewer atoms, or run PySCFEngine on the whole molecule for a full-QM calculation")
    return np.asarray(atoms, dtype=int)
