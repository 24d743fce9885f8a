"""The ML shell of a three-layer (QM/ML/MM) partition: whole residues around the QM region, capped where
they are bonded to the MM layer.

The shell is chosen once (membership is fixed for a run, so the energy has no discontinuity): a selection,
or every residue with an atom within ``radius_A`` of a QM atom, always completed to whole residues (a water
is a residue).  Every covalent bond from the QM region or the shell to an MM atom is capped with a hydrogen
in the ML calculation, placed as link atoms are (`qmml.partition.links`: R = (1 - g) R_inside + g R_MM),
so the caps' forces go back to real atoms by the same weights.  A cut inside a ring is refused.  Bonds
from the shell to the QM region get caps too (`MLShell.qm_caps`), for the additive scheme, in which the
model sees the shell without the QM region.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from ..errors import PartitionError
from ..system import System
from .links import LinkAtom, link_scale_factor

#: A cut bond whose atoms are joined by another path of at most this many bonds lies in a ring.
RING_SIZE = 8


@dataclass(frozen=True, eq=False)
class MLShell:
    """Atoms of the ML layer and the caps of its bonds to the MM layer.

    Attributes
    ----------
    atoms : ndarray of int
        Sorted shell atoms (system-wide indices; never QM atoms).
    caps : tuple of LinkAtom
        One hydrogen per bond from a QM or shell atom (``q1``) to an MM atom (``m1``).
    charge : int
        The shell's charge in the ML calculation, e: its topology charges, rounded (0 without them).
    qm_caps : tuple of LinkAtom
        One hydrogen per bond from a shell atom (``q1``) to a QM atom (``m1``): the QM/ML cuts seen from
        the shell, capped when the model does not see the QM region (additive scheme).
    fragments : ndarray of int
        The fragment of every shell atom (row of ``atoms``): the shell's covalently connected pieces, each a
        separate capped molecule for the model, numbered by first atom.  Each keeps its topology charge
        (`MLEnvironment`), as the molecules of the model's embedding-charge labels did; one charge for the
        whole shell let the model move 0.9 e onto a valine across an enzyme's active site.
    """

    atoms: np.ndarray
    caps: tuple[LinkAtom, ...]
    charge: int
    qm_caps: tuple[LinkAtom, ...]
    fragments: np.ndarray


def build_shell(system: System, qm_atoms, selection=None, radius_A: float | None = None,
                link="scaled") -> MLShell:
    """The ML shell around the QM region, completed to whole residues, QM atoms removed (module docstring).

    Parameters
    ----------
    system : System
        The whole structure, with bonds.
    qm_atoms : array_like of int
        The QM atoms (system-wide indices).
    selection : str or array_like of int, optional
        MDAnalysis selection string or atom indices of the shell.
    radius_A : float, optional
        Instead of ``selection``: every residue with an atom within this distance (Å) of a QM atom.
    link : "scaled" or float
        Cap placement, as for link atoms (`qmml.partition.links.link_scale_factor`).

    Returns
    -------
    MLShell
    """
    qm_atoms = np.asarray(qm_atoms, dtype=int)
    if (selection is None) == (radius_A is None):
        raise PartitionError("give the ML shell as a selection or as a radius around the QM region (radius_A), "
                             "not both and not neither")
    if selection is not None:
        atoms = system.select(selection)
    else:
        from MDAnalysis.lib.distances import capped_distance

        if not radius_A > 0:
            raise PartitionError(f"ML shell radius {radius_A} Å must be positive")
        pairs = capped_distance(system.positions[qm_atoms], system.positions, float(radius_A),
                                box=system.box, return_distances=False)
        atoms = np.unique(pairs[:, 1])
    atoms = np.flatnonzero(np.isin(system.residue_index, system.residue_index[atoms]))
    atoms = np.setdiff1d(atoms, qm_atoms)
    if atoms.size == 0:
        raise PartitionError(f"the ML shell {selection if selection is not None else f'within {radius_A} Å'} holds "
                             "no atom outside the QM region; widen it")
    if atoms.size + qm_atoms.size == system.n_atoms:
        raise PartitionError("the QM region and the ML shell take every atom, leaving no MM layer; use a two-layer "
                             "QM/ML partition (no shell) instead")
    inside = np.zeros(system.n_atoms, dtype=bool)
    inside[atoms] = inside[qm_atoms] = True
    graph = system.bond_graph
    caps = []
    for a, m in sorted((int(a), int(m)) if inside[a] else (int(m), int(a))
                       for a, m in graph.edges() if inside[a] != inside[m]):
        label = f"ML/MM cut bond {system.atom_label(a)} - {system.atom_label(m)}"
        others = nx.single_source_shortest_path_length(nx.restricted_view(graph, [], [(a, m)]), a, cutoff=RING_SIZE - 1)
        if m in others:
            raise PartitionError(f"{label} lies in a ring (residue {system.resnames[a]} {system.resids[a]}); take "
                                 "the whole ring into the shell or leave it out")
        caps.append(LinkAtom(a, m, link_scale_factor(system, a, m, link, label)))
    shell = np.zeros(system.n_atoms, dtype=bool)
    shell[atoms] = True
    qm_caps = [LinkAtom(a, q, link_scale_factor(system, a, q, link,
                                                f"QM/ML cut bond {system.atom_label(q)} - {system.atom_label(a)}"))
               for a, q in sorted((int(a), int(q)) if shell[a] else (int(q), int(a))
                                  for a, q in graph.edges() if shell[a] != shell[q] and inside[a] and inside[q])]
    charge = 0 if system.charges is None else int(round(float(system.charges[atoms].sum())))
    pieces = sorted(nx.connected_components(graph.subgraph(atoms.tolist())), key=min)
    fragment = {a: k for k, piece in enumerate(pieces) for a in piece}
    fragments = np.array([fragment[int(a)] for a in atoms], dtype=int)
    return MLShell(np.asarray(atoms, dtype=int), tuple(caps), charge, tuple(qm_caps), fragments)
