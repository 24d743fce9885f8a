"""The `System`: what a simulation knows about its atoms before any partition.

Elements, masses (amu), positions (Å, float64), an optional periodic box,
covalent bonds, residues and topology charges (e).  Structures are read with
MDAnalysis (PDB, PSF+coordinates, PRMTOP+coordinates, GRO, XYZ, ...).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Sequence

import networkx as nx
import numpy as np

from .elements import ATOMIC_NUMBERS, MASSES_AMU, SYMBOLS, normalize_symbol
from .errors import InputError

__all__ = ["System", "load_system", "check_overlaps", "check_finite_positions"]


@dataclass(frozen=True, eq=False)
class System:
    """Atoms of a simulation, independent of how they are split into QM and environment.

    Attributes
    ----------
    elements : ndarray of str, shape (n_atoms,)
        Element symbols.
    positions : ndarray of float64, shape (n_atoms, 3)
        Cartesian coordinates in Å.
    masses : ndarray, shape (n_atoms,)
        Masses in amu.
    box : ndarray of shape (6,) or None
        Unit cell ``[a, b, c, alpha, beta, gamma]`` in Å and degrees, or None (open boundaries).
    bonds : ndarray of int, shape (n_bonds, 2), or None
        Covalent bonds (0-based atom indices).  None means the bonds are unknown;
        an empty array means the system is known to have none.
    resids, resnames : ndarray, shape (n_atoms,)
        Residue number and residue name of every atom.
    names : ndarray of str, shape (n_atoms,)
        Atom names.
    charges : ndarray, shape (n_atoms,), or None
        Topology (force-field) partial charges in e, when the input provides them.
    source : str
        Where the system came from, for messages.
    """

    elements: np.ndarray
    positions: np.ndarray
    masses: np.ndarray
    box: np.ndarray | None = None
    bonds: np.ndarray | None = None
    resids: np.ndarray | None = None
    resnames: np.ndarray | None = None
    names: np.ndarray | None = None
    charges: np.ndarray | None = None
    source: str = "System.from_arrays"
    _universe: object = field(default=None, repr=False)

    def __post_init__(self):
        positions = np.asarray(self.positions)
        if positions.ndim == 2 and positions.shape[1] == 3 and positions.dtype.kind == "f":
            bad = np.nonzero(~np.isfinite(positions).all(axis=1))[0]
            if len(bad):
                i = int(bad[0])
                name = self.names[i] if self.names is not None else self.elements[i]
                raise InputError(f"{self.source}: the position of atom {i} ({name}) is not finite "
                                 f"({len(bad)} atom{'s' if len(bad) > 1 else ''} in all); fix the coordinates")

    # -- construction --------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        elements: Sequence[str],
        positions,
        *,
        box=None,
        bonds=None,
        residues=None,
        resnames=None,
        names=None,
        charges=None,
        masses=None,
    ) -> "System":
        """Build a system from plain arrays.

        Parameters
        ----------
        elements : sequence of str
            Element symbols, one per atom.
        positions : array_like, shape (n_atoms, 3)
            Coordinates in Å.
        box : array_like, optional
            ``[a, b, c, alpha, beta, gamma]`` (Å, degrees) or ``[a, b, c]`` for an orthorhombic box.
        bonds : array_like of int, shape (n_bonds, 2), optional
            Covalent bonds.  Leave None when unknown.
        residues : array_like of int, shape (n_atoms,), optional
            Residue number of every atom (default: all atoms in residue 1).
        resnames : sequence of str, optional
            Residue name of every atom (default "UNK").
        names : sequence of str, optional
            Atom names (default: the element symbols).
        charges : array_like, shape (n_atoms,), optional
            Topology partial charges in e.
        masses : array_like, shape (n_atoms,), optional
            Masses in amu (default: standard atomic weights).
        """
        try:
            elements = np.array([normalize_symbol(e) for e in elements], dtype=object)
        except ValueError as err:
            raise InputError(f"System.from_arrays: {err}; give element symbols such as 'C' or 'Cl'") from None
        n = len(elements)
        positions = np.array(positions, dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
        if positions.shape != (n, 3):
            raise InputError(f"System.from_arrays: positions have shape {positions.shape}, expected ({n}, 3)")
        masses = (np.array([MASSES_AMU[e] for e in elements], dtype=np.float64)
                  if masses is None else _per_atom(masses, n, "masses", float))
        return cls(
            elements=elements,
            positions=positions,
            masses=masses,
            box=normalize_box(box),
            bonds=None if bonds is None else _normalize_bonds(bonds, n),
            resids=np.ones(n, dtype=int) if residues is None else _per_atom(residues, n, "residues", int),
            resnames=(np.array(["UNK"] * n, dtype=object) if resnames is None
                      else _per_atom(resnames, n, "resnames", object)),
            names=elements.copy() if names is None else _per_atom(names, n, "names", object),
            charges=None if charges is None else _per_atom(charges, n, "charges", float),
        )

    # -- derived properties --------------------------------------------------------
    @property
    def n_atoms(self) -> int:
        return len(self.elements)

    @cached_property
    def atomic_numbers(self) -> np.ndarray:
        return np.array([ATOMIC_NUMBERS[e] for e in self.elements], dtype=int)

    @cached_property
    def cell(self) -> np.ndarray | None:
        """Lattice vectors as rows (3, 3), Å, from ``box``; None for open boundaries."""
        if self.box is None:
            return None
        from MDAnalysis.lib.mdamath import triclinic_vectors

        return triclinic_vectors(self.box).astype(np.float64)

    @cached_property
    def bond_graph(self) -> nx.Graph:
        """Atoms as nodes (0-based indices), covalent bonds as edges."""
        graph = nx.Graph()
        graph.add_nodes_from(range(self.n_atoms))
        if self.bonds is not None:
            graph.add_edges_from(map(tuple, self.bonds))
        return graph

    @cached_property
    def molecule_index(self) -> np.ndarray:
        """Molecule (connected component of the bond graph) of every atom."""
        index = np.empty(self.n_atoms, dtype=int)
        components = sorted(nx.connected_components(self.bond_graph), key=min)
        for k, atoms in enumerate(components):
            index[list(atoms)] = k
        return index

    @cached_property
    def residue_index(self) -> np.ndarray:
        """Residue of every atom as a 0-based index (changes of resid or resname start a new one)."""
        index = np.zeros(self.n_atoms, dtype=int)
        if self.n_atoms:
            changed = (self.resids[1:] != self.resids[:-1]) | (self.resnames[1:] != self.resnames[:-1])
            index[1:] = np.cumsum(changed)
        return index

    def atom_label(self, i: int) -> str:
        """Human-readable name of atom ``i`` for messages, e.g. ``atom 12 (C3, BUT 1)``."""
        return f"atom {i} ({self.names[i]}, {self.resnames[i]} {self.resids[i]})"

    def with_positions(self, positions) -> "System":
        """A copy with new positions (Å)."""
        positions = np.array(positions, dtype=np.float64)
        if positions.shape != self.positions.shape:
            raise InputError(f"positions have shape {positions.shape}, expected {self.positions.shape}")
        return replace(self, positions=positions)

    # -- selections ---------------------------------------------------------------
    @property
    def universe(self):
        """An MDAnalysis Universe over this system, positioned at ``self.positions``."""
        u = self._universe if self._universe is not None else self._make_universe()
        object.__setattr__(self, "_universe", u)
        u.atoms.positions = self.positions
        if self.box is not None:
            u.dimensions = self.box
        return u

    def select(self, selection) -> np.ndarray:
        """Atom indices (sorted, 0-based) for an MDAnalysis selection string or an index array."""
        if isinstance(selection, str):
            try:
                group = self.universe.select_atoms(selection)
            except Exception as err:  # MDAnalysis raises several types for bad syntax
                raise InputError(f"selection {selection!r} is not valid MDAnalysis syntax: {err}") from None
            return np.asarray(group.indices, dtype=int)
        indices = np.unique(np.asarray(selection, dtype=int).ravel())
        if indices.size and (indices.min() < 0 or indices.max() >= self.n_atoms):
            raise InputError(f"selection has atom indices outside 0..{self.n_atoms - 1}")
        return indices

    def _make_universe(self):
        import MDAnalysis as mda

        n = self.n_atoms
        resindex = self.residue_index
        n_res = int(resindex.max()) + 1 if n else 0
        u = mda.Universe.empty(n, n_residues=n_res, atom_resindex=resindex, trajectory=True)
        first = np.unique(resindex, return_index=True)[1]
        u.add_TopologyAttr("names", list(self.names))
        u.add_TopologyAttr("types", list(self.elements))
        u.add_TopologyAttr("elements", list(self.elements))
        u.add_TopologyAttr("masses", self.masses)
        u.add_TopologyAttr("resids", self.resids[first])
        u.add_TopologyAttr("resnames", list(self.resnames[first]))
        if self.charges is not None:
            u.add_TopologyAttr("charges", self.charges)
        if self.bonds is not None and len(self.bonds):
            u.add_TopologyAttr("bonds", [tuple(b) for b in self.bonds])
        return u


def load_system(source, *coordinates, guess_bonds: bool | None = None) -> System:
    """Read a structure with MDAnalysis.

    Parameters
    ----------
    source : str, path or MDAnalysis.Universe
        A file MDAnalysis reads (PDB, PSF, PRMTOP, GRO, XYZ, PQR, ...), or a Universe.
    *coordinates : str or path
        Coordinate files for topologies without coordinates (PSF + PDB/DCD, PRMTOP + INPCRD).
    guess_bonds : bool, optional
        True guesses bonds from distances (MDAnalysis' van der Waals criterion), replacing
        any in the file.  Otherwise bonds come from the topology only (PSF, PRMTOP, PDB CONECT
        records); a file without them gives ``System.bonds = None`` (unknown).

    Returns
    -------
    System
    """
    import MDAnalysis as mda

    if isinstance(source, mda.Universe):
        u, label = source, "Universe"
    else:
        label = os.fspath(source)
        for path in (source, *coordinates):
            if not os.path.exists(path):
                raise InputError(f"{os.fspath(path)}: no such file; check the path")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                u = mda.Universe(source, *coordinates)
        except Exception as err:
            raise InputError(f"{label}: MDAnalysis could not read it ({err}); "
                             "check the format, or pass a topology and a coordinate file") from None
    atoms = u.atoms
    elements = _elements_of(atoms, label)
    if not hasattr(atoms, "resnames"):  # XYZ and friends: give selections a residue name to work with
        u.add_TopologyAttr("resnames", ["UNK"] * len(u.residues))
    if not hasattr(u.trajectory, "ts") or u.trajectory.n_atoms != len(atoms) or not u.trajectory.ts.has_positions:
        raise InputError(f"{label}: the file has no coordinates; pass a coordinate file too, "
                         "e.g. load_system('x.psf', 'x.pdb')")
    bonds = None
    if guess_bonds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u.add_TopologyAttr("types", list(elements))
            u.guess_TopologyAttrs(to_guess=["bonds"], force_guess=["bonds"])
        bonds = np.asarray(u.bonds.indices, dtype=int).reshape(-1, 2)
    elif hasattr(u, "bonds") and len(u.bonds):
        bonds = np.asarray(u.bonds.indices, dtype=int).reshape(-1, 2)
    masses = np.array([MASSES_AMU[e] for e in elements], dtype=np.float64)
    if hasattr(atoms, "masses") and _topology_has("masses", u) and np.all(atoms.masses > 0):
        masses = np.asarray(atoms.masses, dtype=np.float64)
    charges = None
    if hasattr(atoms, "charges"):
        # MDAnalysis keeps float32; topology files give at most 6 decimals, so rounding restores them
        charges = np.round(np.asarray(atoms.charges, dtype=np.float64), 6)
    _warn_split_residues(atoms, label)
    return System(
        elements=elements,
        positions=np.asarray(atoms.positions, dtype=np.float64),
        masses=masses,
        box=normalize_box(u.dimensions),
        bonds=None if bonds is None else _normalize_bonds(bonds, len(atoms)),
        resids=np.asarray(atoms.resids, dtype=int) if hasattr(atoms, "resids") else np.ones(len(atoms), dtype=int),
        resnames=np.asarray(atoms.resnames if hasattr(atoms, "resnames") else ["UNK"] * len(atoms), dtype=object),
        names=np.asarray(atoms.names, dtype=object),
        charges=charges,
        source=label,
        _universe=u,
    )


# -- helpers -------------------------------------------------------------------------
def _warn_split_residues(atoms, label: str) -> None:
    """Warn when one residue's atoms come in separate blocks of the file: MDAnalysis then makes two residues
    of it, so ``complete="residue"`` and per-residue charges see only part of it."""
    if not hasattr(atoms, "resids") or not len(atoms):
        return
    segids = atoms.segids if hasattr(atoms, "segids") else np.array([""] * len(atoms))
    keys = list(zip(segids, atoms.resids, atoms.resnames if hasattr(atoms, "resnames") else segids))
    starts = [0] + [k for k in range(1, len(keys)) if keys[k] != keys[k - 1]]
    seen: dict = {}
    for start in starts:
        if keys[start] in seen:
            segid, resid, resname = keys[start]
            warnings.warn(f"{label}: residue {resname} {resid}{f' (segment {segid})' if segid else ''} is split: its "
                          f"atoms start at index {seen[keys[start]]} and again at {start}, so it is read as two "
                          "residues; put each residue's atoms together in the file", stacklevel=3)
            return
        seen[keys[start]] = start


def _topology_has(attr: str, u) -> bool:
    """True when the topology file itself set ``attr`` (not an MDAnalysis guess)."""
    try:
        return not getattr(u._topology, attr).is_guessed
    except AttributeError:
        return False


def _elements_of(atoms, label: str) -> np.ndarray:
    """Element of every atom: the file's element column, else the topology mass, else the name."""
    from MDAnalysis.guesser.default_guesser import DefaultGuesser

    file_elements = getattr(atoms, "elements", None) if hasattr(atoms, "elements") else None
    masses = atoms.masses if hasattr(atoms, "masses") and _topology_has("masses", atoms.universe) else None
    guesser = DefaultGuesser(None)
    out = []
    for i, atom in enumerate(atoms):
        candidates = []
        if file_elements is not None and str(file_elements[i]).strip():
            candidates.append(str(file_elements[i]))
        if masses is not None and masses[i] > 0:
            candidates.append(_element_from_mass(float(masses[i])))
        candidates.append(guesser.guess_atom_element(atom.name))
        for c in candidates:
            try:
                out.append(normalize_symbol(c))
                break
            except (ValueError, TypeError):
                continue
        else:
            raise InputError(
                f"{label}: cannot tell the element of atom {i} (name {atom.name!r}, residue "
                f"{atom.resname} {atom.resid}); add an element column (PDB columns 77-78) to the file")
    return np.array(out, dtype=object)


def _element_from_mass(mass: float) -> str:
    symbol = min(SYMBOLS[:86], key=lambda s: abs(MASSES_AMU[s] - mass))
    return symbol if abs(MASSES_AMU[symbol] - mass) < 0.6 else ""


def normalize_box(box) -> np.ndarray | None:
    """``box`` as [a, b, c, alpha, beta, gamma] (Å, degrees) from [a, b, c] or the six numbers; None stays None.
    Raises `InputError` for anything else."""
    if box is None:
        return None
    box = np.asarray(box, dtype=np.float64).ravel()
    if box.size == 3:
        box = np.concatenate([box, [90.0, 90.0, 90.0]])
    if box.size != 6:
        raise InputError(f"box must be [a, b, c] or [a, b, c, alpha, beta, gamma], got {box.size} numbers")
    if np.all(box[:3] == 0):
        return None
    if not np.all(np.isfinite(box)):
        raise InputError(f"box {box.tolist()} has a number that is not finite; give lengths in Å and angles in degrees")
    if np.any(box[:3] <= 0):
        raise InputError(f"box lengths must be positive, got {box[:3]}")
    if np.any(box[3:] <= 0) or np.any(box[3:] >= 180):
        raise InputError(f"box angles must lie between 0 and 180 degrees, got {box[3:].tolist()}")
    c = np.cos(np.radians(box[3:]))
    if not 1 - np.sum(c ** 2) + 2 * np.prod(c) > 1e-4:  # volume below 1 % of a b c: flat or impossible
        raise InputError(f"box angles {box[3:].tolist()} do not form a cell (its volume is almost or exactly "
                         "zero); check them")
    return box


def check_finite_positions(system: System, positions) -> None:
    """`InputError` naming the first atom (system-wide index and name) whose position is not finite."""
    bad = np.nonzero(~np.isfinite(positions).all(axis=1))[0]
    if len(bad):
        raise InputError(f"the position of {system.atom_label(int(bad[0]))} is not finite ({len(bad)} atom"
                         f"{'s' if len(bad) > 1 else ''} in all); check the structure or the integrator")


#: atoms closer than this are one atom placed twice (an alternate location, a copy-paste), not chemistry, Å
MIN_DISTANCE_A = 0.5


def check_overlaps(system: System, min_distance_A: float = MIN_DISTANCE_A) -> None:
    """`InputError` naming the first two atoms (system-wide indices) closer than ``min_distance_A`` (Å),
    bonded H-H pairs excepted; linear in the number of atoms."""
    from .periodic.neighbours import pairs

    cell, x = system.cell, np.asarray(system.positions, dtype=np.float64)
    i, j, shifts = pairs(x, min_distance_A, cell, full=False)
    vec = x[j] - x[i] + (0.0 if cell is None else shifts @ np.asarray(cell, dtype=np.float64))
    d = np.linalg.norm(vec, axis=1)
    if not len(i):
        return
    bonded = set()
    if system.bonds is not None:
        bonded = {(int(a), int(b)) for a, b in system.bonds} | {(int(b), int(a)) for a, b in system.bonds}
    for k in np.argsort(d):
        a, b, r = int(i[k]), int(j[k]), float(d[k])
        if system.elements[a] == system.elements[b] == "H" and (a, b) in bonded:
            continue
        if np.any(shifts[k] != 0):
            raise InputError(f"{system.source}: {system.atom_label(a)} and a periodic image of "
                             f"{'itself' if a == b else system.atom_label(b)} are {r:.3f} Å apart in the box "
                             f"{np.round(system.box, 3).tolist()}: the box is too small for the structure; check the "
                             "box (CRYST1 or the job's box:)")
        raise InputError(f"{system.source}: {system.atom_label(a)} and {system.atom_label(b)} are {r:.3f} Å apart, "
                         f"closer than {min_distance_A} Å (an atom placed twice?); fix the coordinates")


def _normalize_bonds(bonds, n: int) -> np.ndarray:
    bonds = np.asarray(bonds, dtype=int).reshape(-1, 2)
    if bonds.size and (bonds.min() < 0 or bonds.max() >= n):
        raise InputError(f"bonds refer to atoms outside 0..{n - 1}")
    if np.any(bonds[:, 0] == bonds[:, 1]):
        raise InputError("a bond joins an atom to itself")
    bonds = np.sort(bonds, axis=1)
    return np.unique(bonds, axis=0) if len(bonds) else bonds


def _per_atom(values, n: int, what: str, dtype) -> np.ndarray:
    arr = np.array(values, dtype=dtype).ravel()
    if arr.shape != (n,):
        raise InputError(f"{what} has {arr.size} entries for {n} atoms; give one per atom")
    return arr
