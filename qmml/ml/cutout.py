"""Cut a labelled cluster out of a large structure around the atoms a committee is unsure about.

A reference calculation on the whole system (thousands of atoms) is out of reach, but the model's
energy is a sum of atomic terms that see only their cutoff sphere, so the structure around the
flagged atoms is what the model must learn.  `cut_out` keeps every molecule that has an atom within
``radius_A`` of a flagged atom, whole, so no bond is broken; a molecule too large to keep whole (a
protein) is cut to its atoms within the radius and every cut bond is capped with a hydrogen placed
along the bond at the X-H covalent bond length, as link atoms are.

Units: Å, e.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
from pyscf.data import radii as _radii

from .. import units
from ..errors import InputError
from ..periodic.cell import minimum_image
from .dataset import Frame

HYDROGEN = 1


@dataclass(frozen=True, eq=False)
class Cluster:
    """An open structure cut out of a larger one, ready to be labelled.

    Attributes
    ----------
    elements : ndarray (m,) int
        Atomic numbers (caps are hydrogens).
    positions : ndarray (m, 3)
        Å, whole molecules (periodic images unwrapped around the first flagged atom).
    molecule : ndarray (m,) int
        Molecule of every atom, 0..k-1 (a cap belongs to its parent's molecule).
    molecule_charges : ndarray (k,)
        Integer charge of every molecule, e: the rounded topology charge of its atoms (0 without
        topology charges).
    source : ndarray (m,) int
        Index of each atom in the full system; -1 for a capping hydrogen.
    centres : ndarray of int
        The flagged atoms (indices in the full system) the cluster was cut around.
    """

    elements: np.ndarray
    positions: np.ndarray
    molecule: np.ndarray
    molecule_charges: np.ndarray
    source: np.ndarray
    centres: np.ndarray

    @property
    def charge(self) -> int:
        """Total charge, e."""
        return int(round(float(np.sum(self.molecule_charges))))

    @property
    def n_caps(self) -> int:
        return int(np.sum(self.source < 0))

    def to_frame(self, label) -> Frame:
        """A training `Frame` of this cluster with ``label`` (energy eV, forces eV/Å, charges e)."""
        n = len(self.elements)
        if np.shape(label.forces) != (n, 3) or np.shape(label.charges) != (n,):
            raise InputError(f"a label for {np.shape(label.forces)[0]} atoms does not fit this {n}-atom cluster")
        return Frame(self.elements.copy(), self.positions.copy(), float(label.energy), np.asarray(label.forces, float),
                     np.asarray(label.charges, float), self.molecule.copy(), self.molecule_charges.copy())


def cut_out(system, positions, centres, *, radius_A: float = 4.0, atoms=None,
            max_whole_molecule: int = 50) -> Cluster:
    """The molecules around ``centres``, capped where a bond had to be cut.

    Parameters
    ----------
    system : System
        Elements, bonds, molecules, topology charges and box.
    positions : array_like (n_atoms, 3)
        Å.
    centres : array_like of int
        Flagged atoms; every atom of ``atoms`` within ``radius_A`` of one of them is kept.
    radius_A : float
        Å.  The model's descriptor cutoff is the natural choice: then every flagged atom's whole
        environment is in the cluster.
    atoms : array_like of int, optional
        The atoms the cluster may contain (the environment in the additive scheme, whose model never
        sees the QM region); default all.
    max_whole_molecule : int
        Molecules with more atoms than this are cut at the radius and capped; smaller ones are kept
        whole.

    Returns
    -------
    Cluster
    """
    x = np.asarray(positions, dtype=np.float64)
    n = system.n_atoms
    centres = np.unique(np.asarray(centres, dtype=int))
    if len(centres) == 0:
        raise InputError("cut_out: no centre atoms given")
    if centres.min() < 0 or centres.max() >= n:
        raise InputError(f"cut_out: centre atoms must be in 0..{n - 1}")
    if not radius_A > 0:
        raise InputError(f"cut_out: radius_A={radius_A} must be positive (Å)")
    allowed = np.zeros(n, dtype=bool)
    allowed[np.arange(n) if atoms is None else np.asarray(atoms, dtype=int)] = True
    cell = system.cell
    dist = np.full(n, np.inf)
    for c in centres:
        dist = np.minimum(dist, np.linalg.norm(minimum_image(x - x[c], cell), axis=1))
    near = allowed & (dist < radius_A)
    near[centres[allowed[centres]]] = True
    if not near.any():
        raise InputError("cut_out: none of the centre atoms is one the model describes (atoms=)")

    molecule = system.molecule_index
    keep = np.zeros(n, dtype=bool)
    for m in np.unique(molecule[near]):
        members = (molecule == m) & allowed
        keep |= members if members.sum() <= max_whole_molecule else members & near
    chosen = np.flatnonzero(keep)

    bonds = np.asarray(system.bonds if system.bonds is not None else [], dtype=int).reshape(-1, 2)
    graph = nx.Graph()
    graph.add_nodes_from(chosen)
    caps = []  # (kept atom, removed atom) of every cut bond
    covalent = _radii.COVALENT * units.BOHR_A
    z = system.atomic_numbers
    for a, b in bonds:
        if keep[a] and keep[b]:
            graph.add_edge(a, b)
        elif keep[a] != keep[b]:
            caps.append((a, b) if keep[a] else (b, a))

    # Whole molecules: each bonded fragment is rebuilt bond by bond from its atom nearest a centre,
    # which sits at its image nearest the first centre (per-atom minimum images would split a
    # molecule that reaches past half the box).
    unwrapped = x.copy()
    origin = x[centres[0]]
    component = {}
    for k, atoms_k in enumerate(nx.connected_components(graph)):
        root = min(atoms_k, key=lambda a: dist[a])
        unwrapped[root] = origin + minimum_image(x[root] - origin, cell)
        for a, b in nx.bfs_edges(graph, root):
            unwrapped[b] = unwrapped[a] + minimum_image(x[b] - x[a], cell)
        component.update(dict.fromkeys(atoms_k, k))
    order = sorted(range(len(chosen)), key=lambda k: (component[chosen[k]], chosen[k]))
    chosen = chosen[order]
    elements = list(z[chosen])
    pos = list(unwrapped[chosen])
    mol = [component[a] for a in chosen]
    source = list(chosen)
    for parent, outer in caps:
        direction = minimum_image(x[outer] - x[parent], cell)
        length = covalent[z[parent]] + covalent[HYDROGEN]
        elements.append(HYDROGEN)
        pos.append(unwrapped[parent] + length * direction / np.linalg.norm(direction))
        mol.append(component[parent])
        source.append(-1)
    _, mol = np.unique(mol, return_inverse=True)
    n_mol = int(mol.max()) + 1
    charges = np.zeros(n_mol)
    if system.charges is not None:
        np.add.at(charges, mol[: len(chosen)], np.asarray(system.charges)[chosen])
    return Cluster(np.asarray(elements, dtype=int), np.asarray(pos, dtype=np.float64), mol.astype(int),
                   np.round(charges), np.asarray(source, dtype=int), centres)
